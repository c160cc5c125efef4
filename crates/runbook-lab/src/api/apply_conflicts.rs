//! Server-side apply's ownership rule: applying a value to a field that
//! another manager applied, with a different value, is a conflict (409)
//! unless the request says `force=true`. Same value: the field is shared.
//! Messages and causes as structured-merge-diff and the API server give them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::status::ApiError;

/// One element of a `FieldsV1` path: `f:name` or `k:{"name":"x"}`.
fn step<'a>(value: &'a Value, element: &str) -> Option<&'a Value> {
    if let Some(field) = element.strip_prefix("f:") {
        return value.get(field);
    }
    let id: serde_json::Map<String, Value> = serde_json::from_str(element.strip_prefix("k:")?).ok()?;
    value.as_array()?.iter().find(|item| id.iter().all(|(k, v)| item.get(k) == Some(v)))
}

/// A path as structured-merge-diff prints it: `.spec.containers[name="c"].image`.
fn display(path: &[String]) -> String {
    path.iter()
        .map(|element| match element.strip_prefix("f:") {
            Some(field) => format!(".{field}"),
            None => {
                let id: serde_json::Map<String, Value> =
                    serde_json::from_str(element.strip_prefix("k:").unwrap_or("{}")).unwrap_or_default();
                let keys: Vec<String> = id.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", keys.join(","))
            }
        })
        .collect()
}

/// The leaf paths of a `FieldsV1` set (fields with nothing set below them).
fn leaves(set: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(map) = set.as_object() else { return };
    let children: Vec<_> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.push(prefix.clone());
        }
        return;
    }
    for (element, child) in children {
        prefix.push(element.clone());
        leaves(child, prefix, out);
        prefix.pop();
    }
}

fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |value, element| step(value, element))
}

fn contains(set: &Value, path: &[String]) -> bool {
    path.iter().try_fold(set, |node, element| node.get(element)).is_some()
}

/// Refuses an apply by `manager` of `applied` (field set `new_set`) onto
/// `live` where another Apply manager owns a field it changes.
pub fn check(live: &Value, applied: &Value, new_set: &Value, manager: &str) -> Result<(), ApiError> {
    let mut paths = Vec::new();
    leaves(new_set, &mut Vec::new(), &mut paths);
    let mut conflicts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut count = 0;
    for entry in live["metadata"]["managedFields"].as_array().into_iter().flatten() {
        let owner = entry["manager"].as_str().unwrap_or_default();
        if owner == manager || entry["operation"] != "Apply" {
            continue;
        }
        for path in paths.iter().filter(|p| contains(&entry["fieldsV1"], p)) {
            if value_at(live, path) != value_at(applied, path) {
                conflicts.entry(owner.to_string()).or_default().push(display(path));
                count += 1;
            }
        }
    }
    if count == 0 {
        return Ok(());
    }
    let causes: Vec<Value> = conflicts
        .iter()
        .flat_map(|(owner, paths)| {
            paths.iter().map(move |path| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {owner:?}"), "field": path})
            })
        })
        .collect();
    let listed = if count == 1 {
        let (owner, paths) = conflicts.iter().next().expect("one conflict");
        format!("conflict with {owner:?}: {}", paths[0])
    } else {
        let mut lines = Vec::new();
        for (owner, paths) in &conflicts {
            lines.push(format!("conflicts with {owner:?}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        lines.join("\n")
    };
    let plural = if count == 1 { "" } else { "s" };
    let mut error = ApiError::conflict_with_message(format!("Apply failed with {count} conflict{plural}: {listed}"));
    error.details = Some(json!({"causes": causes}));
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::patch::{field_set, server_side_apply};

    fn config(value: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": value}})
    }

    #[test]
    fn a_second_manager_changing_a_field_conflicts_unless_the_value_is_the_same() {
        let live = server_side_apply(None, &config("one"), "a", "now");
        let refused = check(&live, &config("two"), &field_set(&config("two"), ""), "b").unwrap_err();
        assert_eq!((refused.code, refused.reason), (409, "Conflict"));
        assert_eq!(refused.message, "Apply failed with 1 conflict: conflict with \"a\": .data.k");
        assert_eq!(refused.details.unwrap()["causes"][0]["field"], ".data.k");
        assert!(check(&live, &config("one"), &field_set(&config("one"), ""), "b").is_ok());
        assert!(check(&live, &config("two"), &field_set(&config("two"), ""), "a").is_ok());
    }

    #[test]
    fn keyed_list_elements_are_shown_by_key() {
        let pod = |image: &str| json!({"spec": {"containers": [{"name": "c", "image": image}]}});
        let live = server_side_apply(None, &pod("x"), "a", "now");
        let refused = check(&live, &pod("y"), &field_set(&pod("y"), ""), "b").unwrap_err();
        assert_eq!(
            refused.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.containers[name=\"c\"].image"
        );
    }
}

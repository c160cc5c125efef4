//! `assert.contains`: whether a live object holds a partial object, and
//! every field where it does not, as `path: expected X, found Y` (paths in the
//! field-path syntax of `assert.path`, so a difference can be asserted alone).

use serde_json::Value;

use super::expect::{show, values_equal};

/// Every difference between what `want` gives and what `got` holds; empty
/// when `got` holds all of it. Strings in `want` go through `render` first
/// (templates).
pub fn differences(want: &Value, got: &Value, render: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut found = Vec::new();
    walk(want, Some(got), "", render, &mut found);
    found
}

fn join(path: &str, key: &str) -> String {
    let key = if key.contains('.') { format!("[\"{key}\"]") } else { key.to_string() };
    match (path.is_empty(), key.starts_with('[')) {
        (true, _) => key,
        (false, true) => format!("{path}{key}"),
        (false, false) => format!("{path}.{key}"),
    }
}

fn walk(want: &Value, got: Option<&Value>, path: &str, render: &dyn Fn(&str) -> String, found: &mut Vec<String>) {
    let at = if path.is_empty() { "the object" } else { path };
    match want {
        Value::Object(fields) => {
            let Some(Value::Object(live)) = got else {
                found.push(format!("{at}: expected an object, found {}", show(got)));
                return;
            };
            for (key, value) in fields {
                walk(value, live.get(key), &join(path, key), render, found);
            }
        }
        Value::Array(items) => {
            let Some(Value::Array(live)) = got else {
                found.push(format!("{at}: expected a list, found {}", show(got)));
                return;
            };
            for (i, item) in items.iter().enumerate() {
                match item.get("name").and_then(Value::as_str) {
                    Some(name) => {
                        let name = render(name);
                        let same = live.iter().find(|l| l.get("name").and_then(Value::as_str) == Some(name.as_str()));
                        let here = format!("{path}[name={name}]");
                        match same {
                            Some(l) => walk(item, Some(l), &here, render, found),
                            None => found.push(format!("{here}: expected an item named {name}, found none")),
                        }
                    }
                    None => walk(item, live.get(i), &format!("{path}[{i}]"), render, found),
                }
            }
        }
        scalar => {
            let want = match scalar {
                Value::String(s) => Value::String(render(s)),
                other => other.clone(),
            };
            if !got.is_some_and(|g| values_equal(&want, g)) {
                found.push(format!("{at}: expected {}, found {}", show(Some(&want)), show(got)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same(s: &str) -> String {
        s.replace("{{ image }}", "redis:7.2")
    }

    #[test]
    fn a_live_object_that_holds_the_part_has_no_difference() {
        let live = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "sidecar", "image": "busybox"}, {"name": "redis", "image": "redis:7.2", "ports": [{"containerPort": 6379}]}
        ]}}}, "status": {"readyReplicas": 2}});
        let part = json!({"spec": {"replicas": "2", "template": {"spec": {"containers": [
            {"name": "redis", "image": "{{ image }}", "ports": [{"containerPort": 6379}]}
        ]}}}});
        assert_eq!(differences(&part, &live, &same), Vec::<String>::new());
    }

    #[test]
    fn every_difference_is_named_by_its_path() {
        let live = json!({"metadata": {"labels": {"app.kubernetes.io/name": "redis"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "redis", "image": "redis:7.2"}]}}}});
        let part = json!({"metadata": {"labels": {"app.kubernetes.io/name": "cache"}},
            "spec": {"replicas": 3, "paused": true, "template": {"spec": {"containers": [
                {"name": "redis", "image": "redis:8"}, {"name": "exporter"}]}}},
            "status": {"readyReplicas": 3}});
        assert_eq!(
            differences(&part, &live, &same),
            [
                "metadata.labels[\"app.kubernetes.io/name\"]: expected cache, found redis",
                "spec.paused: expected true, found <missing>",
                "spec.replicas: expected 3, found 1",
                "spec.template.spec.containers[name=redis].image: expected redis:8, found redis:7.2",
                "spec.template.spec.containers[name=exporter]: expected an item named exporter, found none",
                "status: expected an object, found <missing>",
            ]
        );
    }

    #[test]
    fn unnamed_list_items_compare_by_position() {
        let live = json!({"args": ["--port", "6379"]});
        assert!(differences(&json!({"args": ["--port"]}), &live, &same).is_empty());
        assert_eq!(
            differences(&json!({"args": ["--port", "7000"]}), &live, &same),
            ["args[1]: expected 7000, found 6379"]
        );
    }
}

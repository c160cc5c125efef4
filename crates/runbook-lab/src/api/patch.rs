//! Patches: JSON merge and JSON patch (by the `json-patch` crate), strategic
//! merge (lists merged by their key, as kubectl's client-side apply expects) and
//! server-side apply (fields a manager stops applying are removed).

use serde_json::{Map, Value, json};

use super::status::{ApiError, ApiResult};

/// The patch encodings the lab accepts, by request content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// Maps a request content type to a patch kind.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let base = content_type.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// Applies a merge, JSON or strategic patch to `target` in place.
pub fn apply_patch(kind: PatchKind, target: &mut Value, body: &[u8]) -> ApiResult<()> {
    match kind {
        PatchKind::Merge => {
            let patch: Value = parse_json(body)?;
            json_patch::merge(target, &patch);
        }
        PatchKind::Json => {
            let patch: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(target, &patch).map_err(|_| ApiError::request_invalid())?;
        }
        PatchKind::Strategic => {
            let patch: Value = parse_json(body)?;
            strategic_merge(target, &patch);
        }
        PatchKind::Apply => return Err(ApiError::internal("server-side apply goes through apply()")),
    }
    Ok(())
}

/// Parses a JSON body, naming the problem when it is malformed.
pub fn parse_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// Parses a server-side apply body (YAML, of which JSON is a subset).
pub fn parse_apply_body(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    serde_yaml_ng::from_slice(body).map_err(|e| ApiError::bad_request(format!("the apply body is not valid YAML: {e}")))
}

/// The key that identifies list elements for strategic merge, as declared by
/// `patchMergeKey` on the Kubernetes types the scenarios use.
fn merge_key(field: &str, elements: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" if elements.iter().any(|e| e.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

/// Lists of scalars that strategic merge unions rather than replaces.
fn is_primitive_merge_list(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch, honouring the `$patch`, `$retainKeys`,
/// `$setElementOrder` and `$deleteFromPrimitiveList` directives.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch_map {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) =
                (target_map.get_mut(field).and_then(Value::as_array_mut), value.as_array())
            {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Object(_) => strategic_merge(target_map.entry(key.clone()).or_insert(Value::Null), value),
            Value::Array(items) => {
                let current = target_map.remove(key);
                target_map.insert(key.clone(), merge_list(key, current, items));
            }
            scalar => {
                target_map.insert(key.clone(), scalar.clone());
            }
        }
    }
    if let Some(retain) = patch_map.get("$retainKeys").and_then(Value::as_array) {
        target_map.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
}

fn merge_list(field: &str, current: Option<Value>, patch: &[Value]) -> Value {
    let mut current = match current {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    if is_primitive_merge_list(field) {
        for item in patch {
            if !current.contains(item) {
                current.push(item.clone());
            }
        }
        return Value::Array(current);
    }
    let Some(key) = merge_key(field, patch) else {
        return Value::Array(patch.iter().map(strip_directives).collect());
    };
    if patch.iter().any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace")) {
        return Value::Array(patch.iter().filter(|p| p.get("$patch").is_none()).map(strip_directives).collect());
    }
    for item in patch {
        let id = item.get(key);
        let position = current.iter().position(|c| id.is_some() && c.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                current.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut current[i], item),
            (None, false) => current.push(strip_directives(item)),
        }
    }
    Value::Array(current)
}

/// `value` without strategic merge directives (`$patch`, `$retainKeys`, …).
pub fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k.clone(), strip_directives(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// The set of fields an applied configuration sets, in the `FieldsV1` form
/// (`f:name` for fields, `k:{"name":"x"}` for keyed list elements).
pub fn field_set(value: &Value, field: &str) -> Value {
    match value {
        Value::Object(map) => {
            let mut set = Map::new();
            for (k, v) in map {
                set.insert(format!("f:{k}"), field_set(v, k));
            }
            Value::Object(set)
        }
        Value::Array(items) => match merge_key(field, items) {
            Some(key) => {
                let mut set = Map::new();
                for item in items {
                    let id = json!({key: item.get(key).cloned().unwrap_or(Value::Null)});
                    let mut inner = field_set(item, field).as_object().cloned().unwrap_or_default();
                    inner.insert(".".into(), json!({}));
                    set.insert(format!("k:{id}"), Value::Object(inner));
                }
                Value::Object(set)
            }
            None => json!({}),
        },
        _ => json!({}),
    }
}

/// Removes from `live` every field named in `old` but not in `new` field sets.
fn remove_dropped_fields(live: &mut Value, old: &Value, new: &Value) {
    let Some(old_map) = old.as_object() else { return };
    for (name, old_child) in old_map {
        let new_child = new.get(name);
        if let Some(field) = name.strip_prefix("f:") {
            let Some(obj) = live.as_object_mut() else { continue };
            match new_child {
                None => {
                    obj.remove(field);
                }
                Some(new_child) => {
                    if let Some(child) = obj.get_mut(field) {
                        remove_dropped_fields(child, old_child, new_child);
                    }
                }
            }
        } else if let Some(id) = name.strip_prefix("k:") {
            let Ok(Value::Object(id)) = serde_json::from_str::<Value>(id) else { continue };
            let Some(list) = live.as_array_mut() else { continue };
            let matches = |item: &Value| id.iter().all(|(k, v)| item.get(k) == Some(v));
            match new_child {
                None => list.retain(|item| !matches(item)),
                Some(new_child) => {
                    if let Some(item) = list.iter_mut().find(|item| matches(item)) {
                        remove_dropped_fields(item, old_child, new_child);
                    }
                }
            }
        }
    }
}

/// Server-side apply of `applied` onto `live` (None to create) for `manager`:
/// fields the manager applied before but no longer applies are removed, the
/// rest is merged, and the manager's field set is recorded in `managedFields`.
pub fn server_side_apply(live: Option<&Value>, applied: &Value, manager: &str, now: &str) -> Value {
    let new_set = field_set(applied, "");
    let mut result = live.cloned().unwrap_or_else(|| json!({}));
    let managed: Vec<Value> = result["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    let previous =
        managed.iter().find(|m| m["manager"] == manager && m["operation"] == "Apply").map(|m| m["fieldsV1"].clone());
    if let Some(old_set) = previous {
        remove_dropped_fields(&mut result, &old_set, &new_set);
    }
    strategic_merge(&mut result, applied);
    let mut managed: Vec<Value> =
        managed.into_iter().filter(|m| !(m["manager"] == manager && m["operation"] == "Apply")).collect();
    let mut recorded = new_set;
    if let Some(meta) = recorded.get_mut("f:metadata").and_then(Value::as_object_mut) {
        // Identity fields are not "owned"; leaving them out keeps field sets small.
        meta.remove("f:name");
        meta.remove("f:namespace");
    }
    managed.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied["apiVersion"],
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": recorded,
    }));
    result["metadata"]["managedFields"] = Value::Array(managed);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut live = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
            {"name": "b", "image": "y"}
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "env": [{"name": "B", "value": "2"}]}, {"name": "b", "$patch": "delete"}]
        }});
        strategic_merge(&mut live, &patch);
        assert_eq!(
            live,
            json!({"spec": {"containers": [
                {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
            ]}})
        );
    }

    #[test]
    fn strategic_merge_replaces_unkeyed_lists_and_deletes_nulls() {
        let mut live = json!({"args": ["a", "b"], "x": 1, "finalizers": ["f1"]});
        strategic_merge(&mut live, &json!({"args": ["c"], "x": null, "finalizers": ["f2"]}));
        assert_eq!(live, json!({"args": ["c"], "finalizers": ["f1", "f2"]}));
    }

    #[test]
    fn strategic_merge_retain_keys() {
        let mut live = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}});
        strategic_merge(
            &mut live,
            &json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}),
        );
        assert_eq!(live, json!({"strategy": {"type": "Recreate"}}));
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped() {
        let first = json!({"metadata": {"name": "d", "labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 2}});
        let live = server_side_apply(None, &first, "m", "t");
        // Another writer's field must survive the manager's next apply.
        let mut live = live;
        live["metadata"]["labels"]["other"] = json!("kept");
        let second = json!({"metadata": {"name": "d", "labels": {"a": "1"}}, "spec": {"replicas": 3}});
        let live = server_side_apply(Some(&live), &second, "m", "t");
        assert_eq!(live["metadata"]["labels"], json!({"a": "1", "other": "kept"}));
        assert_eq!(live["spec"]["replicas"], 3);
    }

    #[test]
    fn apply_removes_dropped_keyed_list_items() {
        let first = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let live = server_side_apply(None, &first, "m", "t");
        let second = json!({"spec": {"containers": [{"name": "a", "image": "z"}]}});
        let live = server_side_apply(Some(&live), &second, "m", "t");
        assert_eq!(live["spec"]["containers"], json!([{"name": "a", "image": "z"}]));
    }

    #[test]
    fn malformed_patch_is_a_bad_request() {
        let err = apply_patch(PatchKind::Merge, &mut json!({}), b"{not json").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
    }
}

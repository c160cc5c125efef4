//! What the API server does to an object before storing it: validation (the
//! rejections kubectl users know as `Invalid`), defaulting, and computed fields
//! such as a pod's QoS class.

use serde_json::Value;

use super::names;
use super::resources::ResourceType;
use super::selectors::LabelSelector;
use super::status::{ApiError, ApiResult};
use runbook_units::Quantity;

type Causes = Vec<(String, String)>;

/// Validates an update of `old` to `new`: `new` must be valid and change
/// nothing immutable.
pub fn validate_update(rt: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
    let mut causes = causes(rt, new);
    causes.extend(super::immutable::violations(rt, old, new));
    finish(rt, new, causes)
}

/// Validates an object of type `rt`; returns 422 Invalid naming every bad field.
pub fn validate(rt: &ResourceType, object: &Value) -> ApiResult<()> {
    finish(rt, object, causes(rt, object))
}

fn finish(rt: &ResourceType, object: &Value, causes: Causes) -> ApiResult<()> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(&rt.qualified_kind(), name, causes)) }
}

fn causes(rt: &ResourceType, object: &Value) -> Causes {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Causes::new();
    if name.is_empty() {
        causes.push(("metadata.name".into(), "Required value: name or generateName is required".into()));
    }
    for why in if name.is_empty() { Vec::new() } else { names::object_name(rt.kind, name) } {
        causes.push(("metadata.name".into(), format!("Invalid value: {name:?}: {why}")));
    }
    check_labels(&object["metadata"]["labels"], "metadata.labels", &mut causes);
    match rt.kind {
        "Pod" => check_pod_spec(&object["spec"], "spec", &mut causes),
        "Deployment" | "ReplicaSet" | "StatefulSet" => check_workload(object, &mut causes),
        "Service" => check_service(&object["spec"], &mut causes),
        "ConfigMap" | "Secret" => check_data_keys(object, &mut causes),
        "PersistentVolumeClaim" => {
            if object["spec"]["resources"]["requests"]["storage"].is_null() {
                causes.push(("spec.resources[storage]".into(), "Required value".into()));
            }
            check_access_modes(&object["spec"]["accessModes"], "spec.accessModes", &mut causes);
        }
        "PersistentVolume" => {
            if object["spec"]["capacity"]["storage"].is_null() {
                causes.push(("spec.capacity".into(), "Required value".into()));
            }
            check_access_modes(&object["spec"]["accessModes"], "spec.accessModes", &mut causes);
        }
        _ => {}
    }
    causes
}

fn check_labels(labels: &Value, field: &str, causes: &mut Causes) {
    let Some(map) = labels.as_object() else { return };
    for (k, v) in map {
        let value = v.as_str().unwrap_or_default();
        let valid_value = value.len() <= 63
            && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && (value.is_empty()
                || value.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
        if !v.is_string() || !valid_value {
            causes.push((
                field.to_string(),
                format!(
                    "Invalid value: {v}: a valid label value is at most 63 alphanumeric characters, '-', '_' or '.'"
                ),
            ));
        }
        if k.is_empty() {
            causes.push((field.to_string(), "Invalid value: \"\": label keys must not be empty".into()));
        }
    }
}

fn check_access_modes(modes: &Value, field: &str, causes: &mut Causes) {
    const KNOWN: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];
    match modes.as_array() {
        Some(list) if !list.is_empty() => {
            for m in list {
                if !m.as_str().is_some_and(|m| KNOWN.contains(&m)) {
                    causes.push((field.to_string(), format!("Unsupported value: {m}")));
                }
            }
        }
        _ => causes.push((field.to_string(), "Required value: at least 1 access mode is required".into())),
    }
}

fn check_data_keys(object: &Value, causes: &mut Causes) {
    for field in ["data", "binaryData", "stringData"] {
        for key in object[field].as_object().into_iter().flat_map(|m| m.keys()) {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
                causes.push((
                    format!("{field}[{key}]"),
                    "Invalid value: a valid config key must consist of alphanumeric characters, '-', '_' or '.'".into(),
                ));
            }
        }
    }
}

fn check_workload(object: &Value, causes: &mut Causes) {
    let spec = &object["spec"];
    if let Some(replicas) = spec["replicas"].as_i64()
        && replicas < 0
    {
        causes.push(("spec.replicas".into(), format!("Invalid value: {replicas}: must be greater than or equal to 0")));
    }
    // As apps validation does: a missing selector selects nothing (so the
    // template's labels cannot match it); an empty one everything.
    let labels = &spec["template"]["metadata"]["labels"];
    let mismatch = || {
        (
            "spec.template.metadata.labels".to_string(),
            format!("Invalid value: {labels}: `selector` does not match template `labels`"),
        )
    };
    match LabelSelector::from_object(&spec["selector"]) {
        _ if spec["selector"].is_null() => {
            causes.push(("spec.selector".into(), "Required value".into()));
            causes.push(mismatch());
        }
        Ok(selector) if selector.is_empty() => {
            let what = object["kind"].as_str().unwrap_or_default().to_lowercase();
            causes.push(("spec.selector".into(), format!("Invalid value: {{}}: empty selector is invalid for {what}")));
        }
        Ok(selector) => {
            if !selector.matches_labels(labels) {
                causes.push(mismatch());
            }
        }
        Err(e) => causes.push(("spec.selector".into(), e.message)),
    }
    check_pod_spec(&spec["template"]["spec"], "spec.template.spec", causes);
}

fn check_pod_spec(spec: &Value, at: &str, causes: &mut Causes) {
    let containers = spec["containers"].as_array();
    if containers.is_none_or(|c| c.is_empty()) {
        causes.push((format!("{at}.containers"), "Required value".into()));
    }
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let path = format!("{at}.{list}[{i}]");
            match c["name"].as_str() {
                None | Some("") => causes.push((format!("{path}.name"), "Required value".into())),
                Some(n) => {
                    for why in names::dns1123_label(n) {
                        causes.push((format!("{path}.name"), format!("Invalid value: {n:?}: {why}")));
                    }
                }
            }
            if c["image"].as_str().is_none_or(str::is_empty) {
                causes.push((format!("{path}.image"), "Required value".into()));
            }
            for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
                if !p["containerPort"].as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                    causes.push((
                        format!("{path}.ports[{j}].containerPort"),
                        format!("Invalid value: {}: must be between 1 and 65535, inclusive", p["containerPort"]),
                    ));
                }
            }
            check_resources(&c["resources"], &format!("{path}.resources"), causes);
        }
    }
}

fn check_resources(resources: &Value, at: &str, causes: &mut Causes) {
    for part in ["requests", "limits"] {
        for (name, value) in resources[part].as_object().into_iter().flatten() {
            if quantity_of(value).is_none() {
                causes.push((
                    format!("{at}.{part}[{name}]"),
                    format!("Invalid value: {value}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                ));
            }
        }
    }
    for (name, request) in resources["requests"].as_object().into_iter().flatten() {
        if let (Some(r), Some(l)) = (quantity_of(request), quantity_of(&resources["limits"][name]))
            && r > l
        {
            causes.push((
                format!("{at}.requests"),
                format!(
                    "Invalid value: {request}: must be less than or equal to {name} limit of {}",
                    resources["limits"][name]
                ),
            ));
        }
    }
}

fn quantity_of(value: &Value) -> Option<Quantity> {
    match value {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

fn check_service(spec: &Value, causes: &mut Causes) {
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports = spec["ports"].as_array();
    if ports.is_none_or(|p| p.is_empty()) && !headless {
        causes.push(("spec.ports".into(), "Required value".into()));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        if !p["port"].as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
            causes.push((
                format!("spec.ports[{i}].port"),
                "Invalid value: must be between 1 and 65535, inclusive".into(),
            ));
        }
        if ports.is_some_and(|all| all.len() > 1) && p["name"].as_str().is_none_or(str::is_empty) {
            causes.push((format!("spec.ports[{i}].name"), "Required value".into()));
        }
    }
    if let Some(t) = spec["type"].as_str()
        && !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&t)
    {
        causes.push(("spec.type".into(), format!("Unsupported value: {t:?}")));
    }
}

/// The pod's QoS class by the Kubernetes rules: Guaranteed when every container
/// has CPU and memory limits equal to its requests, BestEffort when no container
/// requests or limits anything, Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> =
        ["initContainers", "containers"].iter().flat_map(|list| spec[list].as_array().into_iter().flatten()).collect();
    let set = |c: &Value, part: &str, res: &str| !c["resources"][part][res].is_null();
    let any = containers.iter().any(|c| ["cpu", "memory"].iter().any(|r| set(c, "requests", r) || set(c, "limits", r)));
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = quantity_of(&c["resources"]["limits"][*r]);
            let request = quantity_of(&c["resources"]["requests"][*r]).or(limit);
            limit.is_some() && request == limit
        })
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::defaults;
    use crate::api::resources::by_kind;

    fn container(resources: Value) -> Value {
        json!({"containers": [{"name": "c", "image": "redis", "resources": resources}]})
    }

    #[test]
    fn qos_follows_kubernetes_rules() {
        assert_eq!(qos_class(&container(json!({}))), "BestEffort");
        assert_eq!(qos_class(&container(json!({"requests": {"cpu": "1"}}))), "Burstable");
        assert_eq!(qos_class(&container(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(
            qos_class(&container(
                json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&container(
                json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Burstable"
        );
    }

    #[test]
    fn rejects_what_kubectl_users_see_rejected() {
        let deploy = by_kind("apps/v1", "Deployment").unwrap();
        let bad = json!({"metadata": {"name": "Bad_Name"}, "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c"}]}}
        }});
        let err = validate(deploy, &bad).unwrap_err();
        assert_eq!(err.code, 422);
        for field in ["metadata.name", "spec.template.metadata.labels", "containers[0].image"] {
            assert!(err.message.contains(field), "{field} missing from {}", err.message);
        }
    }

    #[test]
    fn secret_string_data_is_folded() {
        let mut secret = json!({"stringData": {"password": "pw"}});
        defaults::fold_string_data(&mut secret);
        assert_eq!(secret, json!({"data": {"password": "cHc="}}));
    }
}

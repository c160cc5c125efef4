//! What an update may not change, with Kubernetes' messages: a workload's
//! selector, a StatefulSet's spec outside the fields it lets change, a pod's
//! spec beyond its images and a few fields, an immutable ConfigMap's or
//! Secret's data, a Secret's type.

use serde_json::Value;

use super::resources::ResourceType;

/// StatefulSet spec fields an update may change (apps validation).
const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "template",
    "updateStrategy",
    "minReadySeconds",
    "ordinals",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
];

/// Kubernetes follows this with a diff of its internal PodSpec, which the lab
/// cannot reproduce (docs/lab.md).
const POD_UPDATE: &str = "pod updates may not change fields other than `spec.containers[*].image`,\
`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing \
tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A pod's spec without what an update may change: images, the active
/// deadline, tolerations, the grace period, and the node a pod is bound to
/// (the lab's scheduler binds by update; Kubernetes has a binding
/// subresource for it).
fn pod_spec_fixed(pod: &Value) -> Value {
    let mut spec = pod["spec"].clone();
    if let Some(map) = spec.as_object_mut() {
        for field in ["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "nodeName"] {
            map.remove(field);
        }
    }
    for list in ["containers", "initContainers"] {
        for container in spec[list].as_array_mut().into_iter().flatten() {
            if let Some(map) = container.as_object_mut() {
                map.remove("image");
            }
        }
    }
    spec
}

const IMMUTABLE_WHEN_SET: &str = "Forbidden: field is immutable when `immutable` is set";

/// The (field, message) causes that make updating `old` to `new` invalid.
pub fn violations(rt: &ResourceType, old: &Value, new: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    match rt.kind {
        "Deployment" | "ReplicaSet" if old["spec"]["selector"] != new["spec"]["selector"] => {
            causes.push((
                "spec.selector".into(),
                format!("Invalid value: {}: field is immutable", new["spec"]["selector"]),
            ));
        }
        "StatefulSet" => {
            let fixed = |object: &Value| {
                let mut spec = object["spec"].as_object().cloned().unwrap_or_default();
                spec.retain(|field, _| !STATEFULSET_MUTABLE.contains(&field.as_str()));
                spec
            };
            if fixed(old) != fixed(new) {
                causes.push((
                    "spec".into(),
                    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
                     'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and \
                     'minReadySeconds' are forbidden"
                        .into(),
                ));
            }
        }
        "Pod" if pod_spec_fixed(old) != pod_spec_fixed(new) => {
            causes.push(("spec".into(), format!("Forbidden: {POD_UPDATE}")));
        }
        "ConfigMap" | "Secret" => {
            if rt.kind == "Secret" && old["type"] != new["type"] {
                causes.push(("type".into(), format!("Invalid value: {}: field is immutable", new["type"])));
            }
            if old["immutable"] == true {
                if new["immutable"] != true {
                    causes.push(("immutable".into(), IMMUTABLE_WHEN_SET.into()));
                }
                let data_fields: &[&str] = if rt.kind == "Secret" { &["data"] } else { &["data", "binaryData"] };
                for field in data_fields {
                    if empty_as_null(&old[field]) != empty_as_null(&new[field]) {
                        causes.push((field.to_string(), IMMUTABLE_WHEN_SET.into()));
                    }
                }
            }
        }
        _ => {}
    }
    causes
}

/// Go's DeepEqual sees a missing map and an empty one alike after decoding.
fn empty_as_null(value: &Value) -> &Value {
    match value {
        Value::Object(map) if map.is_empty() => &Value::Null,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::resources::by_kind;

    #[test]
    fn selectors_statefulset_specs_and_immutable_data_cannot_change() {
        let deployment = by_kind("apps/v1", "Deployment").unwrap();
        let old = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "replicas": 1}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        assert!(violations(deployment, &old, &new).is_empty());
        new["spec"]["selector"]["matchLabels"]["x"] = json!("y");
        assert_eq!(
            violations(deployment, &old, &new),
            [(
                "spec.selector".to_string(),
                r#"Invalid value: {"matchLabels":{"app":"web","x":"y"}}: field is immutable"#.to_string()
            )]
        );

        let sts = by_kind("apps/v1", "StatefulSet").unwrap();
        let old = json!({"spec": {"serviceName": "redis", "replicas": 3, "template": {}}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(6);
        assert!(violations(sts, &old, &new).is_empty());
        new["spec"]["serviceName"] = json!("other");
        assert_eq!(violations(sts, &old, &new)[0].0, "spec");

        let pod = by_kind("v1", "Pod").unwrap();
        let old = json!({"spec": {"containers": [{"name": "c", "image": "a", "command": ["sleep", "3600"]}]}});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("b");
        new["spec"]["nodeName"] = json!("runbook-lab");
        assert!(violations(pod, &old, &new).is_empty());
        new["spec"]["containers"][0]["command"] = json!(["sleep", "1"]);
        assert!(violations(pod, &old, &new)[0].1.starts_with("Forbidden: pod updates may not change fields"));

        let cm = by_kind("v1", "ConfigMap").unwrap();
        let old = json!({"immutable": true, "data": {"a": "b"}});
        let new = json!({"immutable": true, "data": {"a": "c"}});
        assert_eq!(violations(cm, &old, &new), [("data".to_string(), IMMUTABLE_WHEN_SET.to_string())]);
        assert!(violations(cm, &json!({"data": {"a": "b"}}), &new).is_empty());
    }
}

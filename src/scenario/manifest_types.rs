//! Manifests of built-in kinds checked offline against their Kubernetes types
//! (k8s-openapi), as the API server would decode them: `replicas: "two"` is an
//! error before any cluster is touched, and an unknown field is one too, as
//! `kubectl apply` (strict field validation) makes it.

use k8s_openapi::Resource;
use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy, rbac, storage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::locate::escape;

/// A problem in one manifest document: where (a JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeProblem {
    /// JSON pointer of the offending node (`/spec/replicas`).
    pub pointer: String,
    /// What is wrong, in the API server's terms.
    pub message: String,
}

/// Every type problem of a document whose kind is built in; nothing for other
/// kinds (custom resources are the API server's business).
pub fn check(doc: &Value) -> Vec<TypeProblem> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    macro_rules! kinds {
        ($($t:ty),* $(,)?) => {
            $(
                if api_version == <$t as Resource>::API_VERSION && kind == <$t as Resource>::KIND {
                    return typed::<$t>(doc);
                }
            )*
        };
    }
    kinds!(
        core::v1::Pod,
        core::v1::Service,
        core::v1::ConfigMap,
        core::v1::Secret,
        core::v1::PersistentVolumeClaim,
        core::v1::PersistentVolume,
        core::v1::Namespace,
        core::v1::ServiceAccount,
        core::v1::Endpoints,
        core::v1::LimitRange,
        core::v1::ResourceQuota,
        apps::v1::Deployment,
        apps::v1::StatefulSet,
        apps::v1::DaemonSet,
        apps::v1::ReplicaSet,
        batch::v1::Job,
        batch::v1::CronJob,
        autoscaling::v1::HorizontalPodAutoscaler,
        autoscaling::v2::HorizontalPodAutoscaler,
        policy::v1::PodDisruptionBudget,
        networking::v1::Ingress,
        networking::v1::NetworkPolicy,
        rbac::v1::Role,
        rbac::v1::RoleBinding,
        rbac::v1::ClusterRole,
        rbac::v1::ClusterRoleBinding,
        storage::v1::StorageClass,
    );
    Vec::new()
}

fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> Vec<TypeProblem> {
    match serde_path_to_error::deserialize::<_, T>(doc.clone()) {
        Err(e) => {
            let pointer: String = e
                .path()
                .iter()
                .map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
                    serde_path_to_error::Segment::Map { key } => format!("/{}", escape(key)),
                    serde_path_to_error::Segment::Enum { variant } => format!("/{}", escape(variant)),
                    serde_path_to_error::Segment::Unknown => String::new(),
                })
                .collect();
            let field = e.path().to_string();
            vec![TypeProblem { pointer, message: format!("{field}: {}", e.into_inner()) }]
        }
        Ok(typed) => {
            // What the type does not know is dropped when it is written back.
            let known = serde_json::to_value(&typed).unwrap_or(Value::Null);
            let mut problems = Vec::new();
            unknown_fields(doc, &known, "", "", &mut problems);
            problems
        }
    }
}

fn unknown_fields(given: &Value, known: &Value, pointer: &str, field: &str, out: &mut Vec<TypeProblem>) {
    match (given, known) {
        (Value::Object(given), Value::Object(known)) => {
            for (key, value) in given {
                let pointer = format!("{pointer}/{}", escape(key));
                let field = if field.is_empty() { key.clone() } else { format!("{field}.{key}") };
                match known.get(key) {
                    Some(k) => unknown_fields(value, k, &pointer, &field, out),
                    // An empty value (`key:` or `key: null`) means "not set".
                    None if value.is_null() => {}
                    None => out.push(TypeProblem {
                        message: format!("unknown field {field:?} (the API server refuses it under strict validation)"),
                        pointer,
                    }),
                }
            }
        }
        (Value::Array(given), Value::Array(known)) => {
            for (i, (g, k)) in given.iter().zip(known).enumerate() {
                unknown_fields(g, k, &format!("{pointer}/{i}"), &format!("{field}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: redis}\nspec:\n  \
        replicas: REPLICAS\n  selector: {matchLabels: {app: redis}}\n  template:\n    metadata: {labels: {app: redis}}\n    \
        spec:\n      containers:\n        - name: redis\n          image: redis:7\n          ports: [{containerPort: 6379}]\n";

    #[test]
    fn a_replica_count_that_is_not_a_number_is_refused() {
        assert_eq!(check(&doc(&DEPLOYMENT.replace("REPLICAS", "1"))), vec![]);
        for bad in ["\"two\"", "2.5", "true"] {
            let problems = check(&doc(&DEPLOYMENT.replace("REPLICAS", bad)));
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert_eq!(problems[0].pointer, "/spec/replicas");
            assert!(problems[0].message.starts_with("spec.replicas: invalid type"), "{problems:?}");
        }
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let text = DEPLOYMENT
            .replace("REPLICAS", "1")
            .replace("image: redis:7", "image: redis:7\n          imagePullPolicyy: Always");
        let problems = check(&doc(&text));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].pointer, "/spec/template/spec/containers/0/imagePullPolicyy");
        assert!(problems[0].message.starts_with("unknown field \"spec.template.spec.containers[0].imagePullPolicyy\""));
    }

    #[test]
    fn custom_kinds_and_empty_fields_are_left_alone() {
        assert_eq!(
            check(&doc("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: big}\n")),
            vec![]
        );
        let empty = doc("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\ndata: {a: b}\n");
        assert_eq!(check(&empty), vec![]);
    }
}

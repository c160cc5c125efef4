//! Container environment as the kubelet builds it: `value`, `valueFrom`
//! (fieldRef, secretKeyRef, configMapKeyRef, resourceFieldRef), `envFrom`, and
//! `$(VAR)` expansion in values, command and args.

use base64::Engine;
use serde_json::Value;

use crate::api::store::Store;

/// Values a fieldRef can read that live outside the pod object.
pub struct PodFacts<'a> {
    /// The pod object.
    pub pod: &'a Value,
    /// The pod's IP.
    pub pod_ip: &'a str,
    /// The node's IP.
    pub host_ip: &'a str,
}

fn field_ref(facts: &PodFacts, path: &str) -> Result<String, String> {
    let pod = facts.pod;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Ok(match path {
        "status.podIP" => facts.pod_ip.to_string(),
        "status.podIPs" => facts.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_string(),
        "metadata.name" => text(&pod["metadata"]["name"]),
        "metadata.namespace" => text(&pod["metadata"]["namespace"]),
        "metadata.uid" => text(&pod["metadata"]["uid"]),
        "spec.nodeName" => text(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => text(&pod["spec"]["serviceAccountName"]),
        other => {
            if let Some(key) = other.strip_prefix("metadata.labels['").and_then(|k| k.strip_suffix("']")) {
                text(&pod["metadata"]["labels"][key])
            } else if let Some(key) = other.strip_prefix("metadata.annotations['").and_then(|k| k.strip_suffix("']")) {
                text(&pod["metadata"]["annotations"][key])
            } else {
                return Err(format!("unsupported fieldRef {other:?}"));
            }
        }
    })
}

/// Reads one key of a Secret or ConfigMap in the pod's namespace.
fn key_ref(store: &Store, ns: &str, source: &Value, secret: bool) -> Result<Option<String>, String> {
    let name = source["name"].as_str().unwrap_or_default();
    let key = source["key"].as_str().unwrap_or_default();
    let optional = source["optional"].as_bool().unwrap_or(false);
    let kind = if secret { "secret" } else { "configmap" };
    let Some(object) = store.get(if secret { "secrets" } else { "configmaps" }, ns, name) else {
        return if optional { Ok(None) } else { Err(format!("{kind} \"{name}\" not found")) };
    };
    let value = if secret {
        object["data"][key]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    } else {
        object["data"][key].as_str().map(String::from)
    };
    match value {
        Some(v) => Ok(Some(v)),
        None if optional => Ok(None),
        None => Err(format!("couldn't find key {key} in {kind} {ns}/{name}")),
    }
}

/// Builds a container's environment (in order, later entries win).
pub fn build(store: &Store, facts: &PodFacts, container: &Value) -> Result<Vec<(String, String)>, String> {
    let ns = facts.pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = source["prefix"].as_str().unwrap_or_default();
        let (kind, reference) = if source["secretRef"].is_object() {
            ("secrets", &source["secretRef"])
        } else {
            ("configmaps", &source["configMapRef"])
        };
        let name = reference["name"].as_str().unwrap_or_default();
        match store.get(kind, ns, name) {
            Some(object) => {
                for (k, v) in object["data"].as_object().into_iter().flatten() {
                    let v = v.as_str().unwrap_or_default();
                    let value = if kind == "secrets" {
                        base64::engine::general_purpose::STANDARD
                            .decode(v)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_default()
                    } else {
                        v.to_string()
                    };
                    set(&mut env, format!("{prefix}{k}"), value);
                }
            }
            None if reference["optional"].as_bool().unwrap_or(false) => {}
            None => return Err(format!("{} \"{name}\" not found", &kind[..kind.len() - 1])),
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_string();
        let from = &var["valueFrom"];
        let value = if let Some(v) = var["value"].as_str() {
            Some(expand(v, &env))
        } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
            Some(field_ref(facts, path)?)
        } else if from["secretKeyRef"].is_object() {
            key_ref(store, ns, &from["secretKeyRef"], true)?
        } else if from["configMapKeyRef"].is_object() {
            key_ref(store, ns, &from["configMapKeyRef"], false)?
        } else if let Some(resource) = from["resourceFieldRef"]["resource"].as_str() {
            let (part, res) = resource.split_once('.').unwrap_or(("limits", resource));
            Some(container["resources"][part][res].as_str().map(String::from).unwrap_or_else(|| "0".into()))
        } else {
            Some(String::new())
        };
        if let Some(value) = value {
            set(&mut env, name, value);
        }
    }
    Ok(env)
}

/// Expands `$(VAR)` references from `env`; `$$` escapes; unknown references stay.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(B)", &env), "$(B)");
        assert_eq!(expand("$HOME", &env), "$HOME");
    }

    #[test]
    fn field_refs_and_values() {
        let store = Store::new();
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}});
        let facts = PodFacts { pod: &pod, pod_ip: "10.244.0.5", host_ip: "127.0.0.1" };
        let container = json!({"env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "ADDR", "value": "$(POD_IP):6379"}
        ]});
        let env = build(&store, &facts, &container).unwrap();
        assert_eq!(
            env,
            vec![
                ("POD_IP".into(), "10.244.0.5".into()),
                ("NAME".into(), "p".into()),
                ("ADDR".into(), "10.244.0.5:6379".into())
            ]
        );
        let missing = json!({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]});
        assert_eq!(build(&store, &facts, &missing).unwrap_err(), "secret \"s\" not found");
    }
}

//! Protobuf request bodies. `kubectl create configmap|secret|namespace|
//! deployment|service|serviceaccount` send `application/vnd.kubernetes.protobuf`
//! and fail on a 415, so the lab decodes those kinds (message types from the
//! `k8s-pb` crate) into JSON.
//! Only the fields the generators set are carried over; others are refused
//! loudly rather than dropped silently.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use super::status::{ApiError, ApiResult};

/// The content type kubectl's generators use.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// Decodes a protobuf-encoded object (the `k8s\0` envelope around a
/// `runtime.Unknown`) into its JSON form.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let bad = |what: String| ApiError::bad_request(format!("protobuf body: {what}"));
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| bad("missing the k8s\\0 prefix".into()))?;
    let unknown = Unknown::decode(rest).map_err(|e| bad(e.to_string()))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let decode_err = |e: prost::DecodeError| bad(format!("{kind}: {e}"));
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => {
            let cm = core::ConfigMap::decode(raw.as_slice()).map_err(decode_err)?;
            let mut o = json!({"metadata": object_meta(cm.metadata)});
            put_map(&mut o, "data", cm.data.into_iter().map(|(k, v)| (k, json!(v))));
            put_map(&mut o, "binaryData", cm.binary_data.into_iter().map(|(k, v)| (k, json!(b64(&v)))));
            if let Some(i) = cm.immutable {
                o["immutable"] = json!(i);
            }
            o
        }
        ("v1", "Secret") => {
            let s = core::Secret::decode(raw.as_slice()).map_err(decode_err)?;
            let mut o = json!({"metadata": object_meta(s.metadata)});
            put_map(&mut o, "data", s.data.into_iter().map(|(k, v)| (k, json!(b64(&v)))));
            put_map(&mut o, "stringData", s.string_data.into_iter().map(|(k, v)| (k, json!(v))));
            if let Some(t) = s.r#type {
                o["type"] = json!(t);
            }
            o
        }
        ("v1", "Namespace") => {
            let ns = core::Namespace::decode(raw.as_slice()).map_err(decode_err)?;
            json!({"metadata": object_meta(ns.metadata), "spec": {}})
        }
        ("v1", "Service") => {
            let svc = core::Service::decode(raw.as_slice()).map_err(decode_err)?;
            json!({"metadata": object_meta(svc.metadata), "spec": service_spec(svc.spec.unwrap_or_default())})
        }
        ("v1", "ServiceAccount") => {
            let sa = core::ServiceAccount::decode(raw.as_slice()).map_err(decode_err)?;
            json!({"metadata": object_meta(sa.metadata)})
        }
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            let h =
                k8s_pb::api::autoscaling::v2::HorizontalPodAutoscaler::decode(raw.as_slice()).map_err(decode_err)?;
            json!({"metadata": object_meta(h.metadata), "spec": hpa_spec(h.spec.unwrap_or_default())?})
        }
        ("apps/v1", "Deployment") => {
            let d = apps::Deployment::decode(raw.as_slice()).map_err(decode_err)?;
            json!({"metadata": object_meta(d.metadata), "spec": deployment_spec(d.spec.unwrap_or_default())?})
        }
        _ => {
            return Err(ApiError::unsupported_media(&format!(
                "{PROTOBUF_CONTENT_TYPE} for {api_version} {kind} (the lab reads protobuf only for ConfigMap, \
                 Secret, Namespace, Service, ServiceAccount, Deployment and HorizontalPodAutoscaler; send JSON)"
            )));
        }
    };
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn put_map(object: &mut Value, key: &str, entries: impl Iterator<Item = (String, Value)>) {
    let map: Map<String, Value> = entries.collect();
    if !map.is_empty() {
        object[key] = Value::Object(map);
    }
}

fn string_map(map: BTreeMap<String, String>) -> Option<Value> {
    (!map.is_empty()).then(|| json!(map))
}

fn object_meta(meta: Option<meta::ObjectMeta>) -> Value {
    let meta = meta.unwrap_or_default();
    let mut out = json!({});
    for (key, value) in [("name", meta.name), ("generateName", meta.generate_name), ("namespace", meta.namespace)] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out[key] = json!(v);
        }
    }
    if let Some(labels) = string_map(meta.labels) {
        out["labels"] = labels;
    }
    if let Some(annotations) = string_map(meta.annotations) {
        out["annotations"] = annotations;
    }
    out
}

fn deployment_spec(spec: apps::DeploymentSpec) -> ApiResult<Value> {
    let mut out = json!({});
    if let Some(r) = spec.replicas {
        out["replicas"] = json!(r);
    }
    let selector = spec.selector.unwrap_or_default();
    if !selector.match_expressions.is_empty() {
        return Err(unsupported("spec.selector.matchExpressions"));
    }
    out["selector"] = json!({"matchLabels": selector.match_labels});
    out["strategy"] = json!({});
    let template = spec.template.unwrap_or_default();
    let pod = template.spec.unwrap_or_default();
    if !pod.volumes.is_empty() || !pod.init_containers.is_empty() {
        return Err(unsupported("spec.template.spec volumes or initContainers"));
    }
    let containers: Vec<Value> = pod.containers.into_iter().map(container).collect::<ApiResult<_>>()?;
    out["template"] = json!({"metadata": object_meta(template.metadata), "spec": {"containers": containers}});
    Ok(out)
}

/// What `kubectl create service clusterip|nodeport|loadbalancer|externalname` sets.
fn service_spec(spec: core::ServiceSpec) -> Value {
    let mut out = json!({});
    let ports: Vec<Value> = spec
        .ports
        .into_iter()
        .map(|p| {
            let mut port = json!({"port": p.port.unwrap_or_default()});
            for (key, value) in [("name", p.name), ("protocol", p.protocol)] {
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    port[key] = json!(v);
                }
            }
            match p.target_port {
                Some(t) if t.r#type == Some(1) => port["targetPort"] = json!(t.str_val.unwrap_or_default()),
                Some(t) if t.int_val.is_some_and(|v| v != 0) => port["targetPort"] = json!(t.int_val),
                _ => {}
            }
            if let Some(node_port) = p.node_port.filter(|n| *n != 0) {
                port["nodePort"] = json!(node_port);
            }
            port
        })
        .collect();
    if !ports.is_empty() {
        out["ports"] = json!(ports);
    }
    if let Some(selector) = string_map(spec.selector) {
        out["selector"] = selector;
    }
    for (key, value) in [("type", spec.r#type), ("clusterIP", spec.cluster_ip), ("externalName", spec.external_name)] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out[key] = json!(v);
        }
    }
    out
}

fn hpa_spec(spec: k8s_pb::api::autoscaling::v2::HorizontalPodAutoscalerSpec) -> ApiResult<Value> {
    let target = spec.scale_target_ref.unwrap_or_default();
    let mut metrics = Vec::new();
    for m in spec.metrics {
        let Some(resource) = m.resource else { return Err(unsupported("HPA metrics other than Resource")) };
        let t = resource.target.unwrap_or_default();
        let mut target_json = json!({"type": t.r#type.unwrap_or_default()});
        if let Some(u) = t.average_utilization {
            target_json["averageUtilization"] = json!(u);
        }
        if let Some(v) = t.average_value.and_then(|q| q.string) {
            target_json["averageValue"] = json!(v);
        }
        metrics.push(
            json!({"type": "Resource", "resource": {"name": resource.name.unwrap_or_default(), "target": target_json}}),
        );
    }
    let mut out = json!({
        "scaleTargetRef": {"apiVersion": target.api_version.unwrap_or_default(), "kind": target.kind.unwrap_or_default(), "name": target.name.unwrap_or_default()},
        "maxReplicas": spec.max_replicas.unwrap_or_default(),
        "metrics": metrics,
    });
    if let Some(min) = spec.min_replicas {
        out["minReplicas"] = json!(min);
    }
    Ok(out)
}

fn container(c: core::Container) -> ApiResult<Value> {
    if !c.env.is_empty() || !c.volume_mounts.is_empty() || c.liveness_probe.is_some() || c.readiness_probe.is_some() {
        return Err(unsupported("containers[].env, volumeMounts or probes"));
    }
    let mut out = json!({"name": c.name.unwrap_or_default(), "image": c.image.unwrap_or_default()});
    if !c.command.is_empty() {
        out["command"] = json!(c.command);
    }
    if !c.args.is_empty() {
        out["args"] = json!(c.args);
    }
    let ports: Vec<Value> = c
        .ports
        .into_iter()
        .map(|p| {
            let mut port = json!({"containerPort": p.container_port.unwrap_or_default()});
            if let Some(proto) = p.protocol {
                port["protocol"] = json!(proto);
            }
            if let Some(name) = p.name.filter(|n| !n.is_empty()) {
                port["name"] = json!(name);
            }
            port
        })
        .collect();
    if !ports.is_empty() {
        out["ports"] = json!(ports);
    }
    let resources = c.resources.unwrap_or_default();
    let quantities = |m: BTreeMap<String, k8s_pb::apimachinery::pkg::api::resource::Quantity>| -> Value {
        json!(m.into_iter().map(|(k, q)| (k, q.string.unwrap_or_default())).collect::<BTreeMap<_, _>>())
    };
    let mut res = json!({});
    if !resources.requests.is_empty() {
        res["requests"] = quantities(resources.requests);
    }
    if !resources.limits.is_empty() {
        res["limits"] = quantities(resources.limits);
    }
    out["resources"] = res;
    Ok(out)
}

fn unsupported(what: &str) -> ApiError {
    ApiError::unsupported_media(&format!(
        "{PROTOBUF_CONTENT_TYPE} with {what} (the lab decodes only what kubectl's generators send; send JSON)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    #[test]
    fn decodes_a_configmap_from_literal() {
        let cm = core::ConfigMap {
            metadata: Some(meta::ObjectMeta { name: Some("my-redis-config".into()), ..Default::default() }),
            data: [("redis-config".to_string(), "maxmemory 2mb".to_string())].into(),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "my-redis-config"},
                   "data": {"redis-config": "maxmemory 2mb"}})
        );
    }

    #[test]
    fn decodes_a_service_as_kubectl_create_service_sends_it() {
        use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
        let svc = core::Service {
            metadata: Some(meta::ObjectMeta {
                name: Some("sv".into()),
                labels: [("app".to_string(), "sv".to_string())].into(),
                ..Default::default()
            }),
            spec: Some(core::ServiceSpec {
                ports: vec![core::ServicePort {
                    name: Some("80-8080".into()),
                    protocol: Some("TCP".into()),
                    port: Some(80),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    }),
                    ..Default::default()
                }],
                selector: [("app".to_string(), "sv".to_string())].into(),
                r#type: Some("ClusterIP".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "Service", svc.encode_to_vec())).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sv", "labels": {"app": "sv"}},
                   "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                            "selector": {"app": "sv"}, "type": "ClusterIP"}})
        );
    }

    #[test]
    fn refuses_garbage_and_unknown_kinds() {
        assert_eq!(decode(b"not protobuf").unwrap_err().code, 400);
        assert_eq!(decode(&envelope("v1", "Pod", vec![])).unwrap_err().code, 415);
    }
}

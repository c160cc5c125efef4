//! Endpoints: for every Service with a selector, the addresses of its pods
//! (ready ones in `addresses`, the rest in `notReadyAddresses`) and the target
//! ports, resolved by name where the Service names them. The pods a Service
//! selects (`members`) are also what its EndpointSlice lists.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::objects::{self, Part, Propagation};
use crate::api::resources::by_key;
use crate::api::selectors::LabelSelector;
use crate::api::store::Store;
use crate::controllers::replicaset::is_ready;

fn target_port(service_port: &Value, pod: &Value) -> Option<i64> {
    match &service_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_i64()),
        _ => service_port["port"].as_i64(),
    }
}

/// A pod a Service selects: what Endpoints and EndpointSlices say of it.
pub struct Member {
    /// The pod.
    pub pod: Arc<Value>,
    /// Its address.
    pub ip: String,
    /// Ready, or counted as ready (`publishNotReadyAddresses`).
    pub ready: bool,
    /// Being deleted (EndpointSlices still list it; Endpoints do not).
    pub terminating: bool,
}

/// The pods with an address that `service` selects, by name; None without a selector.
pub fn members(store: &Store, service: &Value) -> Option<Vec<Member>> {
    let selector = service["spec"]["selector"].as_object().filter(|s| !s.is_empty())?;
    let selector = LabelSelector::from_object(&json!({"matchLabels": selector})).ok()?;
    let (ns, _) = objects::ns_name(service);
    let publish_not_ready = service["spec"]["publishNotReadyAddresses"] == true;
    let mut pods: Vec<_> = store.list("pods", Some(&ns)).0;
    pods.sort_by(|a, b| a["metadata"]["name"].as_str().cmp(&b["metadata"]["name"].as_str()));
    let members = pods
        .into_iter()
        .filter(|p| selector.matches(p))
        .filter_map(|pod| {
            let ip = pod["status"]["podIP"].as_str()?.to_string();
            let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
            let ready = (is_ready(&pod) || publish_not_ready) && !terminating;
            Some(Member { pod, ip, ready, terminating })
        })
        .collect();
    Some(members)
}

/// The Service's ports as they reach `pod` (target ports resolved by name).
pub fn ports_for(service: &Value, pod: &Value) -> Vec<Value> {
    let mut ports = Vec::new();
    for p in service["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(target) = target_port(p, pod) {
            let mut port = json!({"port": target, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
            if let Some(n) = p["name"].as_str() {
                port["name"] = json!(n);
            }
            ports.push(port);
        }
    }
    ports
}

/// How an endpoint names its pod.
pub fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"],
           "uid": pod["metadata"]["uid"]})
}

/// The pod's hostname, when it is in the Service's subdomain (StatefulSets' pods).
pub fn hostname_in(service_name: &str, pod: &Value) -> Option<String> {
    (pod["spec"]["subdomain"] == service_name).then(|| pod["spec"]["hostname"].as_str().map(String::from)).flatten()
}

/// The Endpoints object a Service should have, or None without a selector.
pub fn desired(store: &Store, service: &Value) -> Option<Value> {
    let (ns, name) = objects::ns_name(service);
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    let mut ports = Vec::new();
    for m in members(store, service)?.into_iter().filter(|m| !m.terminating) {
        let mut address = json!({"ip": m.ip, "nodeName": m.pod["spec"]["nodeName"], "targetRef": target_ref(&m.pod)});
        if let Some(h) = hostname_in(&name, &m.pod) {
            address["hostname"] = json!(h);
        }
        if ports.is_empty() {
            ports = ports_for(service, &m.pod);
        }
        if m.ready { ready.push(address) } else { not_ready.push(address) }
    }
    let mut subset = json!({});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let mut labels = service["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert("endpoints.kubernetes.io/managed-by".into(), json!("endpoint-controller"));
    let mut endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": labels}});
    // Without addresses Kubernetes stores no subsets at all.
    if !ready.is_empty() || !not_ready.is_empty() {
        subset["ports"] = json!(ports);
        endpoints["subsets"] = json!([subset]);
    }
    Some(endpoints)
}

/// Keeps every Service's Endpoints current and removes orphaned ones.
pub fn reconcile_all(store: &Store) {
    let Some(rt) = by_key("endpoints") else { return };
    let services = store.list("services", None).0;
    for service in &services {
        let Some(want) = desired(store, service) else { continue };
        let (ns, name) = objects::ns_name(service);
        match store.get("endpoints", &ns, &name) {
            None => {
                let _ = objects::create(store, rt, &ns, want, false);
            }
            Some(current) if current["subsets"] != want["subsets"] => {
                let mut next = (*current).clone();
                match (want.get("subsets"), next.as_object_mut()) {
                    (Some(subsets), Some(o)) => {
                        o.insert("subsets".into(), subsets.clone());
                    }
                    (None, Some(o)) => {
                        o.remove("subsets");
                    }
                    _ => {}
                }
                let _ = objects::update(store, rt, &ns, &name, next, Part::Main);
            }
            Some(_) => {}
        }
    }
    for ep in store.list("endpoints", None).0 {
        let (ns, name) = objects::ns_name(&ep);
        let owner = services.iter().find(|s| objects::ns_name(s) == (ns.clone(), name.clone()));
        if owner.is_none() {
            let _ = objects::delete(store, rt, &ns, &name, Propagation::Background, None);
        }
    }
    super::endpointslices::reconcile_all(store, &services);
}

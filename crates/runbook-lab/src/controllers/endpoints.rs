//! Endpoints: for every Service with a selector, the addresses of its pods
//! (ready ones in `addresses`, the rest in `notReadyAddresses`) and the target
//! ports, resolved by name where the Service names them.

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

/// The Endpoints object a Service should have, or None without a selector.
pub fn desired(store: &Store, service: &Value) -> Option<Value> {
    let selector = service["spec"]["selector"].as_object().filter(|s| !s.is_empty())?;
    let selector = LabelSelector::from_object(&json!({"matchLabels": selector})).ok()?;
    let (ns, name) = objects::ns_name(service);
    let publish_not_ready = service["spec"]["publishNotReadyAddresses"] == true;
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    let mut ports = Vec::new();
    let mut pods: Vec<_> = store.list("pods", Some(&ns)).0;
    pods.sort_by(|a, b| a["metadata"]["name"].as_str().cmp(&b["metadata"]["name"].as_str()));
    for pod in pods.iter().filter(|p| selector.matches(p) && p["metadata"]["deletionTimestamp"].is_null()) {
        let Some(ip) = pod["status"]["podIP"].as_str() else { continue };
        let mut address = json!({"ip": ip, "nodeName": pod["spec"]["nodeName"],
            "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": ns, "uid": pod["metadata"]["uid"]}});
        if pod["spec"]["subdomain"] == name.as_str()
            && let Some(h) = pod["spec"]["hostname"].as_str()
        {
            address["hostname"] = json!(h);
        }
        if ports.is_empty() {
            for p in service["spec"]["ports"].as_array().into_iter().flatten() {
                if let Some(target) = target_port(p, pod) {
                    let mut port = json!({"port": target, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
                    if let Some(n) = p["name"].as_str() {
                        port["name"] = json!(n);
                    }
                    ports.push(port);
                }
            }
        }
        if is_ready(pod) || publish_not_ready { ready.push(address) } else { not_ready.push(address) }
    }
    let mut subset = json!({});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        json!([])
    } else {
        subset["ports"] = json!(ports);
        json!([subset])
    };
    Some(json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": service["metadata"]["labels"]}, "subsets": subsets}))
}

/// Keeps every Service's Endpoints current and removes orphaned ones.
pub fn reconcile_all(store: &Store) {
    let Some(rt) = by_key("endpoints") else { return };
    let services = store.list("services", None).0;
    for service in &services {
        let Some(mut want) = desired(store, service) else { continue };
        if want["metadata"]["labels"].is_null() {
            want["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
        let (ns, name) = objects::ns_name(service);
        match store.get("endpoints", &ns, &name) {
            None => {
                let _ = objects::create(store, rt, &ns, want, false);
            }
            Some(current) if current["subsets"] != want["subsets"] => {
                let mut next = (*current).clone();
                next["subsets"] = want["subsets"].clone();
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
}

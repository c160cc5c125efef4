//! EndpointSlices (`discovery.k8s.io/v1`), as the endpointslice controller
//! keeps them: one slice per Service with a selector, named from the Service
//! (`generateName`), labelled with `kubernetes.io/service-name`, owned by the
//! Service, listing every selected pod with an address, terminating ones
//! included, with ready/serving/terminating conditions.

use std::sync::Arc;

use serde_json::{Value, json};

use super::endpoints::{hostname_in, members, ports_for, target_ref};
use crate::api::objects::{self, Part, Propagation};
use crate::api::resources::by_key;
use crate::api::store::Store;

/// The label that ties a slice to its Service.
const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label that says which controller manages a slice.
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// The endpoints and ports of the slice `service` should have; None without a selector.
fn desired(store: &Store, service: &Value) -> Option<(Value, Value)> {
    let (_, name) = objects::ns_name(service);
    let mut ports = Value::Null;
    let endpoints: Vec<Value> = members(store, service)?
        .into_iter()
        .map(|m| {
            if ports.is_null() {
                let resolved: Vec<Value> = ports_for(service, &m.pod)
                    .into_iter()
                    .map(|mut p| {
                        // A slice names every port, the unnamed one "".
                        if p.get("name").is_none() {
                            p["name"] = json!("");
                        }
                        p
                    })
                    .collect();
                ports = json!(resolved);
            }
            let serving = m.ready || (m.terminating && super::replicaset::is_ready(&m.pod));
            let mut endpoint = json!({
                "addresses": [m.ip],
                "conditions": {"ready": m.ready, "serving": serving, "terminating": m.terminating},
                "nodeName": m.pod["spec"]["nodeName"],
                "targetRef": target_ref(&m.pod),
            });
            if let Some(h) = hostname_in(&name, &m.pod) {
                endpoint["hostname"] = json!(h);
            }
            endpoint
        })
        .collect();
    let endpoints = if endpoints.is_empty() { Value::Null } else { json!(endpoints) };
    Some((endpoints, ports))
}

fn new_slice(service: &Value, endpoints: Value, ports: Value) -> Value {
    let (ns, name) = objects::ns_name(service);
    let mut labels = service["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), json!(name));
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER));
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{name}-"), "namespace": ns, "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                 "uid": service["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}],
        },
        "addressType": "IPv4", "endpoints": endpoints, "ports": ports,
    })
}

/// Keeps one current slice per Service with a selector and removes the
/// slices of Services that are gone.
pub fn reconcile_all(store: &Store, services: &[Arc<Value>]) {
    let Some(rt) = by_key("endpointslices") else { return };
    let slices = store.list("endpointslices", None).0;
    let ours = |s: &Value| s["metadata"]["labels"][MANAGED_BY] == CONTROLLER;
    let slice_of = |service: &Value| {
        let (ns, name) = objects::ns_name(service);
        slices.iter().find(|s| {
            ours(s)
                && s["metadata"]["namespace"] == ns.as_str()
                && s["metadata"]["labels"][SERVICE_NAME] == name.as_str()
        })
    };
    for service in services {
        let Some((endpoints, ports)) = desired(store, service) else { continue };
        let (ns, _) = objects::ns_name(service);
        match slice_of(service) {
            None => {
                let _ = objects::create(store, rt, &ns, new_slice(service, endpoints, ports), false);
            }
            Some(current) if current["endpoints"] != endpoints || current["ports"] != ports => {
                let mut next = (**current).clone();
                next["endpoints"] = endpoints;
                next["ports"] = ports;
                let (_, slice_name) = objects::ns_name(current);
                let _ = objects::update(store, rt, &ns, &slice_name, next, Part::Main);
            }
            Some(_) => {}
        }
    }
    for slice in slices.iter().filter(|s| ours(s)) {
        let (ns, name) = objects::ns_name(slice);
        let service = slice["metadata"]["labels"][SERVICE_NAME].as_str().unwrap_or_default();
        let owner = services.iter().find(|s| objects::ns_name(s) == (ns.clone(), service.to_string()));
        if owner.is_none_or(|s| s["spec"]["selector"].as_object().is_none_or(|m| m.is_empty())) {
            let _ = objects::delete(store, rt, &ns, &name, Propagation::Background, None);
        }
    }
}

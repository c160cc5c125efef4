//! ReplicaSets keep their number of pods: create from the template, delete the
//! extras (not-ready and newest first), and report replicas, ready, available.

use serde_json::{Value, json};

use crate::api::objects::{self, Part, Propagation};
use crate::api::resources::by_key;
use crate::api::store::Store;

/// Whether a pod counts: not being deleted and not finished.
pub fn is_active(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether a pod has been ready for `min_ready` seconds.
pub fn is_available(pod: &Value, min_ready: i64) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    let since = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    since.is_some_and(|t| jiff::Timestamp::now().as_second() - t.as_second() >= min_ready)
}

/// The objects whose controlling owner has `uid`.
pub fn owned_by(store: &Store, resource: &'static str, ns: &str, uid: &str) -> Vec<std::sync::Arc<Value>> {
    store
        .list(resource, Some(ns))
        .0
        .into_iter()
        .filter(|o| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid && r["controller"] == true))
        })
        .collect()
}

/// An owner reference marking `owner` as the controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    })
}

/// Reconciles every ReplicaSet.
pub fn reconcile_all(store: &Store) {
    for rs in store.list("replicasets", None).0 {
        if rs["metadata"]["deletionTimestamp"].is_null() {
            reconcile(store, &rs);
        }
    }
}

fn reconcile(store: &Store, rs: &Value) {
    let (Some(pods_rt), Some(rs_rt)) = (by_key("pods"), by_key("replicasets")) else { return };
    let (ns, name) = objects::ns_name(rs);
    let uid = rs["metadata"]["uid"].as_str().unwrap_or_default();
    let desired = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let mut active: Vec<_> = owned_by(store, "pods", &ns, uid).into_iter().filter(|p| is_active(p)).collect();
    if active.len() < desired {
        let template = &rs["spec"]["template"];
        for _ in active.len()..desired {
            let mut meta = template["metadata"].clone();
            if !meta.is_object() {
                meta = json!({});
            }
            meta["generateName"] = json!(format!("{name}-"));
            meta["ownerReferences"] = json!([controller_ref(rs)]);
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]});
            match objects::create(store, pods_rt, &ns, pod, false) {
                Ok(p) => {
                    let pod_name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    objects::record_event(
                        store,
                        rs,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {pod_name}"),
                        "replicaset-controller",
                    );
                    active.push(p);
                }
                Err(e) => {
                    objects::record_event(
                        store,
                        rs,
                        "Warning",
                        "FailedCreate",
                        &format!("Error creating: {}", e.message),
                        "replicaset-controller",
                    );
                    break;
                }
            }
        }
    } else if active.len() > desired {
        // Not-ready pods go first, then the newest.
        active.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(p["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_string()),
            )
        });
        let extra = active.len() - desired;
        for pod in active.drain(..extra) {
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if objects::delete(store, pods_rt, &ns, &pod_name, Propagation::Background, None).is_ok() {
                objects::record_event(
                    store,
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {pod_name}"),
                    "replicaset-controller",
                );
            }
        }
    }
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": active.len(),
        "readyReplicas": active.iter().filter(|p| is_ready(p)).count(),
        "availableReplicas": active.iter().filter(|p| is_available(p, min_ready)).count(),
        "observedGeneration": rs["metadata"]["generation"],
    });
    write_status(store, rs_rt, rs, status);
}

/// Writes `status` onto the latest version of `object` when it differs.
pub fn write_status(store: &Store, rt: &'static crate::api::resources::ResourceType, object: &Value, status: Value) {
    let (ns, name) = objects::ns_name(object);
    let Some(current) = store.get(rt.key(), &ns, &name) else { return };
    if current["status"] == status {
        return;
    }
    let mut next = (*current).clone();
    next["status"] = status;
    let _ = objects::update(store, rt, &ns, &name, next, Part::Status);
}

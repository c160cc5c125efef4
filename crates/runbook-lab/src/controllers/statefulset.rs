//! StatefulSets: ordinal pods `name-0..n-1` with stable hostnames, created in
//! order (OrderedReady) or together (Parallel), each with its claims from the
//! volumeClaimTemplates (`<template>-<name>-<N>`, kept when pods go), replaced
//! under the same name, scaled down from the highest ordinal, and updated in
//! reverse ordinal order by revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::deployment::template_hash;
use super::replicaset::{controller_ref, is_active, is_ready, owned_by, write_status};
use crate::api::objects::{self, Propagation};
use crate::api::resources::by_key;
use crate::api::store::Store;

const REVISION_LABEL: &str = "controller-revision-hash";

/// Reconciles every StatefulSet.
pub fn reconcile_all(store: &Store) {
    for sts in store.list("statefulsets", None).0 {
        if sts["metadata"]["deletionTimestamp"].is_null() {
            reconcile(store, &sts);
        }
    }
}

/// The ordinal of a pod named `<set>-<N>`.
fn ordinal(set: &str, pod: &str) -> Option<usize> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// The claim name for a template and ordinal.
pub fn claim_name(template: &str, set: &str, ordinal: usize) -> String {
    format!("{template}-{set}-{ordinal}")
}

fn ensure_claims(store: &Store, sts: &Value, ord: usize) {
    let Some(pvcs) = by_key("persistentvolumeclaims") else { return };
    let (ns, name) = objects::ns_name(sts);
    for template in sts["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
        let tname = template["metadata"]["name"].as_str().unwrap_or_default();
        let claim = claim_name(tname, &name, ord);
        if store.get("persistentvolumeclaims", &ns, &claim).is_some() {
            continue;
        }
        let mut labels = sts["spec"]["selector"]["matchLabels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        if let Some(extra) = template["metadata"]["labels"].as_object() {
            for (k, v) in extra {
                labels[k] = v.clone();
            }
        }
        let pvc = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "labels": labels},
            "spec": template["spec"],
        });
        match objects::create(store, pvcs, &ns, pvc, false) {
            Ok(_) => objects::record_event(
                store,
                sts,
                "Normal",
                "SuccessfulCreate",
                &format!("create Claim {claim} Pod {name}-{ord} in StatefulSet {name} success"),
                "statefulset-controller",
            ),
            Err(e) => objects::record_event(
                store,
                sts,
                "Warning",
                "FailedCreate",
                &format!("create Claim {claim} for StatefulSet {name} failed: {}", e.message),
                "statefulset-controller",
            ),
        }
    }
}

fn create_pod(store: &Store, sts: &Value, ord: usize, revision: &str) {
    let Some(pods) = by_key("pods") else { return };
    let (ns, name) = objects::ns_name(sts);
    let pod_name = format!("{name}-{ord}");
    let template = &sts["spec"]["template"];
    let mut meta = template["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(pod_name);
    meta["labels"]["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
    meta["labels"]["apps.kubernetes.io/pod-index"] = json!(ord.to_string());
    meta["labels"][REVISION_LABEL] = json!(revision);
    meta["ownerReferences"] = json!([controller_ref(sts)]);
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(pod_name);
    if let Some(service) = sts["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
        spec["subdomain"] = json!(service);
    }
    let mut volumes: Vec<Value> = spec["volumes"].as_array().cloned().unwrap_or_default();
    for template in sts["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
        let tname = template["metadata"]["name"].as_str().unwrap_or_default();
        volumes.retain(|v| v["name"] != tname);
        volumes.push(json!({"name": tname, "persistentVolumeClaim": {"claimName": claim_name(tname, &name, ord)}}));
    }
    spec["volumes"] = json!(volumes);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec});
    match objects::create(store, pods, &ns, pod, false) {
        Ok(_) => objects::record_event(
            store,
            sts,
            "Normal",
            "SuccessfulCreate",
            &format!("create Pod {pod_name} in StatefulSet {name} successful"),
            "statefulset-controller",
        ),
        Err(e) if e.reason == "AlreadyExists" => {}
        Err(e) => objects::record_event(
            store,
            sts,
            "Warning",
            "FailedCreate",
            &format!("create Pod {pod_name} in StatefulSet {name} failed error: {}", e.message),
            "statefulset-controller",
        ),
    }
}

fn delete_pod(store: &Store, sts: &Value, pod: &Value) {
    let Some(pods) = by_key("pods") else { return };
    let (ns, pod_name) = objects::ns_name(pod);
    if pod["metadata"]["deletionTimestamp"].is_null()
        && objects::delete(store, pods, &ns, &pod_name, Propagation::Background, None).is_ok()
    {
        let name = sts["metadata"]["name"].as_str().unwrap_or_default();
        objects::record_event(
            store,
            sts,
            "Normal",
            "SuccessfulDelete",
            &format!("delete Pod {pod_name} in StatefulSet {name} successful"),
            "statefulset-controller",
        );
    }
}

fn reconcile(store: &Store, sts: &Value) {
    let (ns, name) = objects::ns_name(sts);
    let uid = sts["metadata"]["uid"].as_str().unwrap_or_default();
    let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
    let revision = format!("{name}-{}", template_hash(&sts["spec"]["template"]));
    let mut pods: BTreeMap<usize, Arc<Value>> = BTreeMap::new();
    for pod in owned_by(store, "pods", &ns, uid) {
        if let Some(ord) = ordinal(&name, pod["metadata"]["name"].as_str().unwrap_or_default()) {
            pods.insert(ord, pod);
        }
    }
    // Pods that finished (Failed/Succeeded) are replaced, as the controller does.
    for pod in pods.values() {
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        if !is_active(pod) {
            delete_pod(store, sts, pod);
        }
    }
    let mut blocked = false;
    for ord in 0..replicas {
        match pods.get(&ord) {
            None => {
                if blocked {
                    break;
                }
                ensure_claims(store, sts, ord);
                create_pod(store, sts, ord, &revision);
                if !parallel {
                    blocked = true;
                }
            }
            Some(pod) => {
                // OrderedReady: the next ordinal waits for this one to be Running and Ready.
                if !parallel && (!is_ready(pod) || !pod["metadata"]["deletionTimestamp"].is_null()) {
                    blocked = true;
                }
            }
        }
    }
    // Scale down from the highest ordinal, one at a time unless Parallel.
    let extra: Vec<&Arc<Value>> = pods.range(replicas..).map(|(_, p)| p).rev().collect();
    for pod in extra.iter().take(if parallel { extra.len() } else { 1 }) {
        delete_pod(store, sts, pod);
    }
    // Rolling update: the highest outdated ordinal at or above the partition,
    // once every pod is Ready.
    let all_ready = pods.range(..replicas).count() == replicas && pods.range(..replicas).all(|(_, p)| is_ready(p));
    let rolling = sts["spec"]["updateStrategy"]["type"].as_str().unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"].as_u64().unwrap_or(0) as usize;
    if rolling && all_ready && extra.is_empty() {
        let outdated = pods
            .range(partition..replicas)
            .rev()
            .find(|(_, p)| p["metadata"]["labels"][REVISION_LABEL] != revision.as_str());
        if let Some((_, pod)) = outdated {
            delete_pod(store, sts, pod);
        }
    }
    let active: Vec<&Arc<Value>> = pods.values().filter(|p| is_active(p)).collect();
    let updated = active.iter().filter(|p| p["metadata"]["labels"][REVISION_LABEL] == revision.as_str()).count();
    let current_revision = if updated == active.len() && active.len() == replicas {
        revision.clone()
    } else {
        sts["status"]["currentRevision"].as_str().map(String::from).unwrap_or_else(|| revision.clone())
    };
    let current =
        active.iter().filter(|p| p["metadata"]["labels"][REVISION_LABEL] == current_revision.as_str()).count();
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let status = json!({
        "observedGeneration": sts["metadata"]["generation"],
        "replicas": active.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    if let Some(rt) = by_key("statefulsets") {
        write_status(store, rt, sts, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_and_claims() {
        assert_eq!(ordinal("redis", "redis-2"), Some(2));
        assert_eq!(ordinal("redis", "redis-cluster-2"), None);
        assert_eq!(ordinal("redis-cluster", "redis-cluster-5"), Some(5));
        assert_eq!(claim_name("data", "redis-cluster", 0), "data-redis-cluster-0");
    }
}

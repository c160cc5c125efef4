//! The node lifecycle controller and taint eviction, as kube-controller-manager
//! runs them: a node whose Lease was not renewed for the grace period
//! (`--node-monitor-grace-period`, 50 s by default) gets Ready `Unknown`
//! ("Kubelet stopped posting node status."), the taints
//! `node.kubernetes.io/unreachable` NoSchedule and NoExecute, and its pods
//! Ready False (the endpoints drop them). A pod on a NoExecute-tainted node is
//! deleted once its toleration runs out (300 s, the default the admission
//! adds), at once if it has none; on an unreachable node its deletion waits
//! for the kubelet, so it stays Terminating. When the node is Ready again the
//! taints go. As upstream in a full disruption (every node unreachable),
//! nothing is evicted.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::api::objects::{self, Part, Propagation};
use crate::api::resources::by_key;
use crate::api::store::Store;
use crate::kubelet::heartbeat::LEASE_NAMESPACE;
use crate::kubelet::scheduler::toleration_matches;

/// The taint key of an unreachable node.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const COMPONENT: &str = "node-controller";

/// Watches the nodes once a second until shutdown.
pub fn spawn(store: Arc<Store>, grace: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            monitor(&store, grace, jiff::Timestamp::now());
        }
    })
}

/// One pass over every node and the pods on tainted ones.
pub fn monitor(store: &Store, grace: Duration, now: jiff::Timestamp) {
    let (nodes, _) = store.list("nodes", None);
    let mut unreachable = 0;
    for node in &nodes {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let silent = last_heartbeat(store, node).is_some_and(|at| now.duration_since(at).unsigned_abs() > grace);
        if silent {
            unreachable += 1;
        }
        let ready = ready_status(node);
        let next = if silent && ready != "Unknown" {
            mark_unknown(store, node, name, now)
        } else if !silent && ready == "True" && has_unreachable_taint(node) {
            Some(with_taints(node, |t| t["key"] != UNREACHABLE))
        } else {
            None
        };
        if let (Some(next), Some(rt)) = (next, by_key("nodes")) {
            let _ = objects::update(store, rt, "", name, next, Part::Main);
        }
    }
    if unreachable < nodes.len() {
        evict(store, now);
    }
}

fn ready_status(node: &Value) -> &str {
    let conditions = node["status"]["conditions"].as_array().into_iter().flatten();
    conditions.into_iter().find(|c| c["type"] == "Ready").and_then(|c| c["status"].as_str()).unwrap_or("Unknown")
}

fn has_unreachable_taint(node: &Value) -> bool {
    node["spec"]["taints"].as_array().is_some_and(|ts| ts.iter().any(|t| t["key"] == UNREACHABLE))
}

/// When the node's kubelet last renewed its Lease (else when it was made).
fn last_heartbeat(store: &Store, node: &Value) -> Option<jiff::Timestamp> {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let lease = store.get("leases", LEASE_NAMESPACE, name);
    let stamp = lease.as_ref().map_or(&node["metadata"]["creationTimestamp"], |l| &l["spec"]["renewTime"]);
    stamp.as_str()?.parse().ok()
}

/// The node with Ready Unknown and the unreachable taints; its pods marked
/// not ready. The status first (a separate write, as upstream's UpdateStatus).
fn mark_unknown(store: &Store, node: &Value, name: &str, now: jiff::Timestamp) -> Option<Value> {
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut status = node.clone();
    for c in status["status"]["conditions"].as_array_mut().into_iter().flatten().filter(|c| c["type"] == "Ready") {
        c["status"] = json!("Unknown");
        c["reason"] = json!("NodeStatusUnknown");
        c["message"] = json!("Kubelet stopped posting node status.");
        c["lastTransitionTime"] = json!(stamp);
    }
    let stored = objects::update(store, by_key("nodes")?, "", name, status, Part::Status).ok()?;
    objects::record_event(
        store,
        &stored,
        "Normal",
        "NodeNotReady",
        &format!("Node {name} status is now: NodeNotReady"),
        COMPONENT,
    );
    mark_pods_not_ready(store, name);
    let mut next = with_taints(&stored, |t| t["key"] != UNREACHABLE);
    if !next["spec"]["taints"].is_array() {
        next["spec"]["taints"] = json!([]);
    }
    let taints = next["spec"]["taints"].as_array_mut()?;
    taints.push(json!({"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": stamp}));
    taints.push(json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp}));
    Some(next)
}

/// The node with only the taints `keep` keeps (an empty list is left out).
fn with_taints(node: &Value, keep: impl Fn(&Value) -> bool) -> Value {
    let mut next = node.clone();
    let kept: Vec<Value> =
        node["spec"]["taints"].as_array().into_iter().flatten().filter(|t| keep(t)).cloned().collect();
    match next["spec"].as_object_mut() {
        // As `omitempty` leaves it: no taints, no field.
        Some(spec) if kept.is_empty() => {
            spec.remove("taints");
        }
        _ => next["spec"]["taints"] = json!(kept),
    }
    next
}

/// `MarkPodsNotReady`: each pod on the node gets Ready False and an event.
fn mark_pods_not_ready(store: &Store, node: &str) {
    let Some(pods) = by_key("pods") else { return };
    for pod in store.list("pods", None).0.iter().filter(|p| p["spec"]["nodeName"] == node) {
        let mut next = (**pod).clone();
        let mut changed = false;
        for c in next["status"]["conditions"].as_array_mut().into_iter().flatten() {
            if c["type"] == "Ready" && c["status"] != "False" {
                c["status"] = json!("False");
                c["lastTransitionTime"] = json!(objects::now());
                changed = true;
            }
        }
        let (ns, name) = objects::ns_name(pod);
        if changed && let Ok(stored) = objects::update(store, pods, &ns, &name, next, Part::Status) {
            objects::record_event(store, &stored, "Warning", "NodeNotReady", "Node is not ready", COMPONENT);
        }
    }
}

/// Deletes the pods whose tolerations of their node's NoExecute taints ran out.
fn evict(store: &Store, now: jiff::Timestamp) {
    let Some(pods) = by_key("pods") else { return };
    let (nodes, _) = store.list("nodes", None);
    let (all_pods, _) = store.list("pods", None);
    for node in nodes.iter().filter(|n| n["spec"]["taints"].as_array().is_some_and(|t| !t.is_empty())) {
        let no_execute: Vec<&Value> =
            node["spec"]["taints"].as_array().into_iter().flatten().filter(|t| t["effect"] == "NoExecute").collect();
        if no_execute.is_empty() {
            continue;
        }
        for pod in all_pods.iter().filter(|p| p["spec"]["nodeName"] == node["metadata"]["name"]) {
            let when = no_execute.iter().map(|t| due(pod, t, now)).min().unwrap_or(jiff::Timestamp::MAX);
            if !pod["metadata"]["deletionTimestamp"].is_null() || when > now {
                continue;
            }
            let (ns, name) = objects::ns_name(pod);
            if let Ok(marked) = objects::delete(store, pods, &ns, &name, Propagation::Background, None) {
                let message = format!("Marking for deletion Pod {ns}/{name}");
                objects::record_event(
                    store,
                    &marked,
                    "Normal",
                    "TaintManagerEviction",
                    &message,
                    "taint-eviction-controller",
                );
            }
        }
    }
}

/// When the pod must go because of `taint`: now when no toleration matches,
/// its toleration's seconds after the taint came, never when tolerated for good.
fn due(pod: &Value, taint: &Value, now: jiff::Timestamp) -> jiff::Timestamp {
    let tolerations: Vec<&Value> =
        pod["spec"]["tolerations"].as_array().into_iter().flatten().filter(|t| toleration_matches(t, taint)).collect();
    if tolerations.is_empty() {
        return now;
    }
    let seconds = tolerations.iter().filter_map(|t| t["tolerationSeconds"].as_i64()).min();
    let Some(seconds) = seconds else { return jiff::Timestamp::MAX };
    let added: jiff::Timestamp = taint["timeAdded"].as_str().and_then(|t| t.parse().ok()).unwrap_or(now);
    added.checked_add(jiff::SignedDuration::from_secs(seconds.max(0))).unwrap_or(jiff::Timestamp::MAX)
}

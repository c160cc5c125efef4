//! The kubelets' heartbeat: every 10 s (sooner when the lab's grace period is
//! short) each node that is up renews its Lease in `kube-node-lease` (holder:
//! the node, 40 s duration, as the kubelet's defaults), which the node
//! lifecycle controller reads, and posts Ready True if its Ready condition
//! says otherwise (the kubelet's node status sync). A node that comes back
//! up does both at once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::KubeletCtx;
use crate::api::objects::{self, Part};
use crate::api::resources::by_key;

/// How often a kubelet renews its Lease (a quarter of its 40 s duration).
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// How often to beat for a node lifecycle grace period of `grace`: every
/// 10 s, or five times within a shorter grace.
pub fn interval(grace: Duration) -> Duration {
    RENEW_EVERY.min(grace / 5).max(Duration::from_millis(100))
}
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Beats for the nodes that are up, every `every`, until shutdown.
pub async fn run(ctx: Arc<KubeletCtx>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for node in ctx.store.list("nodes", None).0 {
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            if !ctx.down_nodes.contains(name) {
                beat(&ctx, name);
            }
        }
    }
}

/// One beat (and the first after a node comes back): the node's Lease
/// renewed, its Ready condition True.
pub fn beat(ctx: &KubeletCtx, name: &str) {
    let Some(node) = ctx.store.get("nodes", "", name) else { return };
    renew(ctx, &node);
    let now = objects::now();
    let mut next = (*node).clone();
    let Some(conditions) = next["status"]["conditions"].as_array_mut() else { return };
    if conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True") {
        return;
    }
    for c in conditions.iter_mut().filter(|c| c["type"] == "Ready") {
        *c = json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "runbook lab kubelet is posting ready status",
                    "lastHeartbeatTime": now, "lastTransitionTime": now});
    }
    if let Some(nodes) = by_key("nodes") {
        let _ = objects::update(&ctx.store, nodes, "", name, next, Part::Status);
    }
}

fn renew(ctx: &KubeletCtx, node: &Value) {
    let Some(leases) = by_key("leases") else { return };
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let renew_time = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string();
    match ctx.store.get("leases", LEASE_NAMESPACE, name) {
        Some(lease) => {
            let mut next = (*lease).clone();
            next["spec"]["renewTime"] = json!(renew_time);
            let _ = objects::update(&ctx.store, leases, LEASE_NAMESPACE, name, next, Part::Main);
        }
        None => {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew_time},
            });
            let _ = objects::create(&ctx.store, leases, LEASE_NAMESPACE, lease, false);
        }
    }
}

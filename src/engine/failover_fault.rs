//! What the Sentinel failover drill does to the master: delete its pod (Redis
//! shuts down gracefully, waiting for its replicas, before Sentinel's
//! down-after even starts counting) or take its node down (the process is
//! frozen and unplugged at once, as when a machine fails: the failover then
//! takes what Sentinel's own timers give). A node goes down only on the lab,
//! and only where the failover can happen without it: a replica and most
//! Sentinels must run on other nodes.

use kube::api::DeleteParams;
use serde_json::Value;

use super::StepError;
use super::context::Ctx;
use super::cut::Cut;
use crate::scenario::{FailoverFault, PodRef};

/// The fault in place, to undo once the Sentinels agree.
pub(super) enum Applied {
    /// The pod is deleted: nothing to undo.
    Deleted,
    /// The node is down until healed; the pods on it (by name) cannot answer.
    NodeDown { node: String, cut: Cut, pods: Vec<String> },
}

impl Applied {
    /// Whether the pod `name` cannot answer because its node is down.
    pub(super) fn silenced(&self, name: &str) -> bool {
        matches!(self, Applied::NodeDown { pods, .. } if pods.iter().any(|p| p == name))
    }

    /// Whether some pods cannot answer.
    pub(super) fn silenced_any(&self) -> bool {
        matches!(self, Applied::NodeDown { pods, .. } if !pods.is_empty())
    }
}

/// Refuses a node fault the drill cannot carry out here: not the lab, or a
/// master whose node runs every replica or most Sentinels.
pub(super) async fn check(
    ctx: &Ctx,
    fault: FailoverFault,
    victim: &Value,
    redis: &[Value],
    sentinels: &PodRef,
) -> Result<(), StepError> {
    if fault == FailoverFault::PodDeleted {
        return Ok(());
    }
    let sentinels = ctx.running_pods(sentinels).await?;
    if let Some(why) = spread_problem(victim, redis, &sentinels) {
        return Err(StepError::NotHere(why));
    }
    super::node_down::lab_node(&super::node_down::get_node(ctx, node_of(victim)).await?)
}

/// Deletes the master's pod or takes its node down.
pub(super) async fn apply(ctx: &Ctx, fault: FailoverFault, victim: &Value) -> Result<(Applied, String), StepError> {
    let name = victim["metadata"]["name"].as_str().unwrap_or_default();
    match fault {
        FailoverFault::PodDeleted => {
            let ns = victim["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace);
            let (pods, _, _) = ctx.api(Some("v1"), "Pod", Some(ns)).await?;
            pods.delete(name, &DeleteParams::default()).await?;
            ctx.mark(format!("master pod {name} deleted"));
            Ok((Applied::Deleted, format!("deleted pod {name}")))
        }
        FailoverFault::NodeDown => {
            let node = node_of(victim).to_string();
            let pods: Vec<String> = super::node_down::pods_on(ctx, &node)
                .await?
                .iter()
                .filter_map(|p| p.split_once('/').map(|(_, name)| name.to_string()))
                .collect();
            let cut = super::node_down::take_down(ctx, &node).await?;
            ctx.mark(format!("node {node} of the master {name} down"));
            let did = format!("took node {node} down (running {})", pods.join(", "));
            Ok((Applied::NodeDown { node, cut, pods }, did))
        }
    }
}

/// Brings a node taken down back; what to log, if anything was undone.
pub(super) async fn undo(ctx: &Ctx, applied: &Applied) -> Result<Option<String>, StepError> {
    let Applied::NodeDown { node, cut, .. } = applied else { return Ok(None) };
    super::partition::heal(ctx, cut).await?;
    ctx.mark(format!("node {node} back"));
    Ok(Some(format!("node {node} back")))
}

/// Whether `pod` is the master's pod come back: after a deletion a new pod
/// of the same name; after a node fault the very same pod.
pub(super) fn is_back(fault: FailoverFault, victim: &Value, pod: &Value) -> bool {
    let same_name = pod["metadata"]["name"] == victim["metadata"]["name"];
    let same_pod = pod["metadata"]["uid"] == victim["metadata"]["uid"];
    same_name && (same_pod == (fault == FailoverFault::NodeDown))
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

/// Why taking the master's node down would not show a failover: no replica
/// elsewhere to promote, or too few Sentinels elsewhere to elect a leader
/// (a majority of them must vote).
fn spread_problem(victim: &Value, redis: &[Value], sentinels: &[Value]) -> Option<String> {
    let node = node_of(victim);
    let elsewhere = |pods: &[Value]| pods.iter().filter(|p| node_of(p) != node).count();
    let hint = "the lab spreads them with --lab --lab-nodes 3";
    if elsewhere(redis) == 0 {
        return Some(format!(
            "every Redis pod runs on node {node}, the master's: losing it loses every replica too ({hint})"
        ));
    }
    let (total, away) = (sentinels.len(), elsewhere(sentinels));
    if away * 2 <= total {
        return Some(format!(
            "{} of the {total} Sentinels run on node {node}, the master's: losing it leaves too few to elect a leader ({hint})",
            total - away
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, node: &str) -> Value {
        json!({"metadata": {"name": name, "uid": format!("uid-{name}")}, "spec": {"nodeName": node}})
    }

    #[test]
    fn a_node_fault_needs_a_replica_and_most_sentinels_elsewhere() {
        let redis = [pod("redis-0", "a"), pod("redis-1", "b"), pod("redis-2", "c")];
        let sentinels = [pod("sentinel-0", "a"), pod("sentinel-1", "b"), pod("sentinel-2", "c")];
        assert_eq!(spread_problem(&redis[0], &redis, &sentinels), None);
        let one_node = [pod("redis-0", "a"), pod("redis-1", "a")];
        let why = spread_problem(&one_node[0], &one_node, &sentinels).unwrap();
        assert!(why.starts_with("every Redis pod runs on node a, the master's: losing it loses"), "{why}");
        let crowded = [pod("sentinel-0", "a"), pod("sentinel-1", "a"), pod("sentinel-2", "c")];
        let why = spread_problem(&redis[0], &redis, &crowded).unwrap();
        assert!(why.starts_with("2 of the 3 Sentinels run on node a"), "{why}");
    }

    #[test]
    fn the_master_comes_back_as_a_new_pod_after_a_deletion_and_as_itself_after_a_node_fault() {
        let victim = pod("redis-0", "a");
        let successor = json!({"metadata": {"name": "redis-0", "uid": "new"}, "spec": {"nodeName": "b"}});
        assert!(is_back(FailoverFault::PodDeleted, &victim, &successor));
        assert!(!is_back(FailoverFault::PodDeleted, &victim, &victim));
        assert!(is_back(FailoverFault::NodeDown, &victim, &victim));
        assert!(!is_back(FailoverFault::NodeDown, &victim, &successor));
        assert!(!is_back(FailoverFault::NodeDown, &victim, &pod("redis-1", "a")));
    }
}

//! The lab's scheduler: picks a node for each pod among the lab's nodes, as
//! kube-scheduler's default plugins do for what scenarios use. Filters, in
//! kube-scheduler's order, each stopping a node at its first failure:
//! NodeUnschedulable, TaintToleration (NoSchedule, NoExecute), NodeAffinity
//! (nodeSelector, required node affinity), NodeResourcesFit, PodTopologySpread
//! (`DoNotSchedule`), InterPodAffinity (required affinity and anti-affinity,
//! the existing pods' anti-affinity). Among the nodes left it prefers the one
//! with the fewest pods of the same controller (the default topology spread
//! by hostname), then preferred (anti-)affinity and `ScheduleAnyway` spread,
//! then the fewest pods, then the node's order: deterministic where
//! kube-scheduler breaks ties at random. When no node fits, the message is
//! kube-scheduler's (`0/3 nodes are available: 1 Insufficient cpu, 2 node(s)
//! were unschedulable. ...`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::affinity::{self, Term};
use super::fit;

/// Where a pod can run: the nodes and every pod bound to one of them.
pub struct Cluster<'a> {
    /// The nodes, in the order ties are broken.
    pub nodes: &'a [Arc<Value>],
    /// Every pod (the scheduler looks only at bound, unfinished ones).
    pub pods: &'a [Arc<Value>],
}

/// The node `pod` goes to, or kube-scheduler's message saying why none fits.
pub fn place(pod: &Value, cluster: &Cluster) -> Result<String, String> {
    let placed: Vec<&Value> = cluster.pods.iter().map(|p| p.as_ref()).filter(|p| occupies_node(p)).collect();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    // Nodes where preemption might help (the filter failed as Unschedulable,
    // not UnschedulableAndUnresolvable): kube-scheduler's preemption then
    // finds no victims, every pod having the same priority.
    let mut resolvable = 0;
    let mut best: Option<(Rank, &str)> = None;
    for (index, node) in cluster.nodes.iter().enumerate() {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let on_node: Vec<&Value> = placed.iter().copied().filter(|p| p["spec"]["nodeName"] == name).collect();
        match why_not(pod, node, &on_node, &placed, cluster.nodes) {
            Some((why, might_help)) => {
                resolvable += usize::from(might_help);
                for reason in why {
                    *reasons.entry(reason).or_default() += 1;
                }
            }
            None => {
                let rank = (
                    preference_penalty(pod, node, &placed, cluster.nodes),
                    same_owner(pod, &on_node),
                    on_node.len(),
                    index,
                );
                if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                    best = Some((rank, name));
                }
            }
        }
    }
    match best {
        Some((_, name)) => Ok(name.to_string()),
        None => Err(no_node_message(cluster.nodes.len(), &reasons, resolvable)),
    }
}

/// How a node that fits ranks (lower is better): soft-wish penalty, pods of
/// the same controller there, pods there, the node's place in the list.
type Rank = (i64, usize, usize, usize);

/// Whether a pod holds its node's resources: bound and not finished.
pub fn occupies_node(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty())
        && !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// kube-scheduler's FitError text, with its preemption epilogue.
fn no_node_message(nodes: usize, reasons: &BTreeMap<String, usize>, resolvable: usize) -> String {
    let mut counted: Vec<String> = reasons.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
    // kube-scheduler sorts the "N reason" strings themselves.
    counted.sort();
    let mut preemption = Vec::new();
    if resolvable > 0 {
        preemption.push(format!("{resolvable} No preemption victims found for incoming pod"));
    }
    if nodes > resolvable {
        preemption.push(format!("{} Preemption is not helpful for scheduling", nodes - resolvable));
    }
    preemption.sort();
    format!(
        "0/{nodes} nodes are available: {}. no new claims to deallocate, preemption: 0/{nodes} nodes are available: {}.",
        counted.join(", "),
        preemption.join(", ")
    )
}

/// Why `pod` cannot go to `node`: the first failing filter's reasons, and
/// whether they are resolvable (Unschedulable: preemption might help) rather
/// than UnschedulableAndUnresolvable.
fn why_not(
    pod: &Value,
    node: &Value,
    on_node: &[&Value],
    placed: &[&Value],
    nodes: &[Arc<Value>],
) -> Option<(Vec<String>, bool)> {
    let one = |reason: &str| Some((vec![reason.to_string()], false));
    let unschedulable = node["spec"]["unschedulable"] == true;
    if unschedulable
        && !tolerates(pod, &serde_json::json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}))
    {
        return one("node(s) were unschedulable");
    }
    let taints = node["spec"]["taints"].as_array().into_iter().flatten();
    if taints.filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute"))).any(|t| !tolerates(pod, t)) {
        return one("node(s) had untolerated taint(s)");
    }
    if !affinity::node_matches(pod, node) {
        return one("node(s) didn't match Pod's node affinity/selector");
    }
    if let Some(short) = fit::shortfall(pod, &node["status"]["allocatable"], on_node) {
        // More than the whole node has is unresolvable.
        let resolvable = fit::shortfall(pod, &node["status"]["allocatable"], &[]).is_none();
        return Some((short, resolvable));
    }
    if let Some(reason) = spread_violation(pod, node, placed, nodes) {
        return Some((vec![reason.to_string()], !reason.ends_with("(missing required label)")));
    }
    affinity::inter_pod_violation(pod, node, placed, nodes)
        .map(|reason| (vec![reason.to_string()], reason != "node(s) didn't match pod affinity rules"))
}

/// Whether one of the pod's tolerations tolerates `taint`.
pub fn tolerates(pod: &Value, taint: &Value) -> bool {
    pod["spec"]["tolerations"].as_array().into_iter().flatten().any(|t| toleration_matches(t, taint))
}

/// A toleration against a taint, as `v1.Toleration.ToleratesTaint`.
pub fn toleration_matches(toleration: &Value, taint: &Value) -> bool {
    let effect = toleration["effect"].as_str().unwrap_or_default();
    if !effect.is_empty() && toleration["effect"] != taint["effect"] {
        return false;
    }
    let key = toleration["key"].as_str().unwrap_or_default();
    if !key.is_empty() && toleration["key"] != taint["key"] {
        return false;
    }
    match toleration["operator"].as_str().unwrap_or("Equal") {
        "Exists" => true,
        _ => {
            !key.is_empty()
                && toleration["value"].as_str().unwrap_or_default() == taint["value"].as_str().unwrap_or_default()
        }
    }
}

/// The `DoNotSchedule` topology spread constraint `node` would break.
fn spread_violation(pod: &Value, node: &Value, placed: &[&Value], nodes: &[Arc<Value>]) -> Option<&'static str> {
    for constraint in constraints(pod).filter(|c| c["whenUnsatisfiable"] == "DoNotSchedule") {
        let key = constraint["topologyKey"].as_str().unwrap_or_default();
        let Some(domain) = node["metadata"]["labels"][key].as_str() else {
            return Some("node(s) didn't match pod topology spread constraints (missing required label)");
        };
        let counts = domain_counts(pod, constraint, placed, nodes);
        let own = usize::from(affinity::selector_of(&constraint["labelSelector"]).is_some_and(|s| s.matches(pod)));
        let min = counts.values().copied().min().unwrap_or(0);
        let max_skew = constraint["maxSkew"].as_u64().unwrap_or(1) as usize;
        if counts.get(domain).copied().unwrap_or(0) + own > min + max_skew {
            return Some("node(s) didn't match pod topology spread constraints");
        }
    }
    None
}

fn constraints(pod: &Value) -> impl Iterator<Item = &Value> {
    pod["spec"]["topologySpreadConstraints"].as_array().into_iter().flatten()
}

/// Matching pods per domain of a spread constraint, over the nodes the pod's
/// node affinity allows (nodeAffinityPolicy Honor, the default).
fn domain_counts<'a>(
    pod: &Value,
    constraint: &Value,
    placed: &[&Value],
    nodes: &'a [Arc<Value>],
) -> BTreeMap<&'a str, usize> {
    let key = constraint["topologyKey"].as_str().unwrap_or_default();
    let Some(selector) = affinity::selector_of(&constraint["labelSelector"]) else { return BTreeMap::new() };
    let ns = &pod["metadata"]["namespace"];
    let mut counts = BTreeMap::new();
    for node in nodes.iter().filter(|n| affinity::node_matches(pod, n)) {
        let Some(domain) = node["metadata"]["labels"][key].as_str() else { continue };
        let here = placed
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node["metadata"]["name"] && &p["metadata"]["namespace"] == ns)
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && selector.matches(p))
            .count();
        *counts.entry(domain).or_default() += here;
    }
    counts
}

/// How much the pod's soft wishes speak against `node` (lower is better):
/// `ScheduleAnyway` spread skew, preferred anti-affinity hits, minus
/// preferred affinity hits, each weighed.
fn preference_penalty(pod: &Value, node: &Value, placed: &[&Value], nodes: &[Arc<Value>]) -> i64 {
    let mut penalty = 0i64;
    for constraint in constraints(pod).filter(|c| c["whenUnsatisfiable"] == "ScheduleAnyway") {
        let key = constraint["topologyKey"].as_str().unwrap_or_default();
        if let Some(domain) = node["metadata"]["labels"][key].as_str() {
            penalty += domain_counts(pod, constraint, placed, nodes).get(domain).copied().unwrap_or(0) as i64;
        }
    }
    let preferred = |kind: &str| {
        pod["spec"]["affinity"][kind]["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    for (kind, sign) in [("podAntiAffinity", 1), ("podAffinity", -1)] {
        for weighted in preferred(kind) {
            let term = Term::of(pod, &weighted["podAffinityTerm"]);
            let hits =
                placed.iter().filter(|p| term.selects(p) && affinity::same_domain(&term, p, node, nodes)).count();
            penalty += sign * weighted["weight"].as_i64().unwrap_or(1) * hits as i64;
        }
    }
    penalty
}

/// Pods on the node with the same controller as `pod`: the default spread.
fn same_owner(pod: &Value, on_node: &[&Value]) -> usize {
    let Some(owner) = controller_uid(pod) else { return 0 };
    on_node.iter().filter(|p| controller_uid(p) == Some(owner)).count()
}

fn controller_uid(pod: &Value) -> Option<&str> {
    pod["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true)?["uid"].as_str()
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;

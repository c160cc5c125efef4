//! `partition`: two groups of pods cut off from each other for a while, with
//! NetworkPolicies, which the cluster's network plugin enforces (the lab
//! does; a plugin without NetworkPolicy support ignores them, and the cut
//! then has no effect). The isolated pods get the label
//! `runbook.dev/partition=<cut>-a` and the others `<cut>-b`; a policy in each
//! namespace of the isolated pods selects the `-a` pods and allows every
//! peer but the `-b` pods. The cut is written into the run's context before
//! anything changes, so that [`heal_all`] heals it when the steps end even
//! if its step was interrupted.

use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::context::Ctx;
use super::cut::Cut;
use super::{Done, StepError};
use crate::k8s::labels;
use crate::scenario::{Partition, PartitionDirection, PodRef};

/// The label that puts a pod on a side of a cut.
pub const LABEL: &str = "runbook.dev/partition";
/// The lab's annotation that makes a policy lose packets rather than cut.
const LOSS_ANNOTATION: &str = "runbook.dev/loss";
/// The lab's annotation that makes a policy delay packets rather than cut.
const LATENCY_ANNOTATION: &str = "runbook.dev/latency";

/// What the lab does instead of cutting: lose or delay what the cut would
/// stop.
#[derive(Clone, Copy, Default)]
struct Degraded {
    loss_percent: Option<u8>,
    latency_ms: Option<u32>,
}

/// Runs a `partition` step: cut, hold for `lasts`, heal.
pub async fn run(ctx: &Ctx, spec: &Partition, lasts: Duration) -> Result<Done, StepError> {
    let isolated = running(ctx, &spec.isolate).await?;
    let uids: Vec<&Value> = isolated.iter().map(|p| &p["metadata"]["uid"]).collect();
    let others: Vec<Value> =
        running(ctx, &spec.from).await?.into_iter().filter(|p| !uids.contains(&&p["metadata"]["uid"])).collect();
    if isolated.is_empty() || others.is_empty() {
        return Err(StepError::failed(
            "Running pods on both sides of the partition",
            format!("{} to isolate, {} to isolate them from", isolated.len(), others.len()),
            "pods",
        ));
    }
    let direction = spec.direction.unwrap_or(PartitionDirection::Both);
    let degraded = Degraded {
        loss_percent: match &spec.loss {
            Some(text) => Some(crate::scenario::loss_percent(&ctx.render(text)).map_err(StepError::Invalid)?),
            None => None,
        },
        latency_ms: match &spec.latency {
            Some(text) => Some(crate::scenario::latency_millis(&ctx.render(text)).map_err(StepError::Invalid)?),
            None => None,
        },
    };
    let mut lines = vec![
        format!("isolated: {}", names(&isolated)),
        format!("from: {}", names(&others)),
        format!("direction: {}", describe(direction)),
    ];
    if degraded.loss_percent.is_some() || degraded.latency_ms.is_some() {
        lab_cluster(ctx).await?;
    }
    if let Some(percent) = degraded.loss_percent {
        lines.push(format!("{percent}% of the packets lost (not a cut)"));
    }
    if let Some(millis) = degraded.latency_ms {
        lines.push(format!("each packet between them delayed {millis} ms, replies too (not a cut)"));
    }
    let started = Instant::now();
    let cut = make_degraded(ctx, &isolated, &others, direction, degraded).await?;
    lines.push(format!(
        "NetworkPolicy {} in place",
        cut.policies.iter().map(|(ns, n)| format!("{ns}/{n}")).collect::<Vec<_>>().join(", ")
    ));
    ctx.mark(format!("partition {} in place", cut.id));
    let end = started + lasts;
    while Instant::now() < end {
        let left = end - Instant::now();
        ctx.progress(&format!("partition in place; healed in {}s", left.as_secs_f64().ceil()));
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
    }
    let held = started.elapsed();
    heal(ctx, &cut).await?;
    ctx.mark(format!("partition {} healed", cut.id));
    lines.push(format!("healed after {:.1}s", held.as_secs_f64()));
    let mut done = Done { output: lines.join("\n"), ..Done::default() };
    done.measure("partition held", held.as_millis() as f64, "ms");
    Ok(done)
}

/// Heals every cut still in place (their steps were cut short): partitions
/// and nodes taken down; what could
/// not be undone, as `kind/name` lines for the run's leftovers.
pub async fn heal_all(ctx: &Ctx) -> Vec<String> {
    let cuts: Vec<Cut> = ctx.cuts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut left = Vec::new();
    for cut in cuts {
        if let Err(e) = heal(ctx, &cut).await {
            let why = super::error_text(&e);
            left.extend(
                cut.policies.iter().map(|(ns, n)| format!("networkpolicy/{n} in {ns} (partition not healed: {why})")),
            );
            left.extend(cut.nodes.iter().map(|n| format!("node/{n} (still down: {why})")));
        }
    }
    left
}

async fn running(ctx: &Ctx, refs: &[PodRef]) -> Result<Vec<Value>, StepError> {
    let mut pods = Vec::new();
    for r in refs {
        for pod in ctx.pods(r).await? {
            if crate::k8s::conditions::pod_running(&pod)
                && !pods.iter().any(|p: &Value| p["metadata"]["uid"] == pod["metadata"]["uid"])
            {
                pods.push(pod);
            }
        }
    }
    Ok(pods)
}

fn names(pods: &[Value]) -> String {
    pods.iter().map(|p| p["metadata"]["name"].as_str().unwrap_or_default()).collect::<Vec<_>>().join(", ")
}

fn describe(direction: PartitionDirection) -> &'static str {
    match direction {
        PartitionDirection::Both => "both ways",
        PartitionDirection::Outbound => "the isolated pods open no connection to the others",
        PartitionDirection::Inbound => "the others open no connection to the isolated pods",
    }
}

fn ns_name(pod: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (text(&pod["metadata"]["namespace"]), text(&pod["metadata"]["name"]))
}

/// Refuses a cluster that is not the lab: packet loss and latency are the
/// lab's own extensions of NetworkPolicy.
async fn lab_cluster(ctx: &Ctx) -> Result<(), StepError> {
    let (api, _, _) = ctx.api(Some("v1"), "Node", None).await?;
    let nodes = api.list(&Default::default()).await?;
    match nodes.items.first().map(serde_json::to_value) {
        Some(Ok(node)) => super::node_down::lab_node(&node).map_err(|e| match e {
            StepError::NotHere(_) => StepError::NotHere(
                "packet loss and latency need the runbook lab (NetworkPolicy has neither; a network plugin would cut)"
                    .into(),
            ),
            other => other,
        }),
        _ => Err(StepError::NotHere("the cluster lists no node".into())),
    }
}

/// Labels both sides and creates the policies, writing the cut into the
/// context first so that whatever was done is undone.
pub(super) async fn make(
    ctx: &Ctx,
    isolated: &[Value],
    others: &[Value],
    direction: PartitionDirection,
) -> Result<Cut, StepError> {
    make_degraded(ctx, isolated, others, direction, Degraded::default()).await
}

/// [`make`], its policies annotated with a packet loss or a latency for
/// the lab.
async fn make_degraded(
    ctx: &Ctx,
    isolated: &[Value],
    others: &[Value],
    direction: PartitionDirection,
    degraded: Degraded,
) -> Result<Cut, StepError> {
    let id = {
        let cuts = ctx.cuts.lock().unwrap_or_else(|e| e.into_inner());
        format!("{}-{}", ctx.render("{{ run_id }}"), cuts.len() + 1)
    };
    let mut namespaces: Vec<String> = isolated.iter().map(|p| ns_name(p).0).collect();
    namespaces.dedup();
    let cut = Cut {
        id: id.clone(),
        pods: isolated.iter().chain(others).map(ns_name).collect(),
        policies: namespaces.iter().map(|ns| (ns.clone(), format!("runbook-partition-{id}"))).collect(),
        nodes: Vec::new(),
    };
    ctx.cuts.lock().unwrap_or_else(|e| e.into_inner()).push(cut.clone());
    for (pods, side) in [(isolated, "a"), (others, "b")] {
        for pod in pods {
            let (ns, name) = ns_name(pod);
            label(ctx, &ns, &name, Some(&format!("{id}-{side}"))).await?;
        }
    }
    let blocked: Vec<String> =
        others.iter().filter_map(|p| p["status"]["podIP"].as_str()).map(|ip| format!("{ip}/32")).collect();
    let run_id = ctx.render("{{ run_id }}");
    for (ns, name) in &cut.policies {
        let mut policy = policy(name, ns, &id, &blocked, direction);
        if let Some(percent) = degraded.loss_percent {
            policy["metadata"]["annotations"][LOSS_ANNOTATION] = json!(format!("{percent}%"));
        }
        if let Some(millis) = degraded.latency_ms {
            policy["metadata"]["annotations"][LATENCY_ANNOTATION] = json!(format!("{millis}ms"));
        }
        labels::stamp(&mut policy, &run_id);
        let (api, _, _) = ctx.api(Some("networking.k8s.io/v1"), "NetworkPolicy", Some(ns)).await?;
        let object: kube::api::DynamicObject = serde_json::from_value(policy).map_err(StepError::from_source)?;
        // Applied, not created: the name is this run's own, and an apply can
        // be sent again after a 500 (a create cannot: it may have been made).
        api.patch(name, &PatchParams::apply(labels::FIELD_MANAGER).force(), &Patch::Apply(&object)).await?;
    }
    Ok(cut)
}

/// The policy that cuts the `<id>-a` pods of `ns` off from the `<id>-b` pods
/// (and their addresses, for plugins whose ipBlock also matches pods).
fn policy(name: &str, ns: &str, id: &str, blocked: &[String], direction: PartitionDirection) -> Value {
    let peers = json!([
        {"namespaceSelector": {},
         "podSelector": {"matchExpressions": [{"key": LABEL, "operator": "NotIn", "values": [format!("{id}-b")]}]}},
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": blocked}}
    ]);
    let (types, ingress, egress) = match direction {
        PartitionDirection::Both => (json!(["Ingress", "Egress"]), true, true),
        PartitionDirection::Outbound => (json!(["Egress"]), false, true),
        PartitionDirection::Inbound => (json!(["Ingress"]), true, false),
    };
    let mut spec = json!({"podSelector": {"matchLabels": {LABEL: format!("{id}-a")}}, "policyTypes": types});
    if ingress {
        spec["ingress"] = json!([{"from": peers}]);
    }
    if egress {
        spec["egress"] = json!([{"to": peers}]);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// Sets (or, with `None`, removes) a pod's partition label; a pod that is
/// gone needs nothing.
async fn label(ctx: &Ctx, ns: &str, name: &str, value: Option<&str>) -> Result<(), StepError> {
    let (api, _, _) = ctx.api(Some("v1"), "Pod", Some(ns)).await?;
    let patch = json!({"metadata": {"labels": {LABEL: value}}});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the cut's policies and takes its labels off; forgets the cut
/// once all of that is done.
pub(super) async fn heal(ctx: &Ctx, cut: &Cut) -> Result<(), StepError> {
    for (ns, name) in &cut.policies {
        let (api, _, _) = ctx.api(Some("networking.k8s.io/v1"), "NetworkPolicy", Some(ns)).await?;
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (ns, name) in &cut.pods {
        label(ctx, ns, name, None).await?;
    }
    for node in &cut.nodes {
        super::node_down::bring_back(ctx, node).await?;
    }
    ctx.cuts.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| c.id != cut.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_isolates_side_a_from_side_b_only() {
        let p = policy("runbook-partition-r-1", "ns", "r-1", &["10.244.0.9/32".into()], PartitionDirection::Both);
        assert_eq!(p["spec"]["podSelector"], json!({"matchLabels": {LABEL: "r-1-a"}}));
        assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(p["spec"]["ingress"][0]["from"], p["spec"]["egress"][0]["to"]);
        let peers = &p["spec"]["ingress"][0]["from"];
        assert_eq!(peers[0]["podSelector"]["matchExpressions"][0]["values"], json!(["r-1-b"]));
        assert_eq!(peers[1]["ipBlock"]["except"], json!(["10.244.0.9/32"]));
        let outbound = policy("n", "ns", "r-1", &[], PartitionDirection::Outbound);
        assert_eq!(outbound["spec"]["policyTypes"], json!(["Egress"]));
        assert!(outbound["spec"]["ingress"].is_null());
        let inbound = policy("n", "ns", "r-1", &[], PartitionDirection::Inbound);
        assert_eq!(inbound["spec"]["policyTypes"], json!(["Ingress"]));
        assert!(inbound["spec"]["egress"].is_null());
    }
}

//! `nodeDown`: a lab node goes down for a while, then comes back. runbook
//! annotates the Node `runbook.dev/down` and the lab does the rest: the
//! node's pods stop and vanish from the network, its kubelet falls silent,
//! Kubernetes marks it unreachable after its grace period; removing the
//! annotation brings it back. Only the lab can do this (no API takes a real
//! machine down): elsewhere the step is skipped, saying so. The node is
//! written into the run's context before it goes down, so that the run
//! brings it back however its steps end.

use std::time::{Duration, Instant};

use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::context::Ctx;
use super::cut::Cut;
use super::{Done, StepError};
use crate::scenario::NodeDown;

/// The annotation the lab reads (see the lab's `kubelet::node_down`).
pub const DOWN_ANNOTATION: &str = "runbook.dev/down";
/// What the lab's nodes report as their container runtime.
const LAB_RUNTIME: &str = "runbook-lab://";

/// Runs a `nodeDown` step: down for `lasts`, back, Ready within `timeout`.
pub async fn run(ctx: &Ctx, spec: &NodeDown, lasts: Duration, timeout: Duration) -> Result<Done, StepError> {
    let name = which_node(ctx, spec).await?;
    let node = get_node(ctx, &name).await?;
    lab_node(&node)?;
    let pods = pods_on(ctx, &name).await?;
    let mut lines = vec![format!("node {name} down for {}s; its pods: {}", lasts.as_secs_f64(), pods.join(", "))];
    let down = take_down(ctx, &name).await?;
    ctx.mark(format!("node {name} down"));
    let started = Instant::now();
    let mut unreachable_after = None;
    while started.elapsed() < lasts {
        let left = lasts - started.elapsed();
        ctx.progress(&format!("node {name} down; back in {}s", left.as_secs_f64().ceil()));
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        if unreachable_after.is_none() && ready_status(&get_node(ctx, &name).await?) == "Unknown" {
            unreachable_after = Some(started.elapsed());
            ctx.mark(format!("node {name} NotReady"));
        }
    }
    let held = started.elapsed();
    bring_back(ctx, &name).await?;
    ctx.cuts.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| c.id != down.id);
    ctx.mark(format!("node {name} back"));
    lines.push(match unreachable_after {
        Some(at) => format!("Kubernetes marked it NotReady after {:.1}s", at.as_secs_f64()),
        None => "still Ready for Kubernetes when it came back (its grace period is longer)".into(),
    });
    let back = Instant::now();
    loop {
        if ready_status(&get_node(ctx, &name).await?) == "True" {
            break;
        }
        if back.elapsed() > timeout {
            return Err(StepError::failed(
                format!("node {name} Ready within {}s of coming back", timeout.as_secs()),
                format!("Ready {}", ready_status(&get_node(ctx, &name).await?)),
                format!("node/{name}"),
            ));
        }
        ctx.progress(&format!("node {name} back; waiting for Ready"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lines.push(format!(
        "back after {:.1}s, Ready again after {:.1}s",
        held.as_secs_f64(),
        back.elapsed().as_secs_f64()
    ));
    let mut done = Done { output: lines.join("\n"), ..Done::default() };
    done.measure("node down", held.as_millis() as f64, "ms");
    if let Some(at) = unreachable_after {
        done.measure("marked NotReady after", at.as_millis() as f64, "ms");
    }
    done.measure("Ready again after", back.elapsed().as_millis() as f64, "ms");
    Ok(done)
}

/// The node the step names, or the one running its pod.
async fn which_node(ctx: &Ctx, spec: &NodeDown) -> Result<String, StepError> {
    if let Some(node) = &spec.node {
        return Ok(ctx.render(node));
    }
    let Some(pod) = &spec.pod else { return Err(StepError::Invalid("nodeDown needs node or pod".into())) };
    let pods = ctx.pods(pod).await?;
    let running = pods.iter().find(|p| crate::k8s::conditions::pod_running(p));
    running.and_then(|p| p["spec"]["nodeName"].as_str()).map(String::from).ok_or_else(|| {
        StepError::failed(
            "a Running pod to find its node",
            format!("{} pods, none Running", pods.len()),
            ctx.describe_pod(pod),
        )
    })
}

pub(super) async fn get_node(ctx: &Ctx, name: &str) -> Result<Value, StepError> {
    let (api, _, _) = ctx.api(Some("v1"), "Node", None).await?;
    let node = api.get(name).await?;
    serde_json::to_value(node).map_err(StepError::from_source)
}

/// Refuses a node that is not the lab's: nothing in the API takes a
/// machine down.
pub fn lab_node(node: &Value) -> Result<(), StepError> {
    let runtime = node["status"]["nodeInfo"]["containerRuntimeVersion"].as_str().unwrap_or_default();
    if runtime.starts_with(LAB_RUNTIME) {
        return Ok(());
    }
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    Err(StepError::NotHere(format!(
        "node {name} is not a runbook lab node (its runtime is {runtime:?}): only the lab can take a node down"
    )))
}

/// The Ready condition's status (`True`, `False`, `Unknown`).
pub fn ready_status(node: &Value) -> &str {
    let conditions = node["status"]["conditions"].as_array().into_iter().flatten();
    conditions.into_iter().find(|c| c["type"] == "Ready").and_then(|c| c["status"].as_str()).unwrap_or("Unknown")
}

/// The `namespace/name` of every pod bound to the node.
pub(super) async fn pods_on(ctx: &Ctx, node: &str) -> Result<Vec<String>, StepError> {
    let (api, _, _) = ctx.api(Some("v1"), "Pod", None).await?;
    let list = api.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await?;
    Ok(list
        .items
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect())
}

/// Annotates the node down, the cut written into the context first.
pub(super) async fn take_down(ctx: &Ctx, name: &str) -> Result<Cut, StepError> {
    let id = {
        let cuts = ctx.cuts.lock().unwrap_or_else(|e| e.into_inner());
        format!("{}-{}", ctx.render("{{ run_id }}"), cuts.len() + 1)
    };
    let cut = Cut { id: id.clone(), nodes: vec![name.to_string()], ..Cut::default() };
    ctx.cuts.lock().unwrap_or_else(|e| e.into_inner()).push(cut.clone());
    annotate(ctx, name, Some(&format!("runbook run {id}"))).await?;
    Ok(cut)
}

/// Brings a node taken down back (a node that is gone needs nothing); the
/// run's healing of cuts left in place calls it too.
pub async fn bring_back(ctx: &Ctx, name: &str) -> Result<(), StepError> {
    annotate(ctx, name, None).await
}

async fn annotate(ctx: &Ctx, name: &str, value: Option<&str>) -> Result<(), StepError> {
    let (api, _, _) = ctx.api(Some("v1"), "Node", None).await?;
    let patch = json!({"metadata": {"annotations": {DOWN_ANNOTATION: value}}});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lab_node_can_go_down() {
        let lab = json!({"metadata": {"name": "runbook-lab-m02"}, "status": {"nodeInfo": {"containerRuntimeVersion": "runbook-lab://1"}}});
        assert!(lab_node(&lab).is_ok());
        let kind = json!({"metadata": {"name": "kind-worker"}, "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://2.1.3"}}});
        let Err(StepError::NotHere(why)) = lab_node(&kind) else { panic!("a real node is refused") };
        assert_eq!(
            why,
            "node kind-worker is not a runbook lab node (its runtime is \"containerd://2.1.3\"): only the lab can take a node down"
        );
    }

    #[test]
    fn ready_is_read_from_the_ready_condition() {
        let node = json!({"status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(ready_status(&node), "Unknown");
        assert_eq!(ready_status(&json!({})), "Unknown");
    }
}

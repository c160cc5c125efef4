//! `runbook cleanup`: removes what runbook runs left in a cluster, found by
//! label (`app.kubernetes.io/managed-by=runbook`, and `runbook.dev/run-id`
//! for one run), in every resource type the cluster serves.

use std::time::Duration;

use clap::Args;

use super::common::{KubeconfigArgs, duration_arg};
use super::out::outln;
use crate::exit;
use crate::k8s::client::{self, ClusterChoice};
use crate::k8s::leftovers;

/// Options of `cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Which cluster.
    #[command(flatten)]
    pub kube: KubeconfigArgs,
    /// Search only this namespace (default: every namespace, and the
    /// cluster-scoped objects such as namespaces and PersistentVolumes).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Only the objects of one run (its id is printed when the run starts and
    /// is in its reports).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the objects to be gone.
    #[arg(long, value_name = "DURATION", default_value = "120s")]
    pub timeout: String,
}

/// Runs `cleanup`: exit 0 when nothing labelled remains, 1 when something
/// could not be removed.
pub fn run(args: CleanupArgs) -> anyhow::Result<u8> {
    let patience = duration_arg("--timeout", &args.timeout)?;
    super::runtime()?.block_on(execute(&args, patience))
}

async fn execute(args: &CleanupArgs, patience: Duration) -> anyhow::Result<u8> {
    let choice = ClusterChoice {
        kubeconfig: args.kube.kubeconfig.clone(),
        context: args.kube.context.clone(),
        namespace: args.namespace.clone(),
        lab: false,
        lab_nodes: None,
    };
    let conn = client::connect(&choice, false, false).await?;
    let selector = leftovers::selector(args.run_id.as_deref());
    let scope = args.namespace.as_deref();
    let search = leftovers::find(&conn.client, &selector, scope).await?;
    for problem in &search.unsearchable {
        eprintln!("warning: could not search {problem}");
    }
    let found = search.found;
    // Nodes a killed run left down (the lab's nodeDown): not labelled, annotated.
    if scope.is_none() {
        for node in nodes_down(&conn.client, args.run_id.as_deref()).await? {
            if args.dry_run {
                outln!("node/{node} is down (runbook.dev/down): dry run, left down")?;
            } else {
                bring_back(&conn.client, &node).await?;
                outln!("node/{node} brought back (runbook.dev/down removed)")?;
            }
        }
    }
    let place = match scope {
        Some(ns) => format!("namespace {ns}"),
        None => "the cluster".into(),
    };
    if found.is_empty() {
        outln!("nothing labelled {selector} in {place} (context {})", conn.context)?;
        return Ok(exit::SUCCESS);
    }
    outln!("{} objects labelled {selector} in {place} (context {}):", found.len(), conn.context)?;
    for object in &found {
        let run = object.run_id.as_deref().map(|id| format!(" (run {id})")).unwrap_or_default();
        outln!("  {}{run}", object.display())?;
    }
    if args.dry_run {
        outln!("dry run: nothing removed")?;
        return Ok(exit::SUCCESS);
    }
    let remaining = leftovers::remove(&conn.client, &found, patience).await;
    if remaining.is_empty() {
        outln!("removed {}; nothing left", found.len())?;
        return Ok(exit::SUCCESS);
    }
    outln!("still there after {}:", args.timeout)?;
    for object in &remaining {
        outln!("  {}", object.display())?;
    }
    Ok(exit::CHECK_FAILED)
}

/// The nodes annotated `runbook.dev/down` by runbook (by the run `run_id`
/// when given): the annotation's value is `runbook run <run id>-<n>`.
async fn nodes_down(client: &kube::Client, run_id: Option<&str>) -> anyhow::Result<Vec<String>> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let mut down = Vec::new();
    for node in nodes.list(&Default::default()).await? {
        let value = node.metadata.annotations.as_ref().and_then(|a| a.get(DOWN_ANNOTATION)).cloned();
        let ours = value
            .as_deref()
            .and_then(|v| v.strip_prefix("runbook run "))
            .is_some_and(|cut| run_id.is_none_or(|id| cut.rsplit_once('-').is_some_and(|(run, _)| run == id)));
        if let (true, Some(name)) = (ours, node.metadata.name) {
            down.push(name);
        }
    }
    Ok(down)
}

async fn bring_back(client: &kube::Client, node: &str) -> anyhow::Result<()> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"annotations": {DOWN_ANNOTATION: null}}});
    nodes.patch(node, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    Ok(())
}

/// The annotation that takes a lab node down (see the engine's `nodeDown`).
const DOWN_ANNOTATION: &str = "runbook.dev/down";

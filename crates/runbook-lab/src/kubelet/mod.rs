//! The lab's kubelet (and scheduler): binds pods to the single node and runs
//! them as host processes inside their own namespaces. See docs/lab.md.

pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod env;
pub mod exec;
pub mod fit;
mod image;
pub mod logfile;
pub mod logs;
pub mod netutil;
pub mod network;
pub mod pod;
pub mod policy_enforcer;
pub mod portforward;
pub mod portforward_spdy;
pub mod probes;
pub mod process;
pub mod sandbox;
pub mod spdy;
pub mod status;
pub mod terminal;
pub mod termination;
pub mod usage;
pub mod userland;
pub mod userns;
pub mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::api::objects::{self, Part};
use crate::api::resources::by_key;
use crate::api::store::{ChangeType, Store};
use crate::bootstrap::NODE_NAME;
use network::LabNetwork;
use pod::PodHandle;

/// What every pod worker shares.
pub struct KubeletCtx {
    /// The object store.
    pub store: Arc<Store>,
    /// The lab's state dir; pods live under `pods/UID`.
    pub state_dir: PathBuf,
    /// The lab network.
    pub network: Arc<LabNetwork>,
    /// The program run as `PROGRAM __sandbox SPEC` for each pod.
    pub sandbox_program: PathBuf,
    /// Images built from source (image repository → its binary on the host).
    pub built_images: Vec<(String, PathBuf)>,
    /// Cancelled when the lab stops.
    pub shutdown: CancellationToken,
    /// Running pods by uid.
    pub pods: Mutex<HashMap<String, Arc<PodHandle>>>,
    /// A delay on every exec and port-forward message (`--latency`).
    pub latency: crate::latency::Latency,
    /// The lab's cgroups, where containers' limits are enforced.
    pub cgroups: cgroups::Cgroups,
    /// What containers and the node use, sampled from the cgroups.
    pub usage: Arc<usage::Usage>,
    /// NetworkPolicy, enforced in the pods' network namespaces.
    pub policies: Arc<policy_enforcer::PolicyEnforcer>,
}

impl KubeletCtx {
    /// The handle of a running pod, by namespace and name.
    pub fn pod(&self, ns: &str, name: &str) -> Option<Arc<PodHandle>> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.values().find(|p| p.ns == ns && p.name == name).cloned()
    }

    /// Records an event about a pod.
    pub fn event(&self, pod: &Value, kind: &str, reason: &str, message: &str) {
        objects::record_event(&self.store, pod, kind, reason, message, "kubelet");
    }

    /// Records a kubelet Event about one container of `pod`
    /// (`spec.containers{name}`, or `spec.initContainers{name}`).
    pub fn container_event(&self, pod: &Value, container: &str, init: bool, kind: &str, reason: &str, message: &str) {
        let list = if init { "initContainers" } else { "containers" };
        let path = format!("spec.{list}{{{container}}}");
        objects::record_event_at(&self.store, pod, &path, kind, reason, message, "kubelet");
    }
}

/// Runs the kubelet until shutdown; on shutdown, stops every pod.
pub async fn run(ctx: Arc<KubeletCtx>) {
    let (existing, rv) = ctx.store.list("pods", None);
    let Some((_, mut changes)) = ctx.store.subscribe(rv) else { return };
    for pod in existing {
        handle(&ctx, &pod, false);
    }
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            change = changes.recv() => match change {
                Ok(c) if c.resource == "pods" => {
                    // A pod's labels or address may change what policies allow.
                    ctx.policies.poke();
                    let deleted = c.kind == ChangeType::Deleted;
                    handle(&ctx, &c.object, deleted);
                    // A pod that goes or ends frees what it requested.
                    let finished = matches!(c.object["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
                    if deleted || finished {
                        retry_unscheduled(&ctx);
                    }
                }
                Ok(c) if c.resource == "networkpolicies" || c.resource == "namespaces" => ctx.policies.poke(),
                // An uncordoned node takes the pods that waited for it.
                Ok(c) if c.resource == "nodes" => retry_unscheduled(&ctx),
                Ok(c) if c.resource == "configmaps" || c.resource == "secrets" => {
                    refresh_volumes(&ctx, c.resource == "secrets", &c.object);
                }
                Ok(c) if c.resource == "persistentvolumes" && c.kind == ChangeType::Deleted => {
                    volumes::remove_provisioned_data(&ctx.state_dir, &c.object);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    for pod in ctx.store.list("pods", None).0 {
                        handle(&ctx, &pod, false);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    stop_all(&ctx).await;
    ctx.cgroups.remove_all();
}

/// Updates the volumes of the running pods that mount `object` (a ConfigMap
/// or Secret that changed).
fn refresh_volumes(ctx: &Arc<KubeletCtx>, secret: bool, object: &Value) {
    let (ns, name) = objects::ns_name(object);
    let field = if secret { ("secret", "secretName") } else { ("configMap", "name") };
    let handles: Vec<Arc<PodHandle>> = ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
    for handle in handles.iter().filter(|h| h.ns == ns) {
        let Some(pod) = ctx.store.get("pods", &ns, &handle.name) else { continue };
        let mounts_it =
            pod["spec"]["volumes"].as_array().into_iter().flatten().any(|v| v[field.0][field.1] == name.as_str());
        if mounts_it {
            volumes::refresh_projected(&ctx.store, &handle.dir, &pod);
        }
    }
}

/// Tries again the pods the scheduler could not place.
fn retry_unscheduled(ctx: &Arc<KubeletCtx>) {
    for pod in ctx.store.list("pods", None).0 {
        if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            handle(ctx, &pod, false);
        }
    }
}

async fn stop_all(ctx: &KubeletCtx) {
    let handles: Vec<Arc<PodHandle>> = ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
    for h in &handles {
        // A short grace at lab shutdown: nothing will read their final state.
        h.terminate(2);
    }
    for h in handles {
        h.finished().await;
    }
}

fn handle(ctx: &Arc<KubeletCtx>, pod: &Value, deleted: bool) {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let existing = ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).get(&uid).cloned();
    if deleted {
        if let Some(h) = existing {
            h.terminate(0);
        }
        return;
    }
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        schedule(ctx, pod);
        return;
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(30);
        match existing {
            Some(h) => h.terminate(grace),
            None => {
                let (ns, name) = objects::ns_name(pod);
                if let Some(pods) = by_key("pods") {
                    let _ = objects::finalize_delete(&ctx.store, pods, &ns, &name);
                }
            }
        }
        return;
    }
    if existing.is_none() && !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
        let handle = PodHandle::start(ctx.clone(), pod);
        ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).insert(uid, handle);
    }
}

/// The scheduler's whole job on one node: bind the pod to it, unless the node
/// is cordoned or has too little CPU or memory left (then the pod stays
/// Pending, Unschedulable, as on a real cluster, and is tried again later).
fn schedule(ctx: &KubeletCtx, pod: &Value) {
    let Some(pods) = by_key("pods") else { return };
    let (ns, name) = objects::ns_name(pod);
    let node = ctx.store.get("nodes", "", NODE_NAME);
    let why_not = if node.as_ref().is_some_and(|n| n["spec"]["unschedulable"] == true) {
        Some("0/1 nodes are available: 1 node(s) were unschedulable.".to_string())
    } else {
        let (all, _) = ctx.store.list("pods", None);
        let placed: Vec<&Value> = all
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| {
                p["spec"]["nodeName"] == NODE_NAME
                    && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
            })
            .collect();
        let allocatable = node.as_ref().map(|n| n["status"]["allocatable"].clone()).unwrap_or_default();
        fit::misfit(pod, &allocatable, &placed)
    };
    if let Some(message) = why_not {
        let marked = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["reason"] == "Unschedulable" && c["message"] == message.as_str());
        if !marked {
            let mut next = pod.clone();
            next["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": null, "lastTransitionTime": objects::now()}]);
            if let Ok(stored) = objects::update(&ctx.store, pods, &ns, &name, next, Part::Status) {
                objects::record_event(
                    &ctx.store,
                    &stored,
                    "Warning",
                    "FailedScheduling",
                    &message,
                    "default-scheduler",
                );
            }
        }
        return;
    }
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!(NODE_NAME);
    if let Ok(stored) = objects::update(&ctx.store, pods, &ns, &name, bound, Part::Main) {
        let message = format!("Successfully assigned {ns}/{name} to {NODE_NAME}");
        objects::record_event(&ctx.store, &stored, "Normal", "Scheduled", &message, "default-scheduler");
    }
}

/// Pod logs, exec and port-forward, served from the kubelet's running pods.
pub struct KubeletSubresources(pub Arc<KubeletCtx>);

impl crate::api::PodSubresources for KubeletSubresources {
    fn serve<'a>(
        &'a self,
        sub: &'a str,
        ns: &'a str,
        name: &'a str,
        query: &'a crate::api::route::Query,
        req: axum::extract::Request,
    ) -> futures::future::BoxFuture<'a, crate::api::status::ApiResult<axum::response::Response>> {
        use crate::api::status::ApiError;
        Box::pin(async move {
            let ctx = &self.0;
            let pod = ctx.store.get("pods", ns, name).ok_or_else(|| ApiError::not_found("pods", name))?;
            // The kubelet answers from the container's status before any log exists.
            let log_of = if sub == "log" {
                let container = logs::choose_container(&pod, query.get("container"))?;
                logs::check_status(&pod, &container, query.flag("previous"))?;
                Some(container)
            } else {
                None
            };
            let handle = ctx.pod(ns, name).filter(|h| h.sandbox_pid.load(std::sync::atomic::Ordering::SeqCst) != 0);
            let Some(handle) = handle else {
                return Err(ApiError::bad_request(format!(
                    "pod {name} is not running (phase {}): no container to attach to",
                    pod["status"]["phase"].as_str().unwrap_or("Pending")
                )));
            };
            match sub {
                "log" => logs::serve(ctx, handle, log_of.unwrap_or_default(), query).await,
                "exec" | "attach" => exec::serve(ctx, handle, &pod, query, req).await,
                "portforward" => portforward::serve(handle, query, req, ctx.latency).await,
                other => Err(ApiError::no_route(&format!("pods/{name}/{other}"))),
            }
        })
    }
}

//! The lab's kubelet (and scheduler): binds pods to the lab's nodes and runs
//! them as host processes inside their own namespaces. See docs/lab.md.

pub mod affinity;
pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod env;
pub mod exec;
pub mod fit;
pub mod heartbeat;
mod image;
pub mod logfile;
pub mod logs;
pub mod netutil;
pub mod network;
pub mod node_down;
pub mod packet_delay;
pub mod pod;
pub mod policy_enforcer;
pub mod portforward;
pub mod portforward_spdy;
pub mod probes;
pub mod process;
pub mod sandbox;
pub mod scheduler;
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
    /// The nodes that are down (their kubelet does nothing).
    pub down_nodes: node_down::DownNodes,
}

impl KubeletCtx {
    /// The handle of a running pod, by uid (not by name: a pod deleted on a
    /// node that is down still runs there while its successor of the same
    /// name runs elsewhere).
    pub fn pod(&self, uid: &str) -> Option<Arc<PodHandle>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner()).get(uid).cloned()
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
                Ok(c) if c.resource == "nodes" => {
                    let name = c.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    if node_down::asks_down(&c.object) != ctx.down_nodes.contains(&name) {
                        tokio::spawn(node_down::reconcile(ctx.clone(), name));
                    }
                    // An uncordoned node takes the pods that waited for it.
                    retry_unscheduled(&ctx);
                }
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

/// Acts on a pod's change: schedules it, starts it, stops it. The kubelet of
/// a node that is down does nothing (it catches up when the node is back).
fn handle(ctx: &Arc<KubeletCtx>, pod: &Value, deleted: bool) {
    if pod["spec"]["nodeName"].as_str().is_some_and(|node| ctx.down_nodes.contains(node)) {
        return;
    }
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
                let same =
                    ctx.store.get("pods", &ns, &name).is_some_and(|p| p["metadata"]["uid"] == pod["metadata"]["uid"]);
                if let (true, Some(pods)) = (same, by_key("pods")) {
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

/// Binds the pod to the node the scheduler picks; when none fits, the pod
/// stays Pending, Unschedulable, with the scheduler's message, as on a real
/// cluster, and is tried again when a pod or node changes.
fn schedule(ctx: &KubeletCtx, pod: &Value) {
    let Some(pods) = by_key("pods") else { return };
    let (ns, name) = objects::ns_name(pod);
    let (nodes, _) = ctx.store.list("nodes", None);
    let (all, _) = ctx.store.list("pods", None);
    match scheduler::place(pod, &scheduler::Cluster { nodes: &nodes, pods: &all }) {
        Ok(node) => {
            let mut bound = pod.clone();
            bound["spec"]["nodeName"] = json!(node);
            if let Ok(stored) = objects::update(&ctx.store, pods, &ns, &name, bound, Part::Main) {
                let message = format!("Successfully assigned {ns}/{name} to {node}");
                objects::record_event(&ctx.store, &stored, "Normal", "Scheduled", &message, "default-scheduler");
            }
        }
        Err(message) => {
            let marked = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["reason"] == "Unschedulable" && c["message"] == message.as_str());
            if marked {
                return;
            }
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
            let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
            if ctx.down_nodes.contains(node) {
                // What the API server says when it cannot reach the kubelet.
                let ip = crate::bootstrap::node_ip(node);
                return Err(ApiError::internal(format!(
                    "error dialing backend: dial tcp {ip}:10250: connect: no route to host"
                )));
            }
            let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
            let handle = ctx.pod(uid).filter(|h| h.sandbox_pid.load(std::sync::atomic::Ordering::SeqCst) != 0);
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

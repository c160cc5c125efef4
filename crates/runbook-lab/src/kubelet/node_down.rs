//! A lab node that goes down and comes back, as a machine that hangs or loses
//! its network does. A Node annotated `runbook.dev/down` is down: its pods'
//! processes are stopped (SIGSTOP, nothing runs or answers), their veths are
//! unplugged from the lab bridge (packets to them vanish), and its kubelet
//! falls silent (no Lease renewal, no pod status, no probes, no deletions
//! carried out), so the node lifecycle controller finds it unreachable after
//! its grace period. Removing the annotation brings it all back: the network,
//! the processes (SIGCONT: they resume where they stopped, as a paused VM
//! does), the kubelet's heartbeat and pod statuses.
//!
//! The annotation is how `runbook`'s `nodeDown` step asks for it: visible in
//! `kubectl describe node`, removed by the step, by cleanup and on Ctrl-C.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::KubeletCtx;
use super::pod::PodHandle;

/// The annotation that takes a lab node down (its value says who asked).
pub const DOWN_ANNOTATION: &str = "runbook.dev/down";

/// The nodes that are down now.
#[derive(Default)]
pub struct DownNodes {
    down: Mutex<HashSet<String>>,
    /// One transition at a time, each reading what the Node asks for then.
    transition: tokio::sync::Mutex<()>,
}

impl DownNodes {
    /// Whether `node` is down (its kubelet does nothing).
    pub fn contains(&self, node: &str) -> bool {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).contains(node)
    }
}

/// Whether a Node asks to be down.
pub fn asks_down(node: &Value) -> bool {
    node["metadata"]["annotations"][DOWN_ANNOTATION].is_string()
}

/// Brings `node` (by name) to the state its Node object asks for.
pub async fn reconcile(ctx: Arc<KubeletCtx>, name: String) {
    let _one_at_a_time = ctx.down_nodes.transition.lock().await;
    let want_down = ctx.store.get("nodes", "", &name).is_some_and(|n| asks_down(&n));
    if want_down == ctx.down_nodes.contains(&name) {
        return;
    }
    let handles: Vec<Arc<PodHandle>> =
        ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|h| h.node == name).cloned().collect();
    if want_down {
        ctx.down_nodes.down.lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone());
        for handle in &handles {
            signal_pod(handle, Signal::SIGSTOP);
            plug(&ctx, handle, false).await;
        }
        return;
    }
    for handle in &handles {
        plug(&ctx, handle, true).await;
        signal_pod(handle, Signal::SIGCONT);
    }
    ctx.down_nodes.down.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);
    super::heartbeat::beat(&ctx, &name);
    // What changed meanwhile: statuses to post, deletions to carry out
    // (a pod deleted for good while the node was down is stopped now).
    for handle in &handles {
        let gone =
            ctx.store.list("pods", Some(&handle.ns)).0.iter().all(|p| p["metadata"]["uid"] != handle.uid.as_str());
        if gone {
            handle.terminate(0);
        } else {
            handle.update(&ctx, |_| {});
        }
    }
    for pod in ctx.store.list("pods", None).0.iter().filter(|p| p["spec"]["nodeName"] == name.as_str()) {
        super::handle(&ctx, pod, false);
    }
}

/// Plugs the pod's veth into the lab bridge or unplugs it.
async fn plug(ctx: &KubeletCtx, handle: &PodHandle, up: bool) {
    let ip = handle.view.lock().unwrap_or_else(|e| e.into_inner()).pod_ip.clone();
    let Some(ip) = ip.and_then(|ip| ip.parse().ok()) else { return };
    if let Err(e) = ctx.network.set_link(ip, up).await {
        eprintln!("runbook lab: node {}: pod {}/{}: {e:#}", handle.node, handle.ns, handle.name);
    }
}

/// Sends `signal` to the pod's sandbox and to each container's process group.
/// (Not to every process in the pod's network namespace: a hostNetwork pod
/// shares the host's, lab included.)
fn signal_pod(handle: &PodHandle, signal: Signal) {
    use nix::unistd::Pid;
    let sandbox = handle.sandbox_pid.load(std::sync::atomic::Ordering::SeqCst);
    if sandbox != 0 {
        let _ = nix::sys::signal::kill(Pid::from_raw(sandbox as i32), signal);
    }
    for group in handle.groups.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = nix::sys::signal::killpg(Pid::from_raw(*group as i32), signal);
    }
}

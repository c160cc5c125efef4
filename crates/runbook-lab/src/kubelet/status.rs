//! The pod status the kubelet reports: phase, conditions, container statuses,
//! built from what the pod worker knows and written through the status
//! subresource only when it changes.

use serde_json::{Value, json};

use crate::api::objects::{self, Part};
use crate::api::resources::by_key;
use crate::api::store::Store;

/// What the kubelet knows of one container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// Container name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// `{"waiting": …}`, `{"running": …}` or `{"terminated": …}`.
    pub state: Value,
    /// The previous termination, or `{}`.
    pub last_state: Value,
    /// Passing its readiness probe (or running without one).
    pub ready: bool,
    /// Started (running, past any startup probe).
    pub started: bool,
    /// Times the container was restarted.
    pub restart_count: i64,
    /// `runbook://PID` of the current process.
    pub container_id: String,
}

impl ContainerView {
    /// A container not started yet.
    pub fn waiting(name: &str, image: &str, reason: &str) -> Self {
        ContainerView {
            name: name.into(),
            image: image.into(),
            state: json!({"waiting": {"reason": reason}}),
            last_state: json!({}),
            ready: false,
            started: false,
            restart_count: 0,
            container_id: String::new(),
        }
    }

    /// Whether the current state is `running`.
    pub fn is_running(&self) -> bool {
        self.state.get("running").is_some()
    }

    /// Whether the current state is `terminated`.
    pub fn terminated_code(&self) -> Option<i64> {
        self.state.get("terminated").map(|t| t["exitCode"].as_i64().unwrap_or(0))
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name, "image": self.image, "imageID": format!("runbook-lab://{}", self.image),
            "state": self.state, "lastState": self.last_state, "ready": self.ready,
            "started": self.started, "restartCount": self.restart_count,
        });
        if !self.container_id.is_empty() {
            v["containerID"] = json!(self.container_id);
        }
        v
    }
}

/// What the kubelet knows of a pod.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    /// Pod IP once the network is wired.
    pub pod_ip: Option<String>,
    /// When the kubelet started working on the pod.
    pub start_time: Option<String>,
    /// Init container states.
    pub init: Vec<ContainerView>,
    /// Container states.
    pub containers: Vec<ContainerView>,
    /// All init containers have completed.
    pub initialized: bool,
    /// Terminal phase set by the worker (Succeeded/Failed), if any.
    pub final_phase: Option<&'static str>,
    /// The IP of the pod's node (its hostIP).
    pub host_ip: String,
}

impl PodView {
    fn phase(&self) -> &'static str {
        if let Some(p) = self.final_phase {
            return p;
        }
        if self.containers.iter().any(|c| c.is_running() || c.restart_count > 0) { "Running" } else { "Pending" }
    }

    /// Whether every container is ready.
    pub fn ready(&self) -> bool {
        !self.containers.is_empty() && self.containers.iter().all(|c| c.ready)
    }
}

fn condition(kind: &str, ok: bool, previous: &Value, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = previous["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let since = match old {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if !ok && (kind == "Ready" || kind == "ContainersReady") {
        c["reason"] = json!("ContainersNotReady");
    }
    c
}

/// The full `status` for a pod from the view, keeping what does not change.
pub fn build(view: &PodView, previous: &Value) -> Value {
    let now = objects::now();
    let scheduled = condition("PodScheduled", true, previous, &now);
    let ready = view.ready();
    let mut status = json!({
        "phase": view.phase(),
        "qosClass": previous["qosClass"],
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "conditions": [
            condition("PodReadyToStartContainers", view.pod_ip.is_some(), previous, &now),
            condition("Initialized", view.initialized, previous, &now),
            condition("Ready", ready, previous, &now),
            condition("ContainersReady", ready, previous, &now),
            scheduled,
        ],
        "containerStatuses": view.containers.iter().map(ContainerView::to_json).collect::<Vec<_>>(),
    });
    if !view.init.is_empty() {
        status["initContainerStatuses"] = json!(view.init.iter().map(ContainerView::to_json).collect::<Vec<_>>());
    }
    if let Some(ip) = &view.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(t) = &view.start_time {
        status["startTime"] = json!(t);
    }
    status
}

/// Writes the pod's status if it changed; returns false when the pod is gone.
pub fn publish(store: &Store, ns: &str, name: &str, uid: &str, view: &PodView) -> bool {
    let Some(pods) = by_key("pods") else { return false };
    for _ in 0..10 {
        let Some(current) = store.get("pods", ns, name) else { return false };
        // Another pod of the same name (a StatefulSet's, after a forced
        // deletion) is not this one: the kubelet writes with a uid precondition.
        if current["metadata"]["uid"] != uid {
            return false;
        }
        let status = build(view, &current["status"]);
        if status == current["status"] {
            return true;
        }
        let mut next = (*current).clone();
        next["status"] = status;
        match objects::update(store, pods, ns, name, next, Part::Status) {
            Ok(_) => return true,
            Err(e) if e.reason == "Conflict" => continue,
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_pod_status() {
        let mut c = ContainerView::waiting("redis", "redis:alpine", "ContainerCreating");
        c.state = json!({"running": {"startedAt": "t"}});
        c.ready = true;
        let view =
            PodView { pod_ip: Some("10.244.0.2".into()), initialized: true, containers: vec![c], ..Default::default() };
        let status = build(&view, &json!({"qosClass": "Burstable"}));
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["qosClass"], "Burstable");
        let ready = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let view = PodView::default();
        let first = build(&view, &json!({}));
        let mut aged = first.clone();
        aged["conditions"][1]["lastTransitionTime"] = json!("2020-01-01T00:00:00Z");
        let second = build(&view, &aged);
        assert_eq!(second["conditions"][1]["lastTransitionTime"], "2020-01-01T00:00:00Z");
    }
}

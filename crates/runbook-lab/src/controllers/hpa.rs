//! HorizontalPodAutoscalers are stored and report, truthfully, that no metrics
//! are available: the lab has no metrics server, so nothing scales and the
//! status says why rather than pretending all is well.

use serde_json::json;

use crate::api::resources::by_kind;
use crate::api::store::Store;
use crate::controllers::replicaset::write_status;

/// The message the lab's HPAs carry.
pub const NO_METRICS: &str = "the HPA was unable to compute the replica count: failed to get cpu utilization: \
    unable to get metrics for resource cpu: no metrics server in the runbook lab";

/// Writes every HPA's status.
pub fn reconcile_all(store: &Store) {
    let Some(rt) = by_kind("autoscaling/v2", "HorizontalPodAutoscaler") else { return };
    for hpa in store.list("horizontalpodautoscalers", None).0 {
        let ns = hpa["metadata"]["namespace"].as_str().unwrap_or_default();
        let target = &hpa["spec"]["scaleTargetRef"];
        let kind = target["kind"].as_str().unwrap_or_default();
        let resource = match kind {
            "Deployment" => "deployments",
            "StatefulSet" => "statefulsets",
            "ReplicaSet" => "replicasets",
            _ => "",
        };
        let replicas = store
            .get(resource, ns, target["name"].as_str().unwrap_or_default())
            .and_then(|o| o["status"]["replicas"].as_i64())
            .unwrap_or(0);
        let previous = hpa["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let since = |kind: &str| {
            previous
                .iter()
                .find(|c| c["type"] == kind)
                .map(|c| c["lastTransitionTime"].clone())
                .unwrap_or_else(|| json!(crate::api::objects::now()))
        };
        let status = json!({
            "currentReplicas": replicas,
            "desiredReplicas": replicas,
            "currentMetrics": null,
            "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale",
                 "message": "the HPA controller was able to get the target's current scale", "lastTransitionTime": since("AbleToScale")},
                {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
                 "message": NO_METRICS, "lastTransitionTime": since("ScalingActive")},
            ],
        });
        write_status(store, rt, &hpa, status);
    }
}

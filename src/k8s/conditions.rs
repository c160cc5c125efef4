//! Small pure conditions on objects, as kube-rs composes them; each returns
//! why it does not hold yet so waits can say what they are waiting for.

use serde_json::Value;

/// Whether a Deployment or StatefulSet rollout is complete; Err says why not,
/// in kubectl's words.
pub fn rollout_complete(object: &Value) -> Result<(), String> {
    let spec_replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let status = &object["status"];
    let n = |k: &str| status[k].as_i64().unwrap_or(0);
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    if n("observedGeneration") < generation {
        return Err("waiting for the rollout to be observed".into());
    }
    let kind = object["kind"].as_str().unwrap_or_default();
    if kind == "StatefulSet" {
        if n("readyReplicas") < spec_replicas {
            return Err(format!("{} of {spec_replicas} pods ready", n("readyReplicas")));
        }
        if status["updateRevision"].is_string()
            && status["updateRevision"] != status["currentRevision"]
            && n("updatedReplicas") < spec_replicas
        {
            return Err(format!("{} of {spec_replicas} pods updated", n("updatedReplicas")));
        }
        return Ok(());
    }
    let progressing = status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Progressing");
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Err("progress deadline exceeded".into());
    }
    if n("updatedReplicas") < spec_replicas {
        return Err(format!("{} out of {spec_replicas} new replicas have been updated", n("updatedReplicas")));
    }
    if n("replicas") > n("updatedReplicas") {
        return Err(format!("{} old replicas are pending termination", n("replicas") - n("updatedReplicas")));
    }
    if n("availableReplicas") < n("updatedReplicas") {
        return Err(format!("{} of {} updated replicas are available", n("availableReplicas"), n("updatedReplicas")));
    }
    Ok(())
}

/// Whether a pod is Ready and not being deleted.
pub fn pod_ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether a pod's containers run (phase Running, not being deleted).
pub fn pod_running(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null() && pod["status"]["phase"] == "Running"
}

/// Why a pod's containers wait or fail (`redis: ImagePullBackOff`), for progress lines.
pub fn pod_troubles(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for list in ["initContainerStatuses", "containerStatuses"] {
        for c in pod["status"][list].as_array().into_iter().flatten() {
            let reason = c["state"]["waiting"]["reason"].as_str().or(c["state"]["terminated"]["reason"].as_str());
            if let Some(r) = reason.filter(|r| !matches!(*r, "ContainerCreating" | "PodInitializing" | "Completed")) {
                out.push(format!("{}: {r}", c["name"].as_str().unwrap_or_default()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rollout_states() {
        let mut d = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1}});
        assert!(rollout_complete(&d).unwrap_err().contains("observed"));
        d["status"] = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1});
        assert!(rollout_complete(&d).unwrap_err().contains("old replicas"));
        d["status"]["replicas"] = json!(1);
        assert!(rollout_complete(&d).is_ok());
    }

    #[test]
    fn troubles_name_the_reason() {
        let pod = json!({"status": {"containerStatuses": [{"name": "redis", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(pod_troubles(&pod), ["redis: ImagePullBackOff"]);
    }
}

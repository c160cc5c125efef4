//! The objects a fresh cluster has before anyone applies anything: the system
//! namespaces, the node, and a default StorageClass named `standard` (as kind has).

use serde_json::json;

use crate::lab::api::objects;
use crate::lab::api::resources::by_key;
use crate::lab::api::store::Store;

/// Name of the lab's single node.
pub const NODE_NAME: &str = "runbook-lab";

/// Creates the built-in objects.
pub fn seed(store: &Store) -> anyhow::Result<()> {
    let create = |key: &str, ns: &str, object: serde_json::Value| -> anyhow::Result<()> {
        let rt = by_key(key).ok_or_else(|| anyhow::anyhow!("unknown resource {key}"))?;
        objects::create(store, rt, ns, object, false).map_err(|e| anyhow::anyhow!("bootstrap {key}: {}", e.message))?;
        Ok(())
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create("namespaces", "", json!({"metadata": {"name": ns}}))?;
    }
    create(
        "storageclasses",
        "",
        json!({
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "runbook.lab/local-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
        }),
    )?;
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let now = objects::now();
    create(
        "nodes",
        "",
        json!({
            "metadata": {"name": NODE_NAME, "labels": {
                "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/control-plane": ""}},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "runbook lab kubelet is posting ready status",
                                "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "nodeInfo": {"osImage": os, "kernelVersion": kernel, "containerRuntimeVersion": "runbook-lab://1",
                             "kubeletVersion": "v1.33.0-runbook-lab", "operatingSystem": "linux", "architecture": std::env::consts::ARCH},
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
                "capacity": {"cpu": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string(), "pods": "110"},
            }
        }),
    )?;
    Ok(())
}

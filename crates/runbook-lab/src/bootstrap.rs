//! The objects a fresh cluster has before anyone applies anything: the system
//! namespaces, the nodes, and a default StorageClass named `standard` (as kind has).

use serde_json::json;

use crate::api::objects;
use crate::api::resources::by_key;
use crate::api::store::Store;

/// The ConfigMap in every namespace that holds the API server's CA (as
/// kube-controller-manager's root-ca-cert-publisher keeps it).
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// Name of the lab's first node (its only one unless it has more).
pub const NODE_NAME: &str = "runbook-lab";

/// The names of a lab's `count` nodes: `runbook-lab`, then `runbook-lab-m02`,
/// `runbook-lab-m03`, ... (minikube's convention for added nodes).
pub fn node_names(count: u32) -> Vec<String> {
    (1..=count.max(1)).map(|i| if i == 1 { NODE_NAME.to_string() } else { format!("{NODE_NAME}-m{i:02}") }).collect()
}

/// The InternalIP a node reports (and its pods as their hostIP): `127.0.0.N`
/// for the Nth node, all of them this host's loopback.
pub fn node_ip(name: &str) -> String {
    let index =
        name.strip_prefix(NODE_NAME).and_then(|rest| rest.strip_prefix("-m")).and_then(|n| n.parse::<u32>().ok());
    format!("127.0.0.{}", index.unwrap_or(1))
}

/// Creates the built-in objects and `nodes` nodes; `ca_pem` is the API
/// server's CA, published as `kube-root-ca.crt` in every namespace.
pub fn seed(store: &Store, ca_pem: &str, nodes: u32) -> anyhow::Result<()> {
    let create = |key: &str, ns: &str, object: serde_json::Value| -> anyhow::Result<()> {
        let rt = by_key(key).ok_or_else(|| anyhow::anyhow!("unknown resource {key}"))?;
        objects::create(store, rt, ns, object, false).map_err(|e| anyhow::anyhow!("bootstrap {key}: {}", e.message))?;
        Ok(())
    };
    const SYSTEM_NAMESPACES: [&str; 4] = ["kube-system", "default", "kube-public", "kube-node-lease"];
    for ns in SYSTEM_NAMESPACES {
        create("namespaces", "", json!({"metadata": {"name": ns}}))?;
    }
    // kube-system's copy is the one the namespaces controller copies from;
    // the others may have been seen before it existed.
    let configmaps = by_key("configmaps").ok_or_else(|| anyhow::anyhow!("unknown resource configmaps"))?;
    for ns in SYSTEM_NAMESPACES {
        let ca = json!({"metadata": {"name": ROOT_CA_CONFIGMAP}, "data": {"ca.crt": ca_pem}});
        match objects::create(store, configmaps, ns, ca, false) {
            Err(e) if e.reason != "AlreadyExists" => anyhow::bail!("bootstrap {ROOT_CA_CONFIGMAP}: {}", e.message),
            _ => {}
        }
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
    // What the scheduler fits pods into (crate::kubelet::fit).
    let resources = json!({
        "cpu": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string(),
        "memory": format!("{}Ki", crate::kubelet::fit::host_memory_bytes() / 1024),
        "pods": "110",
    });
    for name in node_names(nodes) {
        let mut labels = json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
        if name == NODE_NAME {
            labels["node-role.kubernetes.io/control-plane"] = json!("");
        }
        let ip = node_ip(&name);
        create(
            "nodes",
            "",
            json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "message": "runbook lab kubelet is posting ready status",
                                    "lastHeartbeatTime": now, "lastTransitionTime": now}],
                    "nodeInfo": {"osImage": os, "kernelVersion": kernel, "containerRuntimeVersion": "runbook-lab://1",
                                 "kubeletVersion": "v1.33.0-runbook-lab", "operatingSystem": "linux", "architecture": std::env::consts::ARCH},
                    "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                    "capacity": resources,
                    "allocatable": resources,
                }
            }),
        )?;
    }
    Ok(())
}

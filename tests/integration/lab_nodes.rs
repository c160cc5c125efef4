//! A lab of several nodes: pods spread over them, and a node that goes down
//! behaves as Kubernetes makes an unreachable node behave (NotReady after the
//! grace period, tainted, its pods not ready and, once their toleration runs
//! out, Terminating while replacements start elsewhere), then comes back with
//! its processes as they were. Real Redis pods, real connections.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::common::{TestLab, kubectl_until, requires};
use crate::lab_network_policy::{becomes, reaches};

pub const DOWN: &str = "runbook.dev/down";

/// Runs the StatefulSet `r` of `replicas` Redis pods and waits until all are Ready.
pub async fn redis_statefulset(t: &TestLab, replicas: u32) {
    let manifest = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "r"},
        "spec": {"serviceName": "r", "replicas": replicas, "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "r"}},
            "template": {"metadata": {"labels": {"app": "r"}}, "spec": {"containers": [{"name": "redis",
                "image": "redis:7.4.1-alpine", "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 1}}]}}}});
    t.kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string()).await;
    kubectl_until(t, &["get", "statefulset", "r", "-o", "jsonpath={.status.readyReplicas}"], 60, |out| {
        out == replicas.to_string()
    })
    .await;
}

async fn field(t: &TestLab, kind: &str, name: &str, path: &str) -> String {
    t.kubectl(&["get", kind, name, "-o", &format!("jsonpath={path}")]).await
}

#[tokio::test]
async fn pods_spread_and_a_node_that_goes_down_is_unreachable_until_it_comes_back_as_it_was() {
    requires!(Root, Kubectl);
    let t = TestLab::with_nodes(3, Duration::from_secs(3)).await;
    let names = t.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]).await;
    assert_eq!(names, "runbook-lab runbook-lab-m02 runbook-lab-m03");
    redis_statefulset(&t, 3).await;
    let mut placed = BTreeSet::new();
    for pod in ["r-0", "r-1", "r-2"] {
        placed.insert(field(&t, "pod", pod, "{.spec.nodeName}").await);
    }
    assert_eq!(placed.len(), 3, "one pod per node: {placed:?}");
    let node = field(&t, "pod", "r-1", "{.spec.nodeName}").await;
    let ip = field(&t, "pod", "r-1", "{.status.podIP}").await;
    assert_eq!(
        field(&t, "pod", "r-1", "{.status.hostIP}").await,
        field(&t, "node", &node, "{.status.addresses[0].address}").await
    );
    t.kubectl(&["exec", "r-1", "--", "redis-cli", "set", "before", "down"]).await;
    assert!(reaches(&t, "r-0", &ip).await);

    t.kubectl(&["annotate", "node", &node, &format!("{DOWN}=test")]).await;
    becomes("r-0 -> r-1 on the node that is down", false, async || reaches(&t, "r-0", &ip).await).await;
    kubectl_until(
        &t,
        &["get", "node", &node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
        15,
        |s| s == "Unknown",
    )
    .await;
    let ready = field(&t, "node", &node, "{.status.conditions[?(@.type=='Ready')].message}").await;
    assert_eq!(ready, "Kubelet stopped posting node status.");
    let taints = field(&t, "node", &node, "{range .spec.taints[*]}{.key}:{.effect} {end}").await;
    assert_eq!(taints.trim(), "node.kubernetes.io/unreachable:NoSchedule node.kubernetes.io/unreachable:NoExecute");
    kubectl_until(
        &t,
        &["get", "pod", "r-1", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
        5,
        |s| s == "False",
    )
    .await;
    let exec = t.kubectl_output(&["exec", "r-1", "--", "redis-cli", "ping"], None).await;
    assert!(String::from_utf8_lossy(&exec.stderr).contains("error dialing backend"), "{exec:?}");
    // The other nodes carry on.
    assert!(reaches(&t, "r-2", &field(&t, "pod", "r-0", "{.status.podIP}").await).await);

    t.kubectl(&["annotate", "node", &node, &format!("{DOWN}-")]).await;
    becomes("r-0 -> r-1 once the node is back", true, async || reaches(&t, "r-0", &ip).await).await;
    kubectl_until(
        &t,
        &["get", "node", &node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
        10,
        |s| s == "True",
    )
    .await;
    kubectl_until(&t, &["get", "node", &node, "-o", "jsonpath={.spec.taints}"], 5, str::is_empty).await;
    kubectl_until(
        &t,
        &["get", "pod", "r-1", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
        10,
        |s| s == "True",
    )
    .await;
    // The same process, resumed: no restart, its data in memory.
    assert_eq!(field(&t, "pod", "r-1", "{.status.containerStatuses[0].restartCount}").await, "0");
    assert_eq!(t.kubectl(&["exec", "r-1", "--", "redis-cli", "get", "before"]).await.trim(), "down");
}

#[tokio::test]
async fn a_pod_whose_toleration_runs_out_is_evicted_and_replaced_on_another_node() {
    requires!(Root, Kubectl);
    let t = TestLab::with_nodes(2, Duration::from_secs(2)).await;
    let manifest = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}],
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}}});
    t.kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string()).await;
    t.kubectl(&["wait", "pod", "-l", "app=web", "--for=condition=Ready", "--timeout=60s"]).await;
    let on_m02 = t.kubectl(&["get", "pods", "--field-selector=spec.nodeName=runbook-lab-m02", "-o", "name"]).await;
    let on_m02 = on_m02.trim().to_string();
    assert_eq!(on_m02.lines().count(), 1, "one pod per node: {on_m02}");
    t.kubectl(&["annotate", "node", "runbook-lab-m02", &format!("{DOWN}=test")]).await;
    kubectl_until(&t, &["get", &on_m02, "-o", "jsonpath={.metadata.deletionTimestamp}"], 15, |s| !s.is_empty()).await;
    let events = t
        .kubectl(&[
            "get",
            "events",
            "--field-selector=reason=TaintManagerEviction",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert_eq!(events, format!("Marking for deletion Pod default/{}", on_m02.trim_start_matches("pod/")));
    // Its replacement runs on the node that is up; the evicted pod waits for
    // its kubelet, Terminating.
    kubectl_until(&t, &["get", "pods", "--field-selector=spec.nodeName=runbook-lab", "-o", "name"], 15, |s| {
        s.lines().count() == 2
    })
    .await;
    assert!(t.api_get("pods", "default", on_m02.trim_start_matches("pod/")).await.is_some());
    t.kubectl(&["annotate", "node", "runbook-lab-m02", &format!("{DOWN}-")]).await;
    kubectl_until(&t, &["get", "pods", "-o", "name"], 15, |s| !s.contains(&on_m02)).await;
}

#[tokio::test]
async fn a_pod_deleted_for_good_while_its_node_is_down_stops_when_the_node_comes_back() {
    requires!(Root, Kubectl);
    let t = TestLab::with_nodes(2, Duration::from_secs(50)).await;
    redis_statefulset(&t, 2).await;
    let (old_uid, old_ip) =
        (field(&t, "pod", "r-1", "{.metadata.uid}").await, field(&t, "pod", "r-1", "{.status.podIP}").await);
    let node = field(&t, "pod", "r-1", "{.spec.nodeName}").await;
    t.kubectl(&["exec", "r-1", "--", "redis-cli", "set", "who", "old"]).await;
    t.kubectl(&["annotate", "node", &node, &format!("{DOWN}=test")]).await;
    t.kubectl(&["delete", "pod", "r-1", "--grace-period=0", "--force", "--wait=false"]).await;
    kubectl_until(&t, &["get", "pod", "r-1", "-o", "jsonpath={.metadata.uid}"], 15, |uid| {
        !uid.is_empty() && uid != old_uid
    })
    .await;
    t.kubectl(&["annotate", "node", &node, &format!("{DOWN}-")]).await;
    kubectl_until(
        &t,
        &["get", "pod", "r-1", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
        30,
        |s| s == "True",
    )
    .await;
    // The old process, deleted while its node was down, is stopped once the
    // node is back; exec reaches the new one.
    becomes("the deleted pod's old process", false, async || reaches(&t, "r-0", &old_ip).await).await;
    assert_eq!(t.kubectl(&["exec", "r-1", "--", "redis-cli", "get", "who"]).await.trim(), "");
}

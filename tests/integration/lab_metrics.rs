//! Usage measured from the pods' cgroups: `kubectl top`, and an HPA that
//! scales a Deployment out under CPU load and back in after it.

use std::time::Duration;

use serde_json::json;

use crate::common::requires;
use crate::common::{TestLab, kubectl_until};

/// A busybox container that burns CPU while `/tmp/busy` exists.
fn burner(limits: serde_json::Value) -> serde_json::Value {
    json!({"name": "c", "image": "busybox:1.36",
        "command": ["sh", "-c", "while :; do if [ -f /tmp/busy ]; then :; else sleep 0.2; fi; done"],
        "resources": limits})
}

/// The millicores in a `kubectl top` CPU column (`123m`).
fn millicores(cell: &str) -> i64 {
    cell.trim_end_matches('m').parse().unwrap_or_else(|_| panic!("not millicores: {cell}"))
}

#[tokio::test]
async fn kubectl_top_shows_a_busy_pod_held_to_its_cpu_limit() {
    requires!(Root, Kubectl);
    if !std::path::Path::new("/sys/fs/cgroup/cpu").exists() {
        eprintln!("no cgroup v1 cpu controller here: CPU quotas are checked on v1 hosts");
        return;
    }
    let t = TestLab::with_pods().await;
    for (name, busy) in [("busy", true), ("idle", false)] {
        let mut container = burner(json!({"limits": {"cpu": "200m", "memory": "32Mi"}}));
        if busy {
            container["command"] = json!(["sh", "-c", "while :; do :; done"]);
        }
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container]}});
        t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    }
    t.kubectl(&["wait", "pod/busy", "pod/idle", "--for=condition=Ready", "--timeout=60s"]).await;
    // Two seconds of samples and the rate settles near the quota.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let top = kubectl_until(&t, &["top", "pod", "--no-headers"], 30, |o| o.lines().count() == 2).await;
    let rows: Vec<Vec<&str>> = top.lines().map(|l| l.split_whitespace().collect()).collect();
    let busy = rows.iter().find(|r| r[0] == "busy").expect("busy listed");
    let idle = rows.iter().find(|r| r[0] == "idle").expect("idle listed");
    assert!((150..=215).contains(&millicores(busy[1])), "a 200m quota holds a busy loop near 200m: {top}");
    assert!(millicores(idle[1]) < 30, "{top}");
    assert!(busy[2].ends_with("Mi"), "{top}");
    let node = t.kubectl(&["top", "node", "--no-headers"]).await;
    let columns: Vec<&str> = node.split_whitespace().collect();
    assert_eq!((columns[0], columns.len()), ("runbook-lab", 5), "{node}");
    assert!(millicores(columns[1]) >= 150, "the node's CPU includes the busy pod's: {node}");
}

#[tokio::test]
async fn an_hpa_scales_out_under_load_and_back_in() {
    requires!(Root, Kubectl);
    if !std::path::Path::new("/sys/fs/cgroup/cpu").exists() {
        eprintln!("no cgroup v1 cpu controller here: the HPA drill is checked on v1 hosts");
        return;
    }
    let t = TestLab::with_pods().await;
    let resources = json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [burner(resources)]}}}});
    t.kubectl_stdin(&["apply", "-f", "-"], &deployment.to_string()).await;
    t.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]).await;
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}});
    t.kubectl_stdin(&["apply", "-f", "-"], &hpa.to_string()).await;
    let active = "jsonpath={.status.conditions[?(@.type==\"ScalingActive\")].reason}";
    kubectl_until(&t, &["get", "hpa", "web", "-o", active], 40, |o| o == "ValidMetricFound").await;
    let pod = t.kubectl(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]).await;

    let loaded = std::time::Instant::now();
    t.kubectl(&["exec", &pod, "--", "touch", "/tmp/busy"]).await;
    // 200m used of 100m requested is 200% against 50%: 4 replicas, held to the maximum of 3.
    kubectl_until(&t, &["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"], 60, |o| o == "3").await;
    eprintln!("scaled out to 3 in {:.1}s", loaded.elapsed().as_secs_f64());
    let row = t.kubectl(&["get", "hpa", "web", "--no-headers"]).await;
    let targets = row.split_whitespace().nth(3).unwrap_or_default();
    assert!(targets.ends_with("%/50%") && !targets.contains("unknown"), "the current utilization: {row}");
    let limited = "jsonpath={.status.conditions[?(@.type==\"ScalingLimited\")].reason}";
    assert_eq!(t.kubectl(&["get", "hpa", "web", "-o", limited]).await, "TooManyReplicas");
    let events = t
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=SuccessfulRescale",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert!(
        events.contains("New size: 3; reason: cpu resource utilization (percentage of request) above target"),
        "{events}"
    );

    let unloaded = std::time::Instant::now();
    t.kubectl(&["exec", &pod, "--", "rm", "/tmp/busy"]).await;
    kubectl_until(&t, &["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"], 60, |o| o == "1").await;
    eprintln!("scaled back in to 1 in {:.1}s", unloaded.elapsed().as_secs_f64());
    let events = t
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=SuccessfulRescale",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert!(events.contains("New size: 1; reason: All metrics below target"), "{events}");
}

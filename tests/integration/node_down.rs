//! The `nodeDown` drill on a lab of three nodes: while the node is down its
//! pod is unreachable and Kubernetes marks the node NotReady; when its time
//! is up, and when the run is interrupted with Ctrl-C, the node comes back
//! (no annotation left, Ready, its pod reachable with its data).

use std::time::{Duration, Instant};

use crate::common::{TestLab, kubectl_until, requires};
use crate::lab_network_policy::{becomes, reaches};
use crate::lab_nodes::{DOWN, redis_statefulset};
use crate::partition::{interrupt, start_run};

async fn ip_of(t: &TestLab, pod: &str) -> String {
    t.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]).await
}

/// The node of r-1, once the drill took it down (at most 30 s).
async fn node_taken_down(t: &TestLab) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let node = t.kubectl(&["get", "pod", "r-1", "-o", "jsonpath={.spec.nodeName}"]).await;
    let annotation = "jsonpath={.metadata.annotations.runbook\\.dev/down}";
    while t.kubectl(&["get", "node", &node, "-o", annotation]).await.trim().is_empty() {
        assert!(Instant::now() < deadline, "node {node} not taken down after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node
}

async fn back_up(t: &TestLab, node: &str) {
    let annotations = t.kubectl(&["get", "node", node, "-o", "jsonpath={.metadata.annotations}"]).await;
    assert!(!annotations.contains(DOWN), "the node is still down: {annotations}");
    kubectl_until(
        t,
        &["get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
        10,
        |s| s == "True",
    )
    .await;
    let ip = ip_of(t, "r-1").await;
    becomes("r-0 -> r-1 once the node is back", true, async || reaches(t, "r-0", &ip).await).await;
    assert_eq!(t.kubectl(&["exec", "r-1", "--", "redis-cli", "get", "before"]).await.trim(), "down");
}

#[tokio::test]
async fn a_node_down_drill_takes_the_node_away_and_brings_it_back() {
    requires!(Root, Kubectl);
    let t = TestLab::with_nodes(3, Duration::from_secs(2)).await;
    redis_statefulset(&t, 3).await;
    t.kubectl(&["exec", "r-1", "--", "redis-cli", "set", "before", "down"]).await;
    let run = start_run(&t, "node-down", "6s");
    let node = node_taken_down(&t).await;
    let ip = ip_of(&t, "r-1").await;
    becomes("r-0 -> r-1 while its node is down", false, async || reaches(&t, "r-0", &ip).await).await;
    let out = run.wait_with_output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let doc = crate::common::report(&t.dir.path().join("node-down.json"));
    let step = crate::common::step(&doc, "node-down");
    let first = step["output"].as_str().unwrap().lines().next().unwrap();
    assert_eq!(first, format!("node {node} down for 6s; its pods: default/r-1"), "{step}");
    assert!(crate::common::measurement(step, "node down") >= 6000.0, "{step}");
    let not_ready = crate::common::measurement(step, "marked NotReady after");
    assert!((2000.0..6000.0).contains(&not_ready), "NotReady after the 2 s grace: {step}");
    back_up(&t, &node).await;
}

#[tokio::test]
async fn ctrl_c_during_a_node_down_drill_brings_the_node_back() {
    requires!(Root, Kubectl);
    let t = TestLab::with_nodes(3, Duration::from_secs(2)).await;
    redis_statefulset(&t, 3).await;
    t.kubectl(&["exec", "r-1", "--", "redis-cli", "set", "before", "down"]).await;
    let run = start_run(&t, "node-down", "10m");
    let node = node_taken_down(&t).await;
    interrupt(run).await;
    back_up(&t, &node).await;
}

#[tokio::test]
async fn cleanup_brings_back_the_nodes_a_killed_run_left_down() {
    requires!(Root, Kubectl);
    let t = TestLab::with_nodes(3, Duration::from_secs(50)).await;
    t.kubectl(&["annotate", "node", "runbook-lab-m02", &format!("{DOWN}=runbook run abc12345-1")]).await;
    t.kubectl(&["annotate", "node", "runbook-lab-m03", &format!("{DOWN}=runbook run other999-2")]).await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let out =
        crate::common::runbook(&["cleanup", "--run-id", "abc12345", "--kubeconfig", &kubeconfig], t.dir.path()).await;
    let text = crate::common::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("node/runbook-lab-m02 brought back (runbook.dev/down removed)"), "{text}");
    let annotation = |node: &'static str| {
        let t = &t;
        async move { t.kubectl(&["get", "node", node, "-o", "jsonpath={.metadata.annotations.runbook\\.dev/down}"]).await }
    };
    assert_eq!(annotation("runbook-lab-m02").await.trim(), "", "the run's node is back");
    assert_eq!(annotation("runbook-lab-m03").await.trim(), "runbook run other999-2", "another run's node is left");
}

#[tokio::test]
async fn a_partition_between_nodes_cuts_one_nodes_pods_off_from_the_others() {
    requires!(Root, Kubectl);
    let t = TestLab::with_nodes(2, Duration::from_secs(50)).await;
    redis_statefulset(&t, 2).await;
    let on = |pod: &'static str| {
        let t = &t;
        async move { t.kubectl(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"]).await }
    };
    assert_eq!((on("r-0").await, on("r-1").await), ("runbook-lab".into(), "runbook-lab-m02".into()));
    let ip = ip_of(&t, "r-1").await;
    let run = start_run(&t, "node-partition", "6s");
    becomes("r-0 -> r-1 across the cut", false, async || reaches(&t, "r-0", &ip).await).await;
    let out = run.wait_with_output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let doc = crate::common::report(&t.dir.path().join("node-partition.json"));
    let cut = crate::common::step(&doc, "cut");
    let sides: Vec<&str> = cut["output"].as_str().unwrap().lines().take(2).collect();
    assert_eq!(sides, ["isolated: r-1", "from: r-0"], "{cut}");
    becomes("r-0 -> r-1 once healed", true, async || reaches(&t, "r-0", &ip).await).await;
}

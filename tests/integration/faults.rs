//! Every scenario still passes while the lab fails 10% of API requests (5xx or 429)
//! and ends watch streams early: runbook retries and re-watches.

use crate::common::TestLab;
use crate::common::requires;
use crate::common::runbook;

async fn run_under_faults(scenario: &str) {
    let t = TestLab::with_faults("errors=0.1,drop-watches=2s").await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let out = runbook(&["run", scenario, "--kubeconfig", &kubeconfig], t.dir.path()).await;
    let text = crate::common::output_text(&out);
    eprintln!("{scenario}: {} faults injected", t.lab.faults.injected());
    assert_eq!(out.status.code(), Some(0), "{scenario} under faults:\n{text}");
    assert!(t.lab.faults.injected() >= 3, "the lab really failed requests: {}", t.lab.faults.injected());
}

#[tokio::test]
async fn redis_cache_passes_with_ten_percent_api_errors_and_dropped_watches() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    run_under_faults("redis-cache").await;
}

#[tokio::test]
async fn counter_service_passes_with_ten_percent_api_errors_and_dropped_watches() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    run_under_faults("counter-service").await;
}

#[tokio::test]
async fn redis_cluster_passes_with_ten_percent_api_errors_and_dropped_watches() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    run_under_faults("redis-cluster").await;
}

#[tokio::test]
async fn redis_sentinel_passes_with_ten_percent_api_errors_and_dropped_watches() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    run_under_faults("redis-sentinel").await;
}

/// A create (POST) that fails with a 500 cannot safely be sent again: it may
/// have been made. So everything a drill makes is applied, which can: on a
/// lab that refuses every POST, a partition still cuts and heals, and runbook
/// never even tried one.
#[tokio::test]
async fn drills_make_their_objects_by_requests_that_can_be_sent_again() {
    requires!(Root, Kubectl);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_faults("errors=1,methods=POST").await;
    for name in ["a", "b", "c"] {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "redis"}},
            "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine"}]}});
        t.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &pod.to_string()).await;
    }
    t.kubectl(&["wait", "pod", "--all", "--for=condition=Ready", "--timeout=60s"]).await;
    let refused = t.kubectl_output(&["create", "configmap", "made-by-post"], None).await;
    assert!(!refused.status.success(), "the lab refuses a POST");
    assert_eq!(t.lab.faults.injected(), 1, "only kubectl's create was refused");

    let out = crate::partition::start_run(&t, "partition", "2s").wait_with_output().await.unwrap();
    let text = crate::common::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(t.lab.faults.injected(), 1, "runbook sent no POST:\n{text}");
    assert_eq!(t.kubectl(&["get", "networkpolicy", "-o", "name"]).await.trim(), "", "the cut is healed");
}

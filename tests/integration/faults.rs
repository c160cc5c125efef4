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

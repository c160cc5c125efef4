//! The counter-service scenario (seed 003) on the lab: the full run with its
//! drills' figures, a single-instance variant, and Redis without its password.

use crate::common::requires;
use crate::common::{TestLab, assert_no_secret, failed, measurement, run_scenario, step, verify_report};

async fn run(t: &TestLab, name: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    run_scenario(t, "counter-service", name, extra).await
}

#[tokio::test]
async fn run_counts_survives_restarts_and_fails_no_request_under_load() {
    requires!(Root, Chromium);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    // A short scale-down window, so the autoscaling drill also sees the scale-in.
    let quick = ["--set", "hpa_scale_down_window=10", "--set", "scale_in_within=120s"];
    let (code, doc, text) = run(&t, "run", &quick).await;
    assert_eq!(code, Some(0), "{text}");
    let autoscale = step(&doc, "autoscale-under-load");
    assert_eq!(measurement(autoscale, "failed requests"), 0.0, "{autoscale}");
    assert!(measurement(autoscale, "replicas reached") >= 3.0, "out from 2 instances: {autoscale}");
    assert!(measurement(autoscale, "scale-out time") < 120_000.0, "{autoscale}");
    assert!(measurement(autoscale, "scale-in time") > 0.0, "{autoscale}");
    for drill in ["lose-an-instance", "rolling-update"] {
        let s = step(&doc, drill);
        assert_eq!(measurement(s, "failed requests"), 0.0, "{s}");
        assert!(measurement(s, "requests") >= 100.0, "real load: {s}");
        assert!(measurement(s, "latency p99") >= measurement(s, "latency p50"));
    }
    assert_eq!(step(&doc, "counts-survive-redis-restart")["status"], "passed");
    assert_no_secret(&t, "run", &text, "counter-redis-password");
    crate::browser::assert_html_report(t.dir.path(), "run", &doc, None).await;
}

#[tokio::test]
async fn a_single_instance_fails_the_availability_checks() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    // An instance that takes 2 s to become Ready, as on a real cluster: with
    // one instance, losing it leaves the service without an endpoint that long.
    let (code, doc, text) = run(&t, "single", &["--set", "app_replicas=1", "--set", "app_ready_delay=2"]).await;
    assert_eq!(code, Some(1), "{text}");
    let failures = failed(&doc);
    assert!(failures.contains(&"app-instances".to_string()), "{failures:?}\n{text}");
    assert!(failures.contains(&"lose-an-instance".to_string()), "{failures:?}\n{text}");
    assert!(measurement(step(&doc, "lose-an-instance"), "failed requests") > 0.0);
}

#[tokio::test]
async fn redis_without_a_password_fails_the_auth_checks() {
    requires!(Root, Kubectl);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    let (code, _, text) = run(&t, "deploy", &["--keep"]).await;
    assert_eq!(code, Some(0), "{text}");
    let pod = t
        .kubectl(&["get", "pods", "-n", "counter", "-l", "app=redis", "-o", "jsonpath={.items[0].metadata.name}"])
        .await;
    t.kubectl(&[
        "exec",
        "-n",
        "counter",
        &pod,
        "--",
        "redis-cli",
        "--no-auth-warning",
        "-a",
        "counter-redis-password",
        "config",
        "set",
        "requirepass",
        "",
    ])
    .await;
    let (code, doc) = verify_report(&t, "counter-service").await;
    assert_eq!(code, Some(1));
    assert!(failed(&doc).contains(&"redis-refuses-strangers".to_string()), "{:?}", failed(&doc));
    assert_eq!(step(&doc, "redis-refuses-strangers")["actual"], "PONG");
}

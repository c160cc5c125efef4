//! `run --repeat N`: the same scenario N times in a row on one lab, then each
//! step's pass rate and each measurement's spread, in the terminal and in the
//! JSON report; the other reports once per run.

use serde_json::Value;

use crate::common::{TestLab, output_text, report, requires, runbook};

/// Runs `runbook run SCENARIO --repeat N` on the lab with JSON and JUnit
/// reports; returns the exit code, the JSON document and the terminal output.
async fn repeat(t: &TestLab, scenario: &str, times: &str) -> (Option<i32>, Value, String) {
    let (kubeconfig, dir) = (t.lab.kubeconfig.display().to_string(), t.dir.path());
    let (json, junit) =
        (format!("json={}", dir.join("r.json").display()), format!("junit={}", dir.join("r.xml").display()));
    let args = ["run", scenario, "--repeat", times, "--kubeconfig", &kubeconfig, "--report", &json, "--report", &junit];
    let out = runbook(&args, dir).await;
    (out.status.code(), report(&dir.join("r.json")), output_text(&out))
}

#[tokio::test]
async fn redis_cache_five_times_gives_pass_rates_and_spreads() {
    requires!(Root);
    let t = TestLab::with_pods().await;
    let (code, doc, text) = repeat(&t, "redis-cache", "5").await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("── run 5 of 5 ──") && text.contains("5 runs: 5 passed, 0 did not"), "{text}");
    let ping = text.lines().find(|l| l.split_whitespace().next() == Some("ping")).expect("a pass rate per step");
    assert!(ping.ends_with(" 5/5"), "{ping}");
    let runs = doc["repetitions"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    let ids: std::collections::HashSet<&str> = runs.iter().map(|r| r["run"]["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "a run id per run");
    let stats = &doc["statistics"];
    assert_eq!((stats["runs"].as_u64(), stats["passed_runs"].as_u64()), (Some(5), Some(5)));
    let rollout = stats["measurements"].as_array().unwrap().iter().find(|m| m["name"] == "rollout time").unwrap();
    assert_eq!(rollout["n"], 5);
    let (min, median, max) =
        (rollout["min"].as_f64().unwrap(), rollout["median"].as_f64().unwrap(), rollout["max"].as_f64().unwrap());
    assert!(min <= median && median <= max && min > 0.0, "{rollout}");
    assert!(text.contains("rollout-complete: rollout time (ms)"), "{text}");
    for n in 1..=5 {
        assert!(t.dir.path().join(format!("r-{n}.xml")).exists(), "JUnit of run {n}");
    }
}

#[tokio::test]
async fn redis_sentinel_three_times_gives_the_failover_time_spread() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    let (code, doc, text) = repeat(&t, "redis-sentinel", "3").await;
    assert_eq!(code, Some(0), "{text}");
    let failover = doc["statistics"]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["step"] == "failover-drill" && m["name"] == "failover time")
        .unwrap_or_else(|| panic!("no failover time: {text}"));
    assert_eq!(failover["n"], 3, "{failover}");
    let line =
        text.lines().find(|l| l.starts_with("failover-drill: failover time (ms)")).expect("a line per measurement");
    let figures: Vec<f64> = line.split_whitespace().rev().take(4).filter_map(|f| f.parse().ok()).collect();
    assert_eq!(figures.len(), 4, "min median p95 max: {line}");
    assert!(figures[3] >= 5000.0, "no failover before down-after-milliseconds: {line}");
}

#[tokio::test]
async fn repeat_refuses_zero_and_an_ephemeral_namespace() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [&["--repeat", "0"][..], &["--repeat", "2", "--ephemeral-namespace"]] {
        let args = [&["run", "redis-cache"][..], extra].concat();
        let out = runbook(&args, dir.path()).await;
        assert_eq!(out.status.code(), Some(3), "{extra:?}: {}", output_text(&out));
    }
}

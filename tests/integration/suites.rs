//! `run`/`verify` over several scenarios: the four seeds as a suite two at a
//! time with one combined report, suite files with a matrix, selection by
//! name pattern and label.

use crate::common::{TestLab, kubectl_until, output_text, report, requires, runbook};

fn runs(doc: &serde_json::Value) -> &Vec<serde_json::Value> {
    doc["runs"].as_array().expect("a suite report has runs")
}

/// When a run's report says it started and ended, in ms since the epoch.
fn window(run: &serde_json::Value) -> (i64, i64) {
    let started = chrono_ms(run["report"]["run"]["started_at"].as_str().unwrap());
    (started, started + run["report"]["summary"]["duration"].as_i64().unwrap())
}

fn chrono_ms(rfc3339: &str) -> i64 {
    let out = std::process::Command::new("date").args(["-d", rfc3339, "+%s"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse::<i64>().unwrap() * 1000
}

#[tokio::test]
async fn the_four_scenarios_run_two_at_a_time_each_in_its_namespace_with_one_combined_report() {
    requires!(Root, Kubectl);
    // Their drills are timed: not beside the other drill tests.
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let (junit, json) = (t.dir.path().join("suite.xml"), t.dir.path().join("suite.json"));
    let (junit_arg, json_arg) = (format!("junit={}", junit.display()), format!("json={}", json.display()));
    let args = [
        "run",
        "redis-cache",
        "redis-cluster",
        "redis-sentinel",
        "counter-service",
        "--parallel",
        "2",
        "--kubeconfig",
        &kubeconfig,
        "--report",
        &junit_arg,
        "--report",
        &json_arg,
    ];
    let out = runbook(&args, t.dir.path()).await;
    let text = output_text(&out);
    let doc = report(&json);
    let failures: Vec<String> = runs(&doc)
        .iter()
        .flat_map(|r| r["report"]["steps"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["status"] != "passed")
        .map(|s| {
            format!(
                "{}: {} expected {} actual {}\n{}",
                s["id"], s["status"], s["expected"], s["actual"], s["diagnostics"]
            )
        })
        .collect();
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", failures.join("\n"));
    assert!(text.contains("Suite runbook: 4 of 4 run(s) passed"), "{text}");
    assert_eq!(doc["summary"], serde_json::json!({"runs": 4, "passed": 4, "failed": 0}));
    let labels: Vec<&str> = runs(&doc).iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["redis-cache", "redis-cluster", "redis-sentinel", "counter-service"]);
    let mut namespaces = Vec::new();
    for run in runs(&doc) {
        let namespace = run["namespace"].as_str().unwrap().to_string();
        assert!(namespace.starts_with(&format!("{}-", run["label"].as_str().unwrap())), "{namespace}");
        assert_eq!(run["report"]["run"]["namespace"], namespace.as_str());
        assert_eq!(run["report"]["summary"]["verdict"], "passed", "{}", run["label"]);
        namespaces.push(namespace);
    }
    // Two at a time: redis-cluster and redis-sentinel (the two long ones)
    // overlap; and never three at once.
    let windows: Vec<(i64, i64)> = runs(&doc).iter().map(window).collect();
    let overlap = |a: (i64, i64), b: (i64, i64)| a.0 < b.1 && b.0 < a.1;
    assert!(overlap(windows[1], windows[2]), "{windows:?}");
    // One JUnit file, a test suite per run.
    let xml = std::fs::read_to_string(&junit).unwrap();
    for label in labels {
        assert_eq!(xml.matches(&format!("<testsuite name=\"{label}\"")).count(), 1, "{xml}");
    }
    // Each run's namespace went with its cleanup.
    kubectl_until(&t, &["get", "namespaces", "-o", "name"], 120, |o| {
        namespaces.iter().all(|n| !o.contains(n.as_str()))
    })
    .await;
}

#[tokio::test]
async fn a_suite_file_makes_a_run_per_matrix_combination_and_selection_narrows_it() {
    requires!(Root);
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.yaml");
    std::fs::write(
        &suite,
        "name: memory-limits\nruns:\n  - scenario: redis-cache\n    matrix: {maxmemory: [2mb, 3mb]}\n  \
         - scenario: redis-sentinel\n",
    )
    .unwrap();
    let json = dir.path().join("suite.json");
    let json_arg = format!("json={}", json.display());
    let suite_arg = suite.display().to_string();
    // Only the single-instance scenarios: the two redis-cache runs.
    let args = ["run", "--suite", &suite_arg, "--label", "topology=single", "--lab", "--report", &json_arg];
    let out = runbook(&args, dir.path()).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("── redis-cache [maxmemory=2mb] (1 of 2) ──"), "{text}");
    let doc = report(&json);
    assert_eq!(doc["suite"], "memory-limits");
    let labels: Vec<&str> = runs(&doc).iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["redis-cache [maxmemory=2mb]", "redis-cache [maxmemory=3mb]"]);
    // Each run was given its value: the maxmemory check read it back.
    for (run, bytes) in runs(&doc).iter().zip(["2097152", "3145728"]) {
        let steps = run["report"]["steps"].as_array().unwrap();
        let maxmemory = steps.iter().find(|s| s["id"] == "maxmemory").unwrap();
        assert!(maxmemory["output"].as_str().unwrap().contains(bytes), "{maxmemory}");
    }
    // A pattern that matches nothing is refused before any cluster is touched.
    let out = runbook(&["run", "redis-cache", "counter-service", "--match", "nothing-*", "--lab"], dir.path()).await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(output_text(&out).contains("no scenario matches the selection"));
    // A suite file with a mistake names the file and line.
    std::fs::write(&suite, "runs:\n  - scenario: redis-cache\n    matrx: {a: [b]}\n").unwrap();
    let out = runbook(&["run", "--suite", &suite_arg, "--lab"], dir.path()).await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(output_text(&out).contains("suite.yaml:3:"), "{}", output_text(&out));
}

#[tokio::test]
async fn repeats_run_side_by_side_with_parallel_and_keep_their_statistics() {
    requires!(Root);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("repeat.json");
    let json_arg = format!("json={}", json.display());
    let args = ["run", "redis-cache", "--repeat", "4", "--parallel", "2", "--lab", "--report", &json_arg];
    let out = runbook(&args, dir.path()).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("4 runs: 4 passed, 0 did not"), "{text}");
    let doc = report(&json);
    let namespaces: std::collections::BTreeSet<&str> =
        runs(&doc).iter().map(|r| r["namespace"].as_str().unwrap()).collect();
    assert_eq!(namespaces.len(), 4, "a namespace per repetition: {namespaces:?}");
    let rates = doc["statistics"]["pass_rates"].as_array().unwrap();
    assert!(rates.iter().all(|r| r["passed"] == 4 && r["ran"] == 4), "{rates:?}");
}

#[tokio::test]
async fn verify_over_several_scenarios_reads_where_they_are_and_makes_no_namespace() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    crate::common::deploy_redis_cache_fixture(&t, "good", true).await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let json = t.dir.path().join("verify.json");
    let json_arg = format!("json={}", json.display());
    let args = [
        "verify",
        "redis-cache",
        "counter-service",
        "--parallel",
        "2",
        "--kubeconfig",
        &kubeconfig,
        "--report",
        &json_arg,
    ];
    let out = runbook(&args, t.dir.path()).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "counter-service is not deployed: {text}");
    let doc = report(&json);
    let verdicts: Vec<(&str, &str, &str)> = runs(&doc)
        .iter()
        .map(|r| {
            let verdict = r["report"]["summary"]["verdict"].as_str().unwrap();
            (r["label"].as_str().unwrap(), r["namespace"].as_str().unwrap(), verdict)
        })
        .collect();
    assert_eq!(verdicts, [("redis-cache", "default", "passed"), ("counter-service", "counter", "failed")]);
    let namespaces = t.kubectl(&["get", "namespaces", "-o", "name"]).await;
    assert!(!namespaces.contains("redis-cache-") && !namespaces.contains("counter-service-"), "{namespaces}");
}

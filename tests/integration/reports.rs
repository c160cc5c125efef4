//! Snapshot tests of the reports a grader and an auditor read, with times,
//! ports, pod names and durations redacted.

use crate::common::TestLab;
use crate::common::requires;
use crate::common::runbook;

fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"redis-deployment-[a-z0-9]{10}-[a-z0-9]{5}", "[pod]"),
        (r"https://127\.0\.0\.1:\d+/", "[server]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[time]"),
        (r"\((\d+(\.\d+)?(ns|µs|ms|s))\)", "([duration])"),
        (r#""duration": \d+"#, r#""duration": "[ms]""#),
        (r#""(started_ms|at_ms|start_ms)": \d+"#, r#""$1": "[epoch ms]""#),
        (r#""value": [\d.]+"#, r#""value": "[value]""#),
        (r"Measured (.*): \d+ ms", "Measured $1: [n] ms"),
        (r"\* Node: .*", "* Node: [node]"),
        (r#""(os_image|kernel)": "[^"]*""#, r#""$1": "[redacted]""#),
        (r"in \d+(\.\d+)?(ms|s)", "in [duration]"),
        (r"(?m)\d+/redis-server.*$", "[pid]/redis-server"),
        // netstat's note when a socket's owner is not the pod's user: there
        // is one while another check's port-forward or exec is in the pod
        // (checks run side by side), so it comes and goes.
        (
            r"\(Not all processes could be identified, non-owned process info(\n|\\n) will not be shown, you would have to be root to see it all\.\)(\n|\\n)?",
            "",
        ),
        (r"run_id: `[a-z0-9]{8}`", "run_id: `[run_id]`"),
        (r#""run_id",(\s*)"[a-z0-9]{8}""#, r#""run_id",$1"[run_id]""#),
        (r#""run_id": "[a-z0-9]{8}""#, r#""run_id": "[run_id]""#),
        (r#"time="[\d.]+""#, r#"time="[s]""#),
    ]
}

#[tokio::test]
async fn verify_reports_of_a_broken_deployment() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    crate::common::deploy_redis_cache_fixture(&t, "maxmemory-4mb", true).await;
    let dir = t.dir.path();
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let args = [
        "verify",
        "redis-cache",
        "--kubeconfig",
        &kubeconfig,
        "--report",
        &format!("json={}", dir.join("r.json").display()),
        "--report",
        &format!("junit={}", dir.join("r.xml").display()),
        "--report",
        &format!("audit={}", dir.join("r.md").display()),
    ];
    let out = runbook(&args, dir).await;
    assert_eq!(out.status.code(), Some(1));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    insta::with_settings!({filters => filters(), prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("verify_broken_audit", read("r.md"));
        insta::assert_snapshot!("verify_broken_json", read("r.json"));
        insta::assert_snapshot!("verify_broken_junit", read("r.xml"));
    });
}

//! `runbook verify redis-cache` against the seed-000 kubectl command sequence
//! for the same checks, on the same lab with the same deployment. Both are
//! measured as a user runs them, whole processes included.
//! `cargo bench --bench verify`; `cargo test` smoke-runs it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The seed's checks as its audit ran them: one kubectl process per check.
const KUBECTL_SEQUENCE: &str = r#"
set -e
kubectl describe configmaps my-redis-config >/dev/null
kubectl get deployment redis-deployment >/dev/null
kubectl get deployment redis-deployment -o jsonpath='{.spec.template.spec.containers[0].image}' >/dev/null
POD=$(kubectl get pods -l app=redis -o jsonpath='{.items[0].metadata.name}')
kubectl exec "$POD" -- redis-cli CONFIG GET maxmemory >/dev/null
kubectl exec "$POD" -- ls /redis-master >/dev/null
kubectl exec "$POD" -- netstat -ntupl | grep 6379 >/dev/null
kubectl exec "$POD" -- redis-cli ping >/dev/null
kubectl exec "$POD" -- touch /redis-master-data/testfile
kubectl describe pod "$POD" | grep -A3 Requests >/dev/null
kubectl describe pod "$POD" | grep QoS >/dev/null
"#;

fn time(mut cmd: Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().expect("runs");
    let took = started.elapsed();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    took
}

fn main() {
    let runbook = runbook::lab_host::runbook_binary().expect("runbook binary built");
    // Side by side on one machine in one run: a lab on loopback, then the
    // same lab a 50 ms network hop away (every request and stream message).
    for latency in ["0ms", "50ms"] {
        measure(&runbook, latency);
    }
}

/// A scenario of one Redis check: verifying it, whole process included,
/// bounds what one check costs.
const ONE_CHECK: &str = r#"
name: one-redis-check
title: One Redis check
objective: What one Redis check costs.
steps:
  - id: ping
    title: PING
    kind: check
    redis: {pod: {selector: app=redis}, command: [PING], expect: {equals: PONG}}
"#;

fn one_redis_check(runbook: &Path, kubeconfig: &Path, dir: &Path) {
    let file = dir.join("one-check.yaml");
    std::fs::write(&file, ONE_CHECK).unwrap();
    let report = dir.join("one-check.json");
    let (mut processes, mut checks) = (Vec::new(), Vec::new());
    for _ in 0..common::iterations(20) {
        let mut verify = Command::new(runbook);
        verify.args(["verify", "--quiet", "--kubeconfig"]).arg(kubeconfig).arg("-f").arg(&file);
        verify.arg("--report").arg(format!("json={}", report.display()));
        processes.push(time(verify));
        // The step's own duration, as the report gives it (whole ms).
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        checks.push(Duration::from_millis(json["steps"][0]["duration"].as_u64().expect("a duration")));
    }
    common::report("one Redis check: the step (new connection)", checks, Duration::from_millis(5));
    common::report("one Redis check: the whole verify process", processes, Duration::from_secs(1));
}

/// Stops the detached lab at `state` when dropped.
struct LabDown<'a> {
    runbook: &'a Path,
    state: &'a Path,
}

impl Drop for LabDown<'_> {
    fn drop(&mut self) {
        let down = Command::new(self.runbook).args(["lab", "down", "--state-dir"]).arg(self.state).output();
        if !down.is_ok_and(|d| d.status.success()) {
            eprintln!("could not stop the lab at {}", self.state.display());
        }
    }
}

fn measure(runbook: &Path, latency: &str) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab");
    let ok = Command::new(runbook)
        .args(["lab", "up", "--detach", "--latency", latency, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // Down again even when a measurement below panics.
    let _down = LabDown { runbook, state: &state };
    let kubeconfig = state.join("kubeconfig");
    let kubectl = |args: &[&str]| {
        let mut c = Command::new("kubectl");
        c.args(args).env("KUBECONFIG", &kubeconfig).env("KUBECACHEDIR", dir.path().join("cache"));
        c
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/redis-cache/good.yaml");
    time(kubectl(&["apply", "-f", &fixture.display().to_string()]));
    time(kubectl(&["rollout", "status", "deployment/redis-deployment", "--timeout=60s"]));
    // Warm kubectl's discovery cache so it is measured at its best.
    time(kubectl(&["get", "pods"]));

    let n = common::iterations(10);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..n {
        let mut verify = Command::new(runbook);
        verify.args(["verify", "redis-cache", "--quiet", "--kubeconfig"]).arg(&kubeconfig);
        ours.push(time(verify));
        let mut script = Command::new("bash");
        script
            .args(["-c", KUBECTL_SEQUENCE])
            .env("KUBECONFIG", &kubeconfig)
            .env("KUBECACHEDIR", dir.path().join("cache"));
        theirs.push(time(script));
    }
    let a = common::report(&format!("runbook verify redis-cache, latency {latency}"), ours, Duration::from_secs(5));
    if latency == "0ms" {
        one_redis_check(runbook, &kubeconfig, dir.path());
    }
    let b = common::report(&format!("seed kubectl sequence, latency {latency}"), theirs, Duration::from_secs(30));
    let ratio = b.as_secs_f64() / a.as_secs_f64();
    let verdict = if ratio >= 10.0 { "meets" } else { "MISSES" };
    println!("{:<44} {ratio:.1}x faster  target 10x  {verdict}", format!("runbook vs kubectl at {latency}"));
}

//! `command` steps: programs on this machine (redis-benchmark, kubectl, a
//! script) pointed at the run's cluster, checked as exec output is; only
//! the read-only ones run under verify.

use crate::common::{TestLab, output_text, report, requires, runbook, step};
use crate::engine::fixture;

fn scenario_ids(doc: &serde_json::Value) -> Vec<String> {
    doc["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// Processes on this machine whose command line contains `needle`, each as
/// "PID command line".
fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let line = String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).ok()?).replace('\0', " ");
            line.contains(needle).then(|| format!("{pid} {line}"))
        })
        .collect()
}

#[tokio::test]
async fn redis_benchmark_runs_against_the_runs_redis_and_verify_runs_only_read_only_commands() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let file = fixture("scenarios/host-command.yaml").display().to_string();
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let json = t.dir.path().join("run.json");
    let json_arg = format!("json={}", json.display());
    let out =
        runbook(&["run", "-f", &file, "--kubeconfig", &kubeconfig, "--keep", "--report", &json_arg], t.dir.path())
            .await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let doc = report(&json);
    let benchmark = step(&doc, "benchmark");
    assert!(benchmark["output"].as_str().unwrap().contains("GET: "), "{benchmark}");
    assert!(benchmark["command"].as_str().unwrap().starts_with("kubectl port-forward deployment/bench-redis"));
    assert_eq!(step(&doc, "replicas-ready")["output"], "1");
    // The context's namespace is the run's, as RUNBOOK_NAMESPACE says.
    assert_eq!(step(&doc, "namespace-given")["output"], "default\n");
    assert!(processes_with("bench-redis 16399").is_empty(), "the script's port-forward outlived it");

    let json = t.dir.path().join("verify.json");
    let json_arg = format!("json={}", json.display());
    let out = runbook(&["verify", "-f", &file, "--kubeconfig", &kubeconfig, "--report", &json_arg], t.dir.path()).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(scenario_ids(&report(&json)), ["rollout", "replicas-ready", "namespace-given"], "{text}");

    // Scaled to zero, the JSON path check fails where it looked.
    t.kubectl(&["scale", "deployment/bench-redis", "--replicas=0"]).await;
    crate::common::kubectl_until(&t, &["get", "deployment/bench-redis", "-o", "json"], 30, |o| {
        !o.contains("readyReplicas")
    })
    .await;
    let out = runbook(&["verify", "-f", &file, "--kubeconfig", &kubeconfig, "--report", &json_arg], t.dir.path()).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let ready = step(&report(&json), "replicas-ready").clone();
    assert_eq!(ready["actual"], "<missing>", "{ready}");
    assert_eq!(
        ready["looked_at"],
        "`kubectl get deployment bench-redis -o json` on this machine, status.readyReplicas of its JSON output"
    );
}

#[tokio::test]
async fn a_failing_or_hanging_command_says_why_and_leaves_no_process_behind() {
    requires!(Root);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("commands.yaml");
    std::fs::write(
        &file,
        r#"name: commands
title: Commands that fail
objective: Each says why.
steps:
  - id: exit-3
    title: exits 3
    command: {readOnly: true, argv: [sh, -c, "echo out; echo oops >&2; exit 3"]}
  - id: hangs
    title: outlives its timeout
    command: {readOnly: true, timeout: 1s, script: "sleep 987 &\nsleep 986"}
  - id: json-field
    title: a JSON field
    command: {readOnly: true, argv: [echo, '{"a": {"b": [1, 2]}}'], path: "a.b[1]", expect: {equals: 3}}
  - id: not-json
    title: not JSON
    command: {readOnly: true, argv: [echo, hi], path: a}
  - id: leaves-a-daemon
    title: starts a process in a session of its own
    command: {readOnly: true, script: "setsid sleep 985 >&2 &\necho started", expect: {line: started}}
  - id: in-its-directory
    title: starts in the scenario's directory
    command: {readOnly: true, argv: [cat, marker], expect: {line: here}}
"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("marker"), "here\n").unwrap();
    let json = dir.path().join("report.json");
    let json_arg = format!("json={}", json.display());
    let started = std::time::Instant::now();
    let out = runbook(&["run", "-f", &file.display().to_string(), "--lab", "--report", &json_arg], dir.path()).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let doc = report(&json);
    assert_eq!(step(&doc, "exit-3")["actual"], "exit code 3: oops");
    assert_eq!(step(&doc, "exit-3")["output"], "out\noops\n");
    assert_eq!(step(&doc, "hangs")["actual"], "still running: killed");
    assert!(started.elapsed().as_secs() < 20, "the 1 s timeout held: {:?}", started.elapsed());
    assert_eq!(step(&doc, "json-field")["expected"], "3");
    assert_eq!(step(&doc, "json-field")["actual"], "2");
    assert!(step(&doc, "not-json")["actual"].as_str().unwrap().starts_with("not JSON"), "{}", step(&doc, "not-json"));
    assert_eq!(step(&doc, "in-its-directory")["status"], "passed", "{}", step(&doc, "in-its-directory"));
    // A daemon left the command's process group: runbook does not wait for
    // it, and this test ends it (it started it).
    let daemon = step(&doc, "leaves-a-daemon");
    assert_eq!(daemon["status"], "passed", "{daemon}");
    assert!(daemon["duration"].as_u64().unwrap() < 5000, "{daemon}");
    for pid in processes_with("sleep 985").iter().filter_map(|line| line.split(' ').next()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid.parse().unwrap()), nix::sys::signal::SIGKILL);
    }
    for sleeper in ["sleep 987", "sleep 986"] {
        assert!(processes_with(sleeper).is_empty(), "{sleeper} outlived the step");
    }
}

#[tokio::test]
async fn a_command_is_a_check_only_when_read_only() {
    let cases = [
        ("{argv: [helm, list]}\n    kind: check", "a command is a check only with `readOnly: true`"),
        ("{argv: ['true'], script: 'true'}", "command needs exactly one of argv"),
        ("{argv: []}", "command needs exactly one of argv"),
        ("{argv: ['true'], timeout: a while}", "command.timeout \"a while\" is not a duration"),
    ];
    for (command, says) in cases {
        let text =
            format!("name: s\ntitle: t\nobjective: o\nsteps:\n  - id: c\n    title: c\n    command: {command}\n");
        let (code, said) = crate::common::validate_text(&text).await;
        assert_eq!(code, Some(3), "{command}: {said}");
        assert!(said.contains(says), "{command}: {said}");
    }
}

//! When a step does not pass: the author's `onFailure` collectors, and
//! `--pause-on-failure`, which waits with the cluster as the failure left it.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::common::{output_text, report, requires, runbook, step, validate_text};
use crate::engine::fixture;

fn scenario() -> String {
    fixture("scenarios/on-failure.yaml").display().to_string()
}

#[tokio::test]
async fn a_failed_check_carries_the_logs_object_and_events_its_author_asked_for() {
    requires!(Root);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let json_arg = format!("json={}", json.display());
    let out = runbook(&["run", "-f", &scenario(), "--lab", "--report", &json_arg], dir.path()).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let doc = report(&json);
    let failed = step(&doc, "two-replicas");
    let diagnostics = failed["diagnostics"].as_str().unwrap_or_default();
    let lines: Vec<&str> = diagnostics.lines().collect();
    let logs = lines.iter().position(|l| l.starts_with("logs of pod default/talker-")).expect(diagnostics);
    assert!(lines[logs].ends_with(", container main (last 10 lines):"), "{diagnostics}");
    assert_eq!(lines[logs + 1..logs + 3], ["  hello from talker", "  second line"], "{diagnostics}");
    let object = lines.iter().position(|l| *l == "configmap/collected-config:").expect(diagnostics);
    assert!(lines[object..].contains(&"    mode: talkative"), "{diagnostics}");
    assert!(!diagnostics.contains("managedFields"), "{diagnostics}");
    // The scenario's own collector: the namespace's last five events.
    let events = lines.iter().position(|l| *l == "events of namespace default (last 5):").expect(diagnostics);
    assert_eq!(lines[events + 1..].len(), 5, "{diagnostics}");
    assert!(lines[events + 1..].iter().any(|l| l.contains("Started pod/talker-")), "{diagnostics}");
    // A step that passed collects nothing.
    assert!(step(&doc, "after")["diagnostics"].is_null());
}

#[tokio::test]
async fn pause_on_failure_waits_with_the_cluster_as_it_is_then_cleans_up_on_enter() {
    requires!(Root, Kubectl);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let json_arg = format!("json={}", json.display());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "-f", &scenario(), "--lab", "--pause-on-failure", "--report", &json_arg])
        .env("HOME", dir.path())
        .env_remove("KUBECONFIG")
        .env("TMPDIR", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = Vec::new();
    let kubeconfig = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), stderr.next_line())
            .await
            .unwrap_or_else(|_| panic!("no pause within 60 s: {said:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("runbook ended without pausing: {said:?}"));
        said.push(line.clone());
        if let Some(rest) = line.trim().strip_prefix("export KUBECONFIG=") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(said.iter().any(|l| l.starts_with("paused: step \"two-replicas\" did not pass")), "{said:?}");
    // The cluster is as the failure left it, reachable with what was printed,
    // in the run's namespace without saying it.
    let get = tokio::process::Command::new(crate::common::kubectl())
        .args(["get", "deployment/talker", "-o", "jsonpath={.spec.replicas}"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .unwrap();
    assert_eq!(output_text(&get), "1", "{said:?}");
    child.stdin.take().unwrap().write_all(b"\n").await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(1));
    let doc = report(&json);
    let after = step(&doc, "after");
    assert_eq!(after["status"], "skipped", "{after}");
    assert_eq!(after["message"], "the run stopped at the first failure (--pause-on-failure)");
    assert_eq!(doc["cleanup"][0]["status"], "passed", "{}", doc["cleanup"]);
    assert!(!std::path::Path::new(&kubeconfig).exists(), "the pause's kubeconfig is removed");
}

#[tokio::test]
async fn a_collector_is_exactly_one_thing_and_names_what_it_reads() {
    let cases = [
        ("    onFailure: [{events: {}, get: {kind: Pod, name: p}}]\n", "exactly one of logs, events, get; found 2"),
        ("    onFailure: [{}]\n", "exactly one of logs, events, get; found 0"),
        ("    onFailure: [{logs: {pod: {}}}]\n", "onFailure logs.pod needs exactly one of name, selector"),
        ("    onFailure: [{get: {kind: Pod}}]\n", "onFailure get needs exactly one of name, selector"),
    ];
    let check = "{object: {kind: Pod, name: p}, path: status.phase, expect: {equals: Running}}";
    for (collectors, says) in cases {
        let text = format!(
            "name: s\ntitle: t\nobjective: o\nsteps:\n  - id: a\n    title: a\n    assert: {check}\n{collectors}"
        );
        let (code, said) = validate_text(&text).await;
        assert_eq!(code, Some(3), "{collectors}: {said}");
        assert!(said.contains(says), "{collectors}: {said}");
        assert!(said.contains("s.yaml:8:"), "at the collector's line: {said}");
    }
    // At the top level too.
    let text = format!(
        "name: s\ntitle: t\nobjective: o\nonFailure: [{{}}]\nsteps:\n  - id: a\n    title: a\n    assert: {check}\n"
    );
    let (code, said) = validate_text(&text).await;
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("s.yaml:4:"), "{said}");
}

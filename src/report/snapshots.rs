//! Every reporter fed one made-up run (no cluster, no engine) and its output
//! compared with a reviewed snapshot (insta): a passed check, a failed one with
//! expected vs actual and diagnostics, an infrastructure error, a drill skipped
//! with its reason, a drill with measurements, and a cleanup step.

use std::time::Duration;

use super::audit::AuditReport;
use super::event::*;
use super::html::HtmlReport;
use super::json::JsonReport;
use super::junit::JunitReport;
use super::progress::Progress;
use super::sink::{Sink, text_of};
use super::{Reporter, Reporters};
use crate::scenario::StepKind;

fn info(index: usize, id: &str, kind: StepKind, command: &str, points: Option<u32>) -> StepInfo {
    StepInfo {
        index,
        total: 5,
        id: id.into(),
        title: format!("the {id} step"),
        kind,
        command: command.into(),
        explanation: format!("Why {id} matters."),
        points,
        hint: (id == "memory").then(|| "set maxmemory 2mb in redis.conf".into()),
        requirement: None,
    }
}

fn result(status: Status, millis: u64) -> StepResult {
    StepResult { duration: Duration::from_millis(millis), ..StepResult::new(status) }
}

/// The events of one made-up `run`.
fn made_up_run() -> Vec<Event> {
    let run = RunInfo {
        scenario: "redis-cache".into(),
        title: "Redis as a cache".into(),
        objective: "Deploy Redis with 2mb of memory and prove it.".into(),
        source: Some("seed 000".into()),
        mode: Mode::Run,
        namespace: "default".into(),
        run_id: "b4c6d8f2".into(),
        context: "runbook-lab".into(),
        server: "https://127.0.0.1:6443".into(),
        started_at: "2026-12-01T03:00:00Z".into(),
        environment: Environment {
            kubernetes_version: "v1.34.4".into(),
            nodes: vec![NodeInfo {
                name: "lab".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                kernel: "6.1.0".into(),
                container_runtime: "runbook-lab://0.1.0".into(),
            }],
        },
        parameters: vec![("maxmemory".into(), "2mb".into()), ("password".into(), super::REDACTED.into())],
        resources: vec!["ConfigMap redis-config".into(), "Deployment redis".into()],
        tool: "runbook 0.1.0".into(),
    };
    let apply = info(1, "deploy", StepKind::Setup, "kubectl apply --server-side -f manifests/redis.yaml", None);
    let mut applied = result(Status::Passed, 120);
    applied.output = "configmap/redis-config serverside-applied\ndeployment.apps/redis serverside-applied".into();
    let ping = info(2, "ping", StepKind::Check, "kubectl exec deploy/redis -- redis-cli PING", Some(2));
    let mut pong = result(Status::Passed, 40);
    pong.output = "PONG".into();
    pong.expected = Some("PONG".into());
    pong.actual = Some("PONG".into());
    let memory =
        info(3, "memory", StepKind::Check, "kubectl exec deploy/redis -- redis-cli CONFIG GET maxmemory", Some(3));
    let mut wrong = result(Status::Failed, 35);
    wrong.output = "1) \"maxmemory\"\n2) \"0\"".into();
    wrong.expected = Some("2097152 (2mb)".into());
    wrong.actual = Some("0".into());
    wrong.looked_at = Some("pod redis-7d9f-x2kq, CONFIG GET maxmemory".into());
    wrong.diagnostics =
        Some("pod redis-7d9f-x2kq: Running, ready\n--- logs (last 2 lines)\n# Server initialized".into());
    let qos = info(
        4,
        "qos",
        StepKind::Check,
        "kubectl get pod -l app=redis -o jsonpath='{.items[0].status.qosClass}'",
        Some(1),
    );
    let mut broke = result(Status::Error, 5000);
    broke.error_kind = Some(ErrorKind::Infrastructure);
    broke.message = Some("the API server did not answer: connection refused".into());
    let drill = info(5, "failover", StepKind::Disruptive, "kubectl delete pod <master>", Some(4));
    let mut drilled = result(Status::Passed, 7400);
    drilled.started_ms = Some(1_764_558_000_000);
    drilled.timeline = vec![
        Mark { at_ms: 1_764_558_000_100, what: "master pod redis-0 deleted".into() },
        Mark { at_ms: 1_764_558_007_100, what: "Sentinels name the new master <10.244.0.3>".into() },
    ];
    drilled.traffic =
        Traffic::count("writes", &(0..70).map(|i| (1_764_558_000_100 + i * 100, i >= 45)).collect::<Vec<_>>(), 500);
    drilled.output = "deleted pod redis-0 </pre><script>alert(1)</script>".into();
    drilled.measurements = vec![
        Measurement { name: "recovery".into(), value: 7412.0, unit: "ms".into() },
        Measurement { name: "lost keys".into(), value: 0.0, unit: "keys".into() },
    ];
    let cleanup = StepInfo {
        total: 1,
        ..info(1, "remove", StepKind::Setup, "kubectl delete deployment redis --ignore-not-found --wait", None)
    };
    let summary = Summary {
        verdict: Verdict::Error,
        passed: 3,
        failed: 1,
        errors: 1,
        skipped: 0,
        score: (6, 10),
        duration: Duration::from_millis(12_600),
        exit_code: Verdict::Error.exit_code(),
        leftovers: vec!["persistentvolumeclaim/redis-data (default)".into()],
        to_fix: vec![Fix {
            id: "memory".into(),
            title: "the memory step".into(),
            points: 3,
            advice: "set maxmemory 2mb in redis.conf".into(),
            requirement: None,
        }],
    };
    vec![
        Event::RunStarted(run),
        Event::StepStarted(apply.clone()),
        Event::StepFinished(apply, applied),
        Event::StepStarted(ping.clone()),
        Event::StepFinished(ping, pong),
        Event::StepStarted(memory.clone()),
        Event::StepFinished(memory, wrong),
        Event::StepStarted(qos.clone()),
        Event::StepProgress { id: "qos".into(), message: "retrying the API (2 of 5)".into() },
        Event::StepFinished(qos, broke),
        Event::StepStarted(drill.clone()),
        Event::StepFinished(drill, drilled),
        Event::CleanupStarted,
        Event::StepStarted(cleanup.clone()),
        Event::StepFinished(cleanup, result(Status::Passed, 300)),
        Event::RunFinished(summary),
    ]
}

/// What a reporter writes for the made-up run.
fn output_of(make: impl FnOnce(Sink) -> Box<dyn Reporter>) -> String {
    let (sink, buffer) = Sink::memory();
    let mut reporters = Reporters::default();
    reporters.push(make(sink));
    for event in made_up_run() {
        reporters.emit(&event);
    }
    reporters.finish().unwrap();
    text_of(&buffer)
}

#[test]
fn progress_lines() {
    insta::assert_snapshot!(output_of(|sink| Box::new(Progress::new(false, sink))));
}

#[test]
fn progress_quiet_prints_only_the_verdict() {
    insta::assert_snapshot!(output_of(|sink| Box::new(Progress::new(true, sink))));
}

#[test]
fn json_report() {
    insta::assert_snapshot!(output_of(|sink| Box::new(JsonReport::new(sink))));
}

#[test]
fn junit_report() {
    insta::assert_snapshot!(output_of(|sink| Box::new(JunitReport::new(sink))));
}

#[test]
fn audit_report() {
    insta::assert_snapshot!(output_of(|sink| Box::new(AuditReport::new(sink))));
}

#[test]
fn html_report_escapes_what_it_shows_and_draws_the_drill() {
    let page = output_of(|sink| Box::new(HtmlReport::new(sink)));
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script>"), "output is text, never markup");
    assert!(page.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("new master &lt;10.244.0.3&gt;"));
    let drill = page.split("<figure class=\"drill\" data-step=\"failover\">").nth(1).expect("the drill's chart");
    let drill = drill.split("</figure>").next().unwrap();
    assert_eq!(drill.matches("<g class=\"mark\">").count(), 2);
    // 70 writes from 0.1 s, one per 100 ms, in 500 ms intervals: 14 of them,
    // failing until the 46th write.
    assert_eq!(drill.matches("<rect class=\"failed\"").count(), 9);
    assert_eq!(drill.matches("<rect class=\"ok\"").count(), 5);
    assert!(drill.contains("failed (45)"), "{drill}");
    assert!(page.contains("class=\"verdict verdict-error\" id=\"verdict\""));
    assert!(page.contains("id=\"step-memory\" data-status=\"failed\""));
}

#[test]
fn traffic_counts_outcomes_per_interval() {
    let t = Traffic::count("requests", &[(1000, true), (1499, false), (1500, true), (2600, false)], 500).unwrap();
    assert_eq!((t.start_ms, t.succeeded.clone(), t.failed.clone()), (1000, vec![1, 1, 0, 0], vec![1, 0, 0, 1]));
    assert!(Traffic::count("requests", &[], 500).is_none());
}

#[test]
fn verdicts_and_their_exit_codes() {
    let step = |status, kind| StepResult { error_kind: kind, ..StepResult::new(status) };
    let passed = step(Status::Passed, None);
    let failed = step(Status::Failed, None);
    let broke = step(Status::Error, Some(ErrorKind::Infrastructure));
    let invalid = step(Status::Error, Some(ErrorKind::Invalid));
    let cases = [
        (false, vec![&passed], Verdict::Passed, 0),
        (false, vec![&passed, &failed], Verdict::Failed, 1),
        (false, vec![&failed, &broke], Verdict::Error, 2),
        (false, vec![&broke, &invalid], Verdict::Invalid, 3),
        (true, vec![&invalid], Verdict::Interrupted, 130),
    ];
    for (interrupted, results, verdict, code) in cases {
        assert_eq!(Verdict::of(interrupted, results.into_iter()), verdict);
        assert_eq!(verdict.exit_code(), code);
    }
    assert_eq!(serde_json::to_value(Verdict::Invalid).unwrap(), "error", "reports say error for both");
}

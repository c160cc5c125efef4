//! `runbook run`/`verify` over several scenarios: one cluster connection,
//! each run with a run id (and, in parallel, a namespace) of its own, at
//! most `--parallel` at a time; one summary at the end and one combined
//! JUnit and JSON report (one test suite per run).

use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::common::{ReportArgs, ReportSpec};
use super::out::outln;
use super::run_setup::{
    Checked, RunFlags, connect, create_namespace, ephemeral_name, most_serious, namespace_overrides, new_run_id,
};
use super::suite::{Plan, Planned};
use crate::engine::{self, RunOptions, Target};
use crate::k8s::client::{self, ClusterChoice, Connection};
use crate::report::event::{Mode, Summary};
use crate::report::junit::{JunitReport, SharedJunit};
use crate::report::{Reporter, Reporters, Sink, audit::AuditReport, html::HtmlReport, json::JsonReport, sink::text_of};

/// What one run of the suite left.
struct Finished {
    label: String,
    namespace: String,
    summary: Option<Summary>,
    code: u8,
    json: Option<serde_json::Value>,
    junit: quick_junit::TestSuite,
}

/// Runs every planned run and reports them together.
pub async fn run(
    plan: Plan,
    choice: ClusterChoice,
    report: &ReportArgs,
    mode: Mode,
    flags: RunFlags,
) -> anyhow::Result<u8> {
    let interrupt = crate::interrupt::watch()?;
    let Some(conn) = connect(&choice, mode, Checked::Now, &interrupt, report.quiet).await? else {
        return Ok(crate::exit::INTERRUPTED);
    };
    let total = plan.runs.len();
    // Side by side, runs must not share a namespace: each gets its own.
    // Verify reads what is there, where it is: it never makes one.
    let own_namespace =
        mode == Mode::Run && (flags.ephemeral_namespace || (flags.parallel > 1 && choice.namespace.is_none()));
    if !report.quiet {
        let how = if flags.parallel > 1 { format!(", {} at a time", flags.parallel) } else { String::new() };
        outln!("Suite {}: {total} run(s){how}", plan.name)?;
    }
    let runs = plan.runs.iter().enumerate().map(|(i, planned)| {
        let (conn, choice, interrupt) = (&conn, &choice, &interrupt);
        async move {
            if interrupt.is_cancelled() {
                return None;
            }
            let one = One { planned, n: i + 1, total, conn, choice, own_namespace, report, mode, flags };
            Some(one.run(interrupt.clone()).await)
        }
    });
    let finished: Vec<anyhow::Result<Finished>> = futures::stream::iter(runs)
        .buffered(flags.parallel.max(1) as usize)
        .filter_map(|f| async { f })
        .collect()
        .await;
    if let Some(lab) = conn.lab {
        lab.shutdown().await;
    }
    let finished: Vec<Finished> = finished.into_iter().collect::<anyhow::Result<_>>()?;
    summarize(&plan.name, &finished, report, flags.repeat > 1)?;
    let mut codes: Vec<u8> = finished.iter().map(|f| f.code).collect();
    if interrupt.is_cancelled() {
        codes.push(crate::exit::INTERRUPTED);
    }
    Ok(most_serious(&codes))
}

/// One run of a suite.
struct One<'a> {
    planned: &'a Planned,
    n: usize,
    total: usize,
    conn: &'a Connection,
    choice: &'a ClusterChoice,
    own_namespace: bool,
    report: &'a ReportArgs,
    mode: Mode,
    flags: RunFlags,
}

impl One<'_> {
    async fn run(self, interrupt: tokio_util::sync::CancellationToken) -> anyhow::Result<Finished> {
        let scenario = &self.planned.scenario;
        let run_id = new_run_id();
        let mut choice = self.choice.clone();
        if self.own_namespace {
            choice.namespace = Some(ephemeral_name(&scenario.file.name, &run_id));
        }
        let overrides = namespace_overrides(scenario, &mut choice, &self.planned.set).map_err(crate::exit::invalid)?;
        let namespace = choice.namespace.clone().unwrap_or_else(|| self.conn.namespace.clone());
        if self.own_namespace {
            create_namespace(&self.conn.client, &namespace, &run_id).await?;
        }
        let sequential = self.flags.parallel <= 1;
        if sequential && !self.report.quiet {
            outln!("\n── {} ({} of {}) ──", self.planned.label, self.n, self.total)?;
        }
        let junit = Arc::new(Mutex::new(JunitReport::new(Sink::memory().0)));
        let (json_sink, json) = Sink::memory();
        let mut reporters = Reporters::default();
        if sequential {
            reporters.push(Box::new(crate::report::progress::Progress::new(self.report.quiet, Sink::Stdout)));
        }
        reporters.push(Box::new(SharedJunit(junit.clone())));
        reporters.push(Box::new(JsonReport::new(json_sink)));
        for spec in &self.report.reports {
            let r: Box<dyn Reporter> = match spec {
                ReportSpec::Json(_) | ReportSpec::Junit(_) => continue,
                ReportSpec::Audit(p) => Box::new(AuditReport::new(Sink::File(super::common::numbered(p, self.n)))),
                ReportSpec::Html(p) => Box::new(HtmlReport::new(Sink::File(super::common::numbered(p, self.n)))),
            };
            reporters.push(r);
        }
        let options = RunOptions {
            mode: self.mode,
            overrides,
            keep: self.flags.keep,
            allow_disruption: self.flags.allow_disruption || self.conn.is_lab,
            interrupt,
            run_id,
            cleanup_timeout: self.flags.cleanup_timeout,
            pause_on_failure: false,
        };
        let target = Target {
            client: self.conn.client.clone(),
            namespace: namespace.clone(),
            context: self.conn.context.clone(),
            server: self.conn.server.clone(),
            kubeconfig: Some(client::pointed_at(self.conn.kubeconfig.clone(), &self.conn.context, &namespace)),
            reachable: Some(self.conn.reachable.clone()),
        };
        let reporters = Arc::new(Mutex::new(reporters));
        let (summary, code) = match engine::run(scenario, target, &options, reporters.clone()).await {
            Ok(summary) => {
                let code = engine::finish(&reporters, summary.clone())?;
                (Some(summary), code)
            }
            Err(e) => {
                eprintln!("{}: {e:#}", self.planned.label);
                (None, crate::exit::process_exit_code(&e))
            }
        };
        let mut suite = junit.lock().unwrap_or_else(|e| e.into_inner()).suite();
        suite.name = self.planned.label.clone().into();
        let finished = Finished {
            label: self.planned.label.clone(),
            namespace,
            json: serde_json::from_str(&text_of(&json)).ok(),
            summary,
            code,
            junit: suite,
        };
        if !sequential && !self.report.quiet {
            outln!("{}", line_of(&finished))?;
        }
        Ok(finished)
    }
}

/// `PASSED  redis-cache  12/12 points, 9.7s  (namespace default)`.
fn line_of(f: &Finished) -> String {
    match &f.summary {
        Some(s) => format!(
            "{:<7} {}  {}/{} points, {:.1}s  (namespace {})",
            s.verdict.as_str().to_uppercase(),
            f.label,
            s.score.0,
            s.score.1,
            s.duration.as_secs_f64(),
            f.namespace
        ),
        None => format!("{:<7} {}  did not run (exit {})", "ERROR", f.label, f.code),
    }
}

/// The suite's summary on the terminal, and its combined reports.
fn summarize(name: &str, finished: &[Finished], report: &ReportArgs, repeated: bool) -> anyhow::Result<()> {
    let passed = finished.iter().filter(|f| f.code == 0).count();
    outln!("\nSuite {name}: {passed} of {} run(s) passed", finished.len())?;
    for f in finished {
        outln!("  {}", line_of(f))?;
    }
    // Repetitions of one scenario (`--repeat N --parallel M`): its statistics.
    let docs: Vec<serde_json::Value> = finished.iter().filter_map(|f| f.json.clone()).collect();
    let statistics = repeated.then(|| crate::report::stats::Statistics::of(&docs));
    if let Some(s) = &statistics {
        outln!("\n{}", s.text().trim_end())?;
    }
    for spec in &report.reports {
        match spec {
            ReportSpec::Junit(path) => {
                let mut junit = quick_junit::Report::new(name);
                junit.add_test_suites(finished.iter().map(|f| f.junit.clone()));
                Sink::File(path.clone()).write(junit.to_string()?.as_bytes())?;
            }
            ReportSpec::Json(path) => {
                let runs: Vec<serde_json::Value> = finished
                    .iter()
                    .map(|f| serde_json::json!({"label": f.label, "namespace": f.namespace, "exit_code": f.code, "report": f.json}))
                    .collect();
                let mut document = serde_json::json!({
                    "suite": name,
                    "runs": runs,
                    "summary": {"runs": finished.len(), "passed": passed, "failed": finished.len() - passed},
                });
                if let Some(s) = &statistics {
                    document["statistics"] = serde_json::to_value(s)?;
                }
                Sink::File(path.clone()).write((serde_json::to_string_pretty(&document)? + "\n").as_bytes())?;
            }
            ReportSpec::Audit(_) | ReportSpec::Html(_) => {}
        }
    }
    Ok(())
}

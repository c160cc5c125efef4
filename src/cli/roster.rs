//! `runbook verify SCENARIO --roster FILE`: grade many learners at once.
//! Each learner is a kubeconfig (and optionally a context, a namespace and
//! parameter values); at most `--parallel` are graded at a time, a line per
//! learner as each finishes, then the class summary (terminal, CSV, JSON).
//! A learner whose cluster cannot be reached is that learner's error row
//! (exit 2 in the row), never the batch's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::out::outln;
use super::run_setup::{Checked, connect, namespace_overrides, new_run_id};
use crate::engine::{self, RunOptions, Target};
use crate::exit;
use crate::k8s::client::{self, ClusterChoice};
use crate::report::event::Mode;
use crate::report::{Reporters, Sink, json::JsonReport, sink::text_of};
use crate::scenario::Scenario;

/// A roster file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    /// The learners, in order.
    learners: Vec<Learner>,
}

/// One learner of a roster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Learner {
    /// How the learner is named in the summary.
    name: String,
    /// The learner's kubeconfig, relative to the roster file.
    kubeconfig: PathBuf,
    /// Its context (default: the kubeconfig's current one).
    #[serde(default)]
    context: Option<String>,
    /// The namespace to grade (default: the context's).
    #[serde(default)]
    namespace: Option<String>,
    /// Parameter values for this learner (before `--set`).
    #[serde(default)]
    set: BTreeMap<String, String>,
}

/// A class report to write.
#[derive(Debug, Clone)]
pub enum ClassReport {
    /// One row per learner, CSV.
    Csv(PathBuf),
    /// Every row with the learner's whole report, JSON.
    Json(PathBuf),
}

/// `csv=FILE` or `json=FILE` of `--class-report`.
pub fn parse_class_report(text: &str) -> Result<ClassReport, String> {
    match text.split_once('=') {
        Some(("csv", p)) if !p.is_empty() => Ok(ClassReport::Csv(p.into())),
        Some(("json", p)) if !p.is_empty() => Ok(ClassReport::Json(p.into())),
        _ => Err(format!("expected csv=FILE or json=FILE, got {text:?}")),
    }
}

/// One learner's grade.
#[derive(Debug, Serialize)]
struct Row {
    learner: String,
    verdict: String,
    score: u32,
    possible: u32,
    exit_code: u8,
    /// The ids of the graded checks that did not pass.
    failed: Vec<String>,
    /// Why the learner could not be graded.
    error: Option<String>,
    /// The task's requirements those checks grade (a check without one is
    /// named by its id).
    unmet: Vec<String>,
    #[serde(skip)]
    report: Option<serde_json::Value>,
}

/// What grading needs besides the roster.
pub struct Grading<'a> {
    /// The scenario whose checks grade.
    pub scenario: &'a Scenario,
    /// `--set` values, for every learner.
    pub set: &'a [(String, String)],
    /// How many at once.
    pub parallel: u32,
    /// The class reports to write.
    pub reports: &'a [ClassReport],
    /// Only the summary line.
    pub quiet: bool,
}

/// Grades every learner of the roster at `path`.
pub async fn grade(path: &Path, grading: Grading<'_>) -> anyhow::Result<u8> {
    let learners = read(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let interrupt = crate::interrupt::watch()?;
    if !grading.quiet {
        outln!(
            "Grading {} learner(s) on {}, {} at a time",
            learners.len(),
            grading.scenario.file.name,
            grading.parallel
        )?;
    }
    let rows = learners.iter().map(|learner| {
        let (grading, interrupt) = (&grading, interrupt.clone());
        async move {
            if interrupt.is_cancelled() {
                return None;
            }
            let row = grade_one(learner, base, grading, interrupt).await;
            if !grading.quiet {
                let _ = outln!("{}", line_of(&row));
            }
            Some(row)
        }
    });
    let rows: Vec<Row> = futures::stream::iter(rows)
        .buffered(grading.parallel.max(1) as usize)
        .filter_map(|r| async { r })
        .collect()
        .await;
    outln!("{}", class_line(&rows))?;
    for report in grading.reports {
        write(report, &rows)?;
    }
    Ok(if interrupt.is_cancelled() {
        exit::INTERRUPTED
    } else if rows.iter().all(|r| r.exit_code == exit::SUCCESS) {
        exit::SUCCESS
    } else {
        exit::CHECK_FAILED
    })
}

fn read(path: &Path) -> anyhow::Result<Vec<Learner>> {
    let roster: RosterFile = super::common::read_yaml(path)?;
    if roster.learners.is_empty() {
        return Err(exit::invalid(format!("{}: learners is empty", path.display())));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = roster.learners.iter().find(|l| !seen.insert(l.name.as_str())) {
        return Err(exit::invalid(format!("{}: learner {:?} is listed twice", path.display(), twice.name)));
    }
    Ok(roster.learners)
}

async fn grade_one(
    learner: &Learner,
    base: &Path,
    grading: &Grading<'_>,
    interrupt: tokio_util::sync::CancellationToken,
) -> Row {
    let error = |code: u8, message: String| Row {
        learner: learner.name.clone(),
        verdict: if code == exit::INVALID_INPUT { "invalid" } else { "error" }.into(),
        score: 0,
        possible: 0,
        exit_code: code,
        failed: Vec::new(),
        error: Some(message),
        unmet: Vec::new(),
        report: None,
    };
    let mut choice = ClusterChoice {
        kubeconfig: Some(base.join(&learner.kubeconfig)),
        context: learner.context.clone(),
        namespace: learner.namespace.clone(),
        lab: false,
        lab_nodes: None,
    };
    let mut set: Vec<(String, String)> = learner.set.clone().into_iter().collect();
    set.extend(grading.set.iter().cloned());
    let overrides = match namespace_overrides(grading.scenario, &mut choice, &set) {
        Ok(o) => o,
        Err(e) => return error(exit::INVALID_INPUT, e),
    };
    let conn = match connect(&choice, Mode::Verify, Checked::Now, &interrupt, true).await {
        Ok(Some(conn)) => conn,
        Ok(None) => return error(exit::INTERRUPTED, "interrupted".into()),
        Err(e) => return error(exit::process_exit_code(&e), format!("{e:#}")),
    };
    let (sink, json) = Sink::memory();
    let mut reporters = Reporters::default();
    reporters.push(Box::new(JsonReport::new(sink)));
    let reporters = Arc::new(Mutex::new(reporters));
    let options = RunOptions {
        mode: Mode::Verify,
        overrides,
        keep: true,
        allow_disruption: false,
        interrupt,
        run_id: new_run_id(),
        cleanup_timeout: std::time::Duration::ZERO,
        pause_on_failure: false,
    };
    let target = Target {
        client: conn.client.clone(),
        namespace: conn.namespace.clone(),
        context: conn.context.clone(),
        server: conn.server.clone(),
        kubeconfig: Some(client::pointed_at(conn.kubeconfig.clone(), &conn.context, &conn.namespace)),
        reachable: Some(conn.reachable.clone()),
    };
    let summary = match engine::run(grading.scenario, target, &options, reporters.clone()).await {
        Ok(summary) => summary,
        Err(e) => return error(exit::process_exit_code(&e), format!("{e:#}")),
    };
    let code = match engine::finish(&reporters, summary.clone()) {
        Ok(code) => code,
        Err(e) => return error(exit::INFRASTRUCTURE, format!("{e:#}")),
    };
    Row {
        learner: learner.name.clone(),
        verdict: summary.verdict.as_str().into(),
        score: summary.score.0,
        possible: summary.score.1,
        exit_code: code,
        failed: summary.to_fix.iter().map(|f| f.id.clone()).collect(),
        error: None,
        unmet: summary.to_fix.iter().map(|f| f.requirement.clone().unwrap_or_else(|| f.id.clone())).collect(),
        report: serde_json::from_str(&text_of(&json)).ok(),
    }
}

/// `FAILED  bob  8/12  maxmemory, cpu-request`.
fn line_of(row: &Row) -> String {
    let verdict = row.verdict.to_uppercase();
    match &row.error {
        Some(e) => format!("{verdict:<7} {}  {e}", row.learner),
        None if row.failed.is_empty() => format!("{verdict:<7} {}  {}/{}", row.learner, row.score, row.possible),
        None => format!("{verdict:<7} {}  {}/{}  {}", row.learner, row.score, row.possible, row.failed.join(", ")),
    }
}

/// `Class: 20 learner(s): 12 passed, 7 failed, 1 could not be graded`.
fn class_line(rows: &[Row]) -> String {
    let passed = rows.iter().filter(|r| r.exit_code == exit::SUCCESS).count();
    let ungraded = rows.iter().filter(|r| r.error.is_some()).count();
    format!(
        "Class: {} learner(s): {passed} passed, {} failed, {ungraded} could not be graded",
        rows.len(),
        rows.len() - passed - ungraded
    )
}

fn write(report: &ClassReport, rows: &[Row]) -> anyhow::Result<()> {
    match report {
        ClassReport::Csv(path) => {
            let mut out = csv::Writer::from_writer(Vec::new());
            out.write_record(["learner", "verdict", "score", "possible", "exit_code", "failed", "error", "unmet"])?;
            for r in rows {
                out.write_record([
                    r.learner.as_str(),
                    r.verdict.as_str(),
                    &r.score.to_string(),
                    &r.possible.to_string(),
                    &r.exit_code.to_string(),
                    &r.failed.join(" "),
                    r.error.as_deref().unwrap_or_default(),
                    &r.unmet.join("; "),
                ])?;
            }
            Sink::File(path.clone()).write(&out.into_inner()?)
        }
        ClassReport::Json(path) => {
            let learners: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut row = serde_json::to_value(r).unwrap_or_default();
                    row["report"] = r.report.clone().unwrap_or_default();
                    row
                })
                .collect();
            let document = serde_json::json!({"class": class_line(rows), "learners": learners});
            Sink::File(path.clone()).write((serde_json::to_string_pretty(&document)? + "\n").as_bytes())
        }
    }
}

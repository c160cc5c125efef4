//! Events: the only link from the engine to the reporters. The engine emits
//! them in order; reporters consume them and never call back.

use std::time::Duration;

use serde::Serialize;

use crate::scenario::StepKind;

/// The cluster as the audit report describes it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Environment {
    /// `gitVersion` from /version.
    pub kubernetes_version: String,
    /// The nodes.
    pub nodes: Vec<NodeInfo>,
}

/// One node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// OS image (`Debian GNU/Linux 12 (bookworm)`).
    pub os_image: String,
    /// Kernel version.
    pub kernel: String,
    /// Container runtime (`containerd://1.7`).
    pub container_runtime: String,
}

/// `run` or `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deploy, check, clean up.
    Run,
    /// Checks only, read-only.
    Verify,
}

/// What a run is about.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// Scenario name.
    pub scenario: String,
    /// Scenario title.
    pub title: String,
    /// Scenario objective.
    pub objective: String,
    /// Where the scenario comes from.
    pub source: Option<String>,
    /// run or verify.
    pub mode: Mode,
    /// Namespace the steps default to.
    pub namespace: String,
    /// The run's id: the `runbook.dev/run-id` label on what it creates.
    pub run_id: String,
    /// kubeconfig context.
    pub context: String,
    /// API server URL.
    pub server: String,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// The cluster.
    pub environment: Environment,
    /// Parameter values (secrets redacted).
    pub parameters: Vec<(String, String)>,
    /// The objects the scenario's manifests declare (kind/name), for the audit.
    pub resources: Vec<String>,
    /// The tool that ran (`runbook 0.1.0`), for reports read elsewhere.
    pub tool: String,
}

/// This tool and its version, as reports name it.
pub fn tool_version() -> String {
    format!("runbook {}", env!("CARGO_PKG_VERSION"))
}

/// A step about to run.
#[derive(Debug, Clone, Serialize)]
pub struct StepInfo {
    /// 1-based position.
    pub index: usize,
    /// Steps in this run.
    pub total: usize,
    /// Step id.
    pub id: String,
    /// Step title.
    pub title: String,
    /// setup, check or disruptive.
    pub kind: StepKind,
    /// The kubectl command that does the same.
    pub command: String,
    /// Why it matters.
    pub explanation: String,
    /// Points for graders.
    pub points: Option<u32>,
    /// What to fix when it fails.
    pub hint: Option<String>,
    /// The task's requirement this check grades.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The step did what it should; its check holds.
    Passed,
    /// A check did not hold.
    Failed,
    /// The step could not run (cluster error, invalid manifest).
    Error,
    /// Not run.
    Skipped,
}

/// A value measured during a step (recovery time, lost keys…).
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`ms`, `keys`).
    pub unit: String,
}

/// A moment in a step (a drill's pod deleted, a new master named), in
/// milliseconds since the Unix epoch, so a report read later can place it.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub what: String,
}

/// Requests or writes a drill sent, counted per interval and split by outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    /// What was sent (`requests`, `writes`).
    pub label: String,
    /// Start of the first interval, in ms since the Unix epoch.
    pub start_ms: u64,
    /// Interval length in ms.
    pub interval_ms: u64,
    /// Per interval: how many succeeded.
    pub succeeded: Vec<u32>,
    /// Per interval: how many failed.
    pub failed: Vec<u32>,
}

impl Traffic {
    /// Counts outcomes `(ms since the epoch, succeeded)` in intervals of
    /// `interval_ms` from the first one; None without outcomes.
    pub fn count(label: &str, outcomes: &[(u64, bool)], interval_ms: u64) -> Option<Traffic> {
        let interval_ms = interval_ms.max(1);
        let start_ms = outcomes.iter().map(|o| o.0).min()?;
        let end_ms = outcomes.iter().map(|o| o.0).max()?;
        let slots = ((end_ms - start_ms) / interval_ms + 1) as usize;
        let (mut succeeded, mut failed) = (vec![0; slots], vec![0; slots]);
        for &(at, ok) in outcomes {
            let slot = ((at - start_ms) / interval_ms) as usize;
            if ok { succeeded[slot] += 1 } else { failed[slot] += 1 }
        }
        Some(Traffic { label: label.into(), start_ms, interval_ms, succeeded, failed })
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What kind of error a step had, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The cluster or the tool broke (exit 2).
    Infrastructure,
    /// The scenario or a manifest is wrong (exit 3).
    Invalid,
}

/// The outcome of a step.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Passed, failed, error or skipped.
    pub status: Status,
    /// For errors: infrastructure or invalid input.
    pub error_kind: Option<ErrorKind>,
    /// The real output (as kubectl would print it).
    pub output: String,
    /// What the check expected.
    pub expected: Option<String>,
    /// What it found.
    pub actual: Option<String>,
    /// Where it looked (object and field, pod and command).
    pub looked_at: Option<String>,
    /// A message (error text, skip reason, waits worked through).
    pub message: Option<String>,
    /// How long the step took.
    #[serde(serialize_with = "as_millis")]
    pub duration: Duration,
    /// Values measured.
    pub measurements: Vec<Measurement>,
    /// Events, pod status and logs collected when the step failed.
    pub diagnostics: Option<String>,
    /// When the step began, in ms since the Unix epoch (steps that ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// A drill's moments, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Mark>,
    /// A drill's requests or writes over time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl StepResult {
    /// A result with the given status and nothing else.
    pub fn new(status: Status) -> Self {
        StepResult {
            status,
            error_kind: None,
            output: String::new(),
            expected: None,
            actual: None,
            looked_at: None,
            message: None,
            duration: Duration::ZERO,
            measurements: Vec::new(),
            diagnostics: None,
            started_ms: None,
            timeline: Vec::new(),
            traffic: None,
        }
    }
}

/// How a run ended, in one word; the CLI exits with its [`Verdict::exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every step that ran passed.
    Passed,
    /// A check or drill did not hold.
    Failed,
    /// The cluster or the tool broke.
    Error,
    /// The scenario or a manifest is wrong (reported as `error`).
    Invalid,
    /// Ctrl-C or SIGTERM stopped the run (cleanup ran).
    Interrupted,
}

impl Verdict {
    /// The word reports use: passed, failed, error or interrupted.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Error | Verdict::Invalid => "error",
            Verdict::Interrupted => "interrupted",
        }
    }

    /// The process exit code for this verdict (docs/exit-codes.md).
    pub fn exit_code(self) -> u8 {
        use crate::exit;
        match self {
            Verdict::Passed => exit::SUCCESS,
            Verdict::Failed => exit::CHECK_FAILED,
            Verdict::Error => exit::INFRASTRUCTURE,
            Verdict::Invalid => exit::INVALID_INPUT,
            Verdict::Interrupted => exit::INTERRUPTED,
        }
    }

    /// The verdict of a run from its steps' results: an interruption first,
    /// then a wrong input, then a broken cluster, then a failed check.
    pub fn of<'a>(interrupted: bool, results: impl Iterator<Item = &'a StepResult>) -> Verdict {
        let (mut invalid, mut error, mut failed) = (false, false, false);
        for r in results {
            invalid |= r.error_kind == Some(ErrorKind::Invalid);
            error |= r.status == Status::Error;
            failed |= r.status == Status::Failed;
        }
        if interrupted {
            Verdict::Interrupted
        } else if invalid {
            Verdict::Invalid
        } else if error {
            Verdict::Error
        } else if failed {
            Verdict::Failed
        } else {
            Verdict::Passed
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// passed, failed, error or interrupted.
    pub verdict: Verdict,
    /// Steps that passed.
    pub passed: usize,
    /// Checks that failed.
    pub failed: usize,
    /// Steps that could not run.
    pub errors: usize,
    /// Steps not run.
    pub skipped: usize,
    /// Points earned and possible.
    pub score: (u32, u32),
    /// Wall time.
    #[serde(serialize_with = "as_millis")]
    pub duration: Duration,
    /// The process exit code.
    pub exit_code: u8,
    /// Objects the run created that are still in the cluster after cleanup.
    pub leftovers: Vec<String>,
    /// What to fix, for the learner: each check or drill that did not pass.
    pub to_fix: Vec<Fix>,
}

impl Summary {
    /// "3 passed, 1 failed, 1 error, 0 skipped", as every reporter says it.
    pub fn counts(&self) -> String {
        let errors = if self.errors == 1 { "1 error".to_string() } else { format!("{} errors", self.errors) };
        format!("{} passed, {} failed, {errors}, {} skipped", self.passed, self.failed, self.skipped)
    }
}

/// One thing to fix: a check or drill that did not pass.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    /// Step id.
    pub id: String,
    /// Step title.
    pub title: String,
    /// Points it would have earned.
    pub points: u32,
    /// What to do: the scenario's hint, else expected versus actual.
    pub advice: String,
    /// The task's requirement that is not met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
}

/// Everything the engine tells reporters.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run begins.
    RunStarted(RunInfo),
    /// A step begins.
    StepStarted(StepInfo),
    /// A long step says what it is waiting for.
    StepProgress {
        /// Step id.
        id: String,
        /// What is happening.
        message: String,
    },
    /// A step ended.
    StepFinished(StepInfo, StepResult),
    /// Cleanup begins.
    CleanupStarted,
    /// The run ended.
    RunFinished(Summary),
}

/// A consumer of events: terminal progress, JSON, JUnit, audit.
pub trait Reporter: Send {
    /// Handles one event.
    fn event(&mut self, event: &Event);
    /// Writes whatever the reporter produces; called once at the end.
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

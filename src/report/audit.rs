//! `--report audit=FILE`: Markdown in the shape of the seed audit document:
//! task, objective, environment read from the cluster, resources, then every
//! step with its kubectl command, its real output and its explanation, and the
//! verdict.

use std::fmt::Write;

use super::event::{Event, RunInfo, Status, StepInfo, StepResult, Summary};
use super::{Reporter, Sink};

/// Collects the run and writes the audit report.
pub struct AuditReport {
    sink: Sink,
    run: Option<RunInfo>,
    steps: Vec<(StepInfo, StepResult)>,
    cleanup: Vec<(StepInfo, StepResult)>,
    in_cleanup: bool,
    summary: Option<Summary>,
}

impl AuditReport {
    /// An audit report written to `sink` when the run ends.
    pub fn new(sink: Sink) -> Self {
        AuditReport { sink, run: None, steps: Vec::new(), cleanup: Vec::new(), in_cleanup: false, summary: None }
    }

    /// The Markdown as it stands.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let Some(run) = &self.run else { return md };
        let _ = writeln!(md, "# {}\n", run.title);
        let _ = writeln!(md, "## Task Objective\n\n{}\n", run.objective);
        if let Some(source) = &run.source {
            let _ = writeln!(md, "Source: {source}\n");
        }
        let _ = writeln!(md, "## Environment Details\n");
        let _ = writeln!(md, "* Kubernetes Cluster: context `{}` ({})", run.context, run.server);
        let _ = writeln!(md, "* Namespace: {}", run.namespace);
        let _ = writeln!(md, "* Kubernetes Version: {}", run.environment.kubernetes_version);
        for node in &run.environment.nodes {
            let _ = writeln!(md, "* Node: {} — Operating System: {}, kernel {}", node.name, node.os_image, node.kernel);
            let _ = writeln!(md, "* Container Runtime: {}", node.container_runtime);
        }
        let mode = format!("{:?}", run.mode).to_lowercase();
        let _ = writeln!(md, "* Tool Used: runbook {} (`runbook {mode} {}`)", env!("CARGO_PKG_VERSION"), run.scenario);
        let _ = writeln!(md, "* Started: {}\n", run.started_at);
        if !run.parameters.is_empty() {
            let _ = writeln!(md, "## Parameters\n");
            for (k, v) in &run.parameters {
                let _ = writeln!(md, "* {k}: `{v}`");
            }
            md.push('\n');
        }
        if !run.resources.is_empty() {
            let _ = writeln!(md, "## Kubernetes Resources\n");
            for r in &run.resources {
                let _ = writeln!(md, "* {r}");
            }
            md.push('\n');
        }
        md.push_str("---\n\n");
        for (info, result) in &self.steps {
            step(&mut md, info, result);
        }
        if !self.cleanup.is_empty() {
            let _ = writeln!(md, "## Cleanup\n");
            for (info, result) in &self.cleanup {
                let _ = writeln!(md, "* `{}` — {}", info.command, status_word(result.status));
            }
            md.push('\n');
        }
        if let Some(s) = &self.summary {
            let _ = writeln!(md, "## Verdict\n");
            let _ = writeln!(md, "**{}**: {}.", s.verdict.as_str().to_uppercase(), s.counts());
            if s.score.1 > 0 {
                let _ = writeln!(md, "\nScore: {}/{}", s.score.0, s.score.1);
            }
            if !s.to_fix.is_empty() {
                let _ = writeln!(md, "\nWhat to fix:\n");
                for fix in &s.to_fix {
                    let _ = writeln!(md, "- **{}** ({} pt): {}", fix.title, fix.points, fix.advice);
                }
            }
            if !s.leftovers.is_empty() {
                let _ = writeln!(md, "\nLeft behind in the cluster: {}", s.leftovers.join(", "));
            }
        }
        md
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Passed => "PASSED",
        Status::Failed => "FAILED",
        Status::Error => "ERROR",
        Status::Skipped => "SKIPPED",
    }
}

fn fence(md: &mut String, lang: &str, text: &str) {
    let ticks = if text.contains("```") { "````" } else { "```" };
    let _ = writeln!(md, "{ticks}{lang}\n{}\n{ticks}\n", text.trim_end());
}

fn step(md: &mut String, info: &StepInfo, result: &StepResult) {
    let _ = writeln!(md, "## Step {}: {}\n", info.index, info.title);
    let _ = writeln!(md, "### Command\n");
    fence(md, "bash", &info.command);
    if result.status != Status::Skipped {
        let _ = writeln!(md, "### Output\n");
        let output = if result.output.trim().is_empty() { "(no output)" } else { &result.output };
        fence(md, "text", output);
    }
    if !info.explanation.is_empty() {
        let _ = writeln!(md, "### Explanation\n\n{}\n", info.explanation);
    }
    let _ = write!(md, "### Result: {}", status_word(result.status));
    let _ = writeln!(md, " ({:.2?})\n", result.duration);
    if let (Some(e), Some(a)) = (&result.expected, &result.actual) {
        let _ = writeln!(md, "* Expected: `{e}`\n* Actual: `{a}`");
        if let Some(w) = &result.looked_at {
            let _ = writeln!(md, "* Where: {w}");
        }
        if let Some(h) = &info.hint {
            let _ = writeln!(md, "* Hint: {h}");
        }
        md.push('\n');
    }
    if let Some(m) = &result.message {
        let _ = writeln!(md, "{m}\n");
    }
    for m in &result.measurements {
        let _ = writeln!(md, "* Measured {}: {:.0} {}", m.name, m.value, m.unit);
    }
    if !result.measurements.is_empty() {
        md.push('\n');
    }
    if let Some(d) = &result.diagnostics {
        let _ = writeln!(md, "### Diagnostics\n");
        fence(md, "text", d);
    }
    md.push_str("---\n\n");
}

impl Reporter for AuditReport {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => self.run = Some(info.clone()),
            Event::CleanupStarted => self.in_cleanup = true,
            Event::StepFinished(info, result) => {
                let list = if self.in_cleanup { &mut self.cleanup } else { &mut self.steps };
                list.push((info.clone(), result.clone()));
            }
            Event::RunFinished(s) => self.summary = Some(s.clone()),
            _ => {}
        }
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.sink.write(self.markdown().as_bytes())
    }
}

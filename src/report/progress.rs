//! Progress on the terminal: a spinner with elapsed time per step on a TTY,
//! plain lines otherwise, only the verdict with `--quiet`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::event::{Event, Status};
use super::{Reporter, Sink};

/// Prints progress as the run goes (to standard output in the CLI).
pub struct Progress {
    sink: Sink,
    quiet: bool,
    spinner: Option<ProgressBar>,
    tty: bool,
    run_id: String,
}

impl Progress {
    /// A progress reporter writing to `sink`; `quiet` prints only the verdict.
    pub fn new(quiet: bool, sink: Sink) -> Self {
        Progress { tty: sink.is_terminal(), sink, quiet, spinner: None, run_id: String::new() }
    }

    fn line(&self, text: &str) {
        match &self.spinner {
            Some(s) => s.println(text),
            // Progress that cannot be written is not worth ending a run for.
            None => drop(self.sink.write(format!("{text}\n").as_bytes())),
        }
    }
}

fn mark(status: Status) -> &'static str {
    match status {
        Status::Passed => "PASS",
        Status::Failed => "FAIL",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

impl Reporter for Progress {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => {
                self.run_id = info.run_id.clone();
                if self.quiet {
                    return;
                }
                self.line(&format!(
                    "{} {} — {} (context {}, namespace {}, run {})",
                    match info.mode {
                        super::event::Mode::Run => "Running",
                        super::event::Mode::Verify => "Verifying",
                    },
                    info.scenario,
                    info.title,
                    info.context,
                    info.namespace,
                    info.run_id
                ));
            }
            Event::StepStarted(step) if !self.quiet && self.tty => {
                let spinner = ProgressBar::new_spinner();
                spinner.set_style(
                    ProgressStyle::with_template("{spinner} [{prefix}] {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                spinner.set_prefix(format!("{:>2}/{}", step.index, step.total));
                spinner.set_message(step.title.clone());
                spinner.enable_steady_tick(Duration::from_millis(100));
                self.spinner = Some(spinner);
            }
            Event::StepProgress { message, .. } if !self.quiet => {
                if let Some(s) = &self.spinner {
                    s.set_message(message.clone());
                } else if message.contains("waiting it out") {
                    self.line(&format!("       … {message}"));
                }
            }
            Event::StepFinished(step, result) if !self.quiet => {
                if let Some(s) = self.spinner.take() {
                    s.finish_and_clear();
                }
                let took = if result.status == Status::Skipped {
                    String::new()
                } else {
                    format!(" ({:.1?})", result.duration)
                };
                self.line(&format!(
                    "[{:>2}/{}] {:<5} {} — {}{took}",
                    step.index,
                    step.total,
                    mark(result.status),
                    step.id,
                    step.title
                ));
                if let (Some(e), Some(a)) = (&result.expected, &result.actual) {
                    self.line(&format!("        expected: {e}"));
                    self.line(&format!("        actual:   {a}"));
                    if let Some(w) = &result.looked_at {
                        self.line(&format!("        where:    {w}"));
                    }
                    if let Some(h) = &step.hint {
                        self.line(&format!("        hint:     {h}"));
                    }
                }
                if let Some(m) = &result.message {
                    self.line(&format!("        {m}"));
                }
                if let Some(d) = &result.diagnostics {
                    for l in d.lines() {
                        self.line(&format!("        | {l}"));
                    }
                }
            }
            Event::CleanupStarted if !self.quiet => self.line("Cleaning up"),
            Event::RunFinished(summary) => {
                let score = if summary.score.1 > 0 {
                    format!(", score {}/{}", summary.score.0, summary.score.1)
                } else {
                    String::new()
                };
                self.line(&format!(
                    "{}: {}{score} in {:.1?}",
                    summary.verdict.as_str().to_uppercase(),
                    summary.counts(),
                    summary.duration
                ));
                if !summary.to_fix.is_empty() {
                    let lost: u32 = summary.to_fix.iter().map(|f| f.points).sum();
                    let plural = if lost == 1 { "" } else { "s" };
                    self.line(&format!("What to fix ({lost} point{plural} lost):"));
                    for fix in &summary.to_fix {
                        self.line(&format!("  - {} ({} pt): {}", fix.title, fix.points, fix.advice));
                    }
                }
                if !summary.leftovers.is_empty() {
                    self.line(&format!(
                        "left behind in the cluster: {} (remove with `runbook cleanup --run-id {}`)",
                        summary.leftovers.join(", "),
                        self.run_id
                    ));
                }
            }
            _ => {}
        }
    }
}

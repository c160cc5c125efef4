//! `--report junit=FILE`: one test case per check (quick-junit), failures with
//! expected vs actual, and the score as suite properties.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::event::{Event, Status};
use super::{Reporter, Sink};
use crate::scenario::StepKind;

/// Collects checks and writes JUnit XML.
pub struct JunitReport {
    sink: Sink,
    name: String,
    cases: Vec<TestCase>,
    properties: Vec<Property>,
    duration: Duration,
    in_cleanup: bool,
}

impl JunitReport {
    /// A JUnit report written to `sink` when the run ends.
    pub fn new(sink: Sink) -> Self {
        JunitReport {
            sink,
            name: "runbook".into(),
            cases: Vec::new(),
            properties: Vec::new(),
            duration: Duration::ZERO,
            in_cleanup: false,
        }
    }

    /// The XML as it stands.
    pub fn xml(&self) -> anyhow::Result<String> {
        let mut report = Report::new("runbook");
        report.add_test_suite(self.suite());
        Ok(report.to_string()?)
    }

    /// The run as one test suite (a suite of runs holds one per run).
    pub fn suite(&self) -> TestSuite {
        let mut suite = TestSuite::new(self.name.clone());
        suite.add_test_cases(self.cases.clone());
        suite.add_properties(self.properties.clone());
        suite.set_time(self.duration);
        suite
    }
}

/// A JUnit report its owner reads after the run (`runbook run` over several
/// scenarios puts every run's suite in one file); it writes nothing itself.
pub struct SharedJunit(pub std::sync::Arc<std::sync::Mutex<JunitReport>>);

impl Reporter for SharedJunit {
    fn event(&mut self, event: &Event) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).event(event);
    }
}

impl Reporter for JunitReport {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => self.name = format!("{} ({:?})", info.scenario, info.mode).to_lowercase(),
            Event::CleanupStarted => self.in_cleanup = true,
            Event::StepFinished(info, result) if info.kind != StepKind::Setup && !self.in_cleanup => {
                let status = match result.status {
                    Status::Passed => TestCaseStatus::success(),
                    Status::Skipped => {
                        let mut s = TestCaseStatus::skipped();
                        if let TestCaseStatus::Skipped { message, .. } = &mut s {
                            *message = result.message.clone().map(Into::into);
                        }
                        s
                    }
                    Status::Failed | Status::Error => {
                        let kind = if result.status == Status::Failed {
                            NonSuccessKind::Failure
                        } else {
                            NonSuccessKind::Error
                        };
                        let mut s = TestCaseStatus::non_success(kind);
                        let message = match (&result.expected, &result.actual) {
                            (Some(e), Some(a)) => format!("expected {e}, actual {a}"),
                            _ => result.message.clone().unwrap_or_default(),
                        };
                        let mut description = String::new();
                        if let Some(w) = &result.looked_at {
                            description.push_str(&format!("where: {w}\n"));
                        }
                        if let Some(h) = &info.hint {
                            description.push_str(&format!("hint: {h}\n"));
                        }
                        if let Some(d) = &result.diagnostics {
                            description.push_str(d);
                        }
                        if let TestCaseStatus::NonSuccess { message: m, description: d, .. } = &mut s {
                            *m = Some(message.into());
                            *d = (!description.is_empty()).then(|| description.into());
                        }
                        s
                    }
                };
                let mut case = TestCase::new(info.id.clone(), status);
                case.set_classname(self.name.clone());
                case.set_time(result.duration);
                if !result.output.is_empty() {
                    case.set_system_out(result.output.clone());
                }
                if let Some(p) = info.points {
                    case.add_property(Property::new("points", p.to_string()));
                }
                self.cases.push(case);
            }
            Event::RunFinished(summary) => {
                self.duration = summary.duration;
                self.properties.push(Property::new("score", format!("{}/{}", summary.score.0, summary.score.1)));
                self.properties.push(Property::new("verdict", summary.verdict.as_str()));
            }
            _ => {}
        }
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.sink.write(self.xml()?.as_bytes())
    }
}

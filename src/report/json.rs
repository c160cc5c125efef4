//! `--report json=FILE`: the whole run as one JSON document.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::Reporter;
use super::event::Event;

/// Collects the run and writes it as JSON.
pub struct JsonReport {
    path: PathBuf,
    run: Value,
    steps: Vec<Value>,
    cleanup: Vec<Value>,
    in_cleanup: bool,
    summary: Value,
}

impl JsonReport {
    /// A JSON report written to `path`.
    pub fn new(path: PathBuf) -> Self {
        JsonReport {
            path,
            run: Value::Null,
            steps: Vec::new(),
            cleanup: Vec::new(),
            in_cleanup: false,
            summary: Value::Null,
        }
    }

    /// The document as it stands.
    pub fn document(&self) -> Value {
        json!({"run": self.run, "steps": self.steps, "cleanup": self.cleanup, "summary": self.summary})
    }
}

impl Reporter for JsonReport {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => self.run = serde_json::to_value(info).unwrap_or_default(),
            Event::StepFinished(info, result) => {
                let mut step = serde_json::to_value(info).unwrap_or_default();
                if let (Value::Object(s), Value::Object(r)) =
                    (&mut step, serde_json::to_value(result).unwrap_or_default())
                {
                    s.extend(r);
                }
                if self.in_cleanup { self.cleanup.push(step) } else { self.steps.push(step) }
            }
            Event::CleanupStarted => self.in_cleanup = true,
            Event::RunFinished(summary) => self.summary = serde_json::to_value(summary).unwrap_or_default(),
            _ => {}
        }
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.document())?;
        std::fs::write(&self.path, text + "\n").map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))
    }
}

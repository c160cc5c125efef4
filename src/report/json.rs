//! `--report json=FILE`: the whole run as one JSON document.

use serde_json::{Value, json};

use super::event::Event;
use super::{Reporter, Sink};

/// Collects the run and writes it as JSON.
pub struct JsonReport {
    sink: Sink,
    run: Value,
    steps: Vec<Value>,
    cleanup: Vec<Value>,
    in_cleanup: bool,
    summary: Value,
}

impl JsonReport {
    /// A JSON report written to `sink` when the run ends.
    pub fn new(sink: Sink) -> Self {
        JsonReport {
            sink,
            run: Value::Null,
            steps: Vec::new(),
            cleanup: Vec::new(),
            in_cleanup: false,
            summary: Value::Null,
        }
    }

    /// A report that only collects the document, for a reporter built on it
    /// (the HTML page); finishing it writes to a buffer nobody reads.
    pub fn collecting() -> Self {
        JsonReport::new(Sink::memory().0)
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
        self.sink.write((text + "\n").as_bytes())
    }
}

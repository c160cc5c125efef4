//! Reporters: separate sinks fed by one event stream.

pub mod audit;
pub mod event;
pub mod html;
pub mod json;
pub mod junit;
pub mod progress;
pub mod sink;
#[cfg(test)]
mod snapshots;
pub mod stats;

pub use event::{Event, Reporter};
pub use sink::Sink;

/// Several reporters fed in turn.
#[derive(Default)]
pub struct Reporters(Vec<Box<dyn Reporter>>);

impl Reporters {
    /// Adds a reporter.
    pub fn push(&mut self, reporter: Box<dyn Reporter>) {
        self.0.push(reporter);
    }

    /// Sends an event to every reporter.
    pub fn emit(&mut self, event: &Event) {
        for r in &mut self.0 {
            r.event(event);
        }
    }

    /// Finishes every reporter; the first error wins, but all get to write.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        let mut first = Ok(());
        for r in &mut self.0 {
            if let Err(e) = r.finish()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}

/// Hides secret values in any text that leaves the engine.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

/// What secret values are replaced with.
pub const REDACTED: &str = "[redacted]";

impl Redactor {
    /// A redactor for these values (empty values are ignored).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret containing another is hidden whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// Adds a value learned during the run (a password read from a Secret).
    pub fn add(&mut self, secret: String) {
        if !secret.is_empty() && !self.secrets.contains(&secret) {
            self.secrets.push(secret);
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// The text with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), REDACTED);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_longest_first() {
        let r = Redactor::new(["pass".to_string(), "password123".to_string(), String::new()]);
        assert_eq!(r.redact("auth password123 then pass"), "auth [redacted] then [redacted]");
    }
}

//! A fixed delay on every API request and every stream message (exec,
//! port-forward), to rehearse a cluster a network round trip away:
//! `runbook lab up --latency 50ms`, or `RUNBOOK_LAB_LATENCY=50ms` for `--lab`
//! runs. Messages keep their order; each is delivered the latency after it
//! was sent (messages in flight overlap, as on a network), except messages
//! from the client to a pod, each of which waits the latency in turn.

use std::time::Duration;

use tokio::time::Instant;

/// The environment variable a lab reads when its config sets no latency.
pub const ENV: &str = "RUNBOOK_LAB_LATENCY";

/// A fixed one-way delay (zero: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency(pub Duration);

impl Latency {
    /// `50ms`, `0.1s`; empty means none.
    pub fn parse(text: &str) -> Result<Latency, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Latency::default());
        }
        runbook_units::parse_duration(text)
            .map(Latency)
            .ok_or_else(|| format!("{text:?} is not a duration (50ms, 0.1s)"))
    }

    /// From [`ENV`].
    pub fn from_env() -> Result<Latency, String> {
        Latency::parse(&std::env::var(ENV).unwrap_or_default()).map_err(|e| format!("{ENV}: {e}"))
    }

    /// Waits until the latency has passed since `sent`.
    pub async fn hold(self, sent: Instant) {
        if !self.0.is_zero() {
            tokio::time::sleep_until(sent + self.0).await;
        }
    }

    /// Waits the latency from now.
    pub async fn wait(self) {
        self.hold(Instant::now()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_refuses_the_rest() {
        assert_eq!(Latency::parse("50ms"), Ok(Latency(Duration::from_millis(50))));
        assert_eq!(Latency::parse(""), Ok(Latency::default()));
        assert!(Latency::parse("fast").is_err());
    }
}

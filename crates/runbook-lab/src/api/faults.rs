//! Fault injection, so retries and re-watches are tested, not assumed:
//! `RUNBOOK_LAB_FAULTS="errors=0.1,latency=20ms,drop-watches=3s"` makes the lab
//! answer a share of requests with 500, 502, 503 or 429 in turn, delay requests by up to the
//! latency, and end watch streams early; `methods=POST+PUT` narrows the
//! errors to requests of those methods. Health endpoints and websocket
//! upgrades are left alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The faults a lab injects.
#[derive(Debug, Default)]
pub struct Faults {
    /// Share of requests answered 503/429 (0 to 1).
    pub error_rate: f64,
    /// Up to this much delay per request.
    pub latency: Duration,
    /// Watch streams end after a random time up to this.
    pub drop_watches: Option<Duration>,
    /// Only requests of these methods may fail (all when empty).
    pub methods: Vec<String>,
    /// Requests failed on purpose so far.
    pub injected: AtomicU64,
    /// Requests seen (those that may fail).
    pub seen: AtomicU64,
}

impl Faults {
    /// Parses `errors=0.1,latency=20ms,drop-watches=3s`; an empty text means none.
    pub fn parse(text: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| format!("fault {part:?}: expected key=value"))?;
            let duration = || {
                runbook_units::parse_duration(value).ok_or_else(|| format!("fault {key}: {value:?} is not a duration"))
            };
            match key {
                "errors" => {
                    faults.error_rate = value
                        .parse()
                        .ok()
                        .filter(|r: &f64| (0.0..=1.0).contains(r))
                        .ok_or_else(|| format!("errors={value}: expected a share from 0 to 1"))?
                }
                "latency" => faults.latency = duration()?,
                "drop-watches" => faults.drop_watches = Some(duration()?),
                "methods" => faults.methods = value.split('+').map(|m| m.trim().to_ascii_uppercase()).collect(),
                other => return Err(format!("unknown fault {other:?} (errors, latency, drop-watches, methods)")),
            }
        }
        Ok(faults)
    }

    /// From `RUNBOOK_LAB_FAULTS`.
    pub fn from_env() -> Result<Faults, String> {
        Faults::parse(&std::env::var("RUNBOOK_LAB_FAULTS").unwrap_or_default())
    }

    /// Delays a request and decides whether to fail it; Some(status) to fail.
    /// The share of failures is exact, not random.
    pub async fn before(&self, method: &str) -> Option<u16> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency.mul_f64(rand::random_range(0.0..=1.0))).await;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == method) {
            return None;
        }
        // Deterministic, so a test run is reproducible: at rate r, request n
        // fails when floor((n + 1) r) steps up (every 10th request at 0.1).
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        if self.error_rate > 0.0 && ((n + 1.0) * self.error_rate).floor() > (n * self.error_rate).floor() {
            let k = self.injected.fetch_add(1, Ordering::Relaxed);
            // A mix: kube-rs itself retries 429/503/504; 500 and 502 need runbook's retries.
            return Some([500, 503, 502, 429][(k % 4) as usize]);
        }
        None
    }

    /// How long a watch may last under `drop-watches`.
    pub fn watch_limit(&self, asked: Duration) -> Duration {
        match self.drop_watches {
            Some(max) => asked.min(max.mul_f64(rand::random_range(0.2..=1.0))).max(Duration::from_millis(100)),
            None => asked,
        }
    }

    /// Requests failed on purpose so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_tenth_request_fails_at_ten_percent() {
        let f = Faults::parse("errors=0.1").unwrap();
        let mut failed = Vec::new();
        for i in 0..30 {
            if f.before("GET").await.is_some() {
                failed.push(i);
            }
        }
        assert_eq!(failed, [9, 19, 29]);
    }

    #[test]
    fn parses_fault_specs() {
        let f = Faults::parse("errors=0.1, latency=20ms,drop-watches=3s").unwrap();
        assert_eq!(
            (f.error_rate, f.latency, f.drop_watches),
            (0.1, Duration::from_millis(20), Some(Duration::from_secs(3)))
        );
        assert!(Faults::parse("errors=2").is_err());
        assert!(Faults::parse("chaos=1").is_err());
        assert_eq!(Faults::parse("").unwrap().error_rate, 0.0);
    }

    #[tokio::test]
    async fn methods_narrow_the_errors_to_those_requests() {
        let f = Faults::parse("errors=1,methods=post+PUT").unwrap();
        assert_eq!(f.before("GET").await, None);
        assert_eq!(f.before("PATCH").await, None);
        assert_eq!(f.before("POST").await, Some(500));
        assert_eq!(f.before("PUT").await, Some(503));
    }
}

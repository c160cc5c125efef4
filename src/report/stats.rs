//! `run --repeat N`: what N runs of one scenario say together. One run of a
//! failover drill is an anecdote; several are a distribution. Computed from
//! the runs' JSON documents, so the statistics and the reports agree.

use std::fmt::Write;

use serde::Serialize;
use serde_json::{Value, json};

/// How often one step passed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PassRate {
    /// Step id.
    pub id: String,
    /// Runs in which it passed.
    pub passed: usize,
    /// Runs in which it ran (not skipped).
    pub ran: usize,
}

/// One measurement across runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Spread {
    /// Step id.
    pub step: String,
    /// What was measured.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// Runs that measured it.
    pub n: usize,
    /// Smallest value.
    pub min: f64,
    /// Median (the mean of the middle two for an even n).
    pub median: f64,
    /// 95th percentile, nearest rank.
    pub p95: f64,
    /// Largest value.
    pub max: f64,
}

/// The statistics of repeated runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Statistics {
    /// How many runs.
    pub runs: usize,
    /// How many of them passed.
    pub passed_runs: usize,
    /// Every step that ran at least once, in scenario order.
    pub pass_rates: Vec<PassRate>,
    /// Every measurement, in scenario order.
    pub measurements: Vec<Spread>,
}

impl Statistics {
    /// The statistics of these runs' JSON documents (`--report json=`'s shape).
    pub fn of(docs: &[Value]) -> Statistics {
        let mut rates: Vec<PassRate> = Vec::new();
        let mut values: Vec<((String, String, String), Vec<f64>)> = Vec::new();
        for step in docs.iter().flat_map(|d| d["steps"].as_array().into_iter().flatten()) {
            let id = step["id"].as_str().unwrap_or_default().to_string();
            let status = step["status"].as_str().unwrap_or_default();
            if status != "skipped" {
                let i = rates.iter().position(|r| r.id == id).unwrap_or_else(|| {
                    rates.push(PassRate { id: id.clone(), passed: 0, ran: 0 });
                    rates.len() - 1
                });
                rates[i].ran += 1;
                rates[i].passed += usize::from(status == "passed");
            }
            for m in step["measurements"].as_array().into_iter().flatten() {
                let key = (id.clone(), text(&m["name"]), text(&m["unit"]));
                let Some(v) = m["value"].as_f64() else { continue };
                match values.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, list)) => list.push(v),
                    None => values.push((key, vec![v])),
                }
            }
        }
        let measurements = values.into_iter().map(|((step, name, unit), v)| spread(step, name, unit, v)).collect();
        let passed_runs = docs.iter().filter(|d| d["summary"]["verdict"] == "passed").count();
        Statistics { runs: docs.len(), passed_runs, pass_rates: rates, measurements }
    }

    /// The combined JSON report: every run's document and the statistics.
    pub fn document(&self, docs: Vec<Value>) -> Value {
        json!({"repetitions": docs, "statistics": self})
    }

    /// The statistics as the terminal shows them.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ =
            writeln!(out, "{} runs: {} passed, {} did not", self.runs, self.passed_runs, self.runs - self.passed_runs);
        let width = self.pass_rates.iter().map(|r| r.id.len()).max().unwrap_or(4).max(4);
        let _ = writeln!(out, "\n{:width$}  passed", "step");
        for r in &self.pass_rates {
            let flag = if r.passed < r.ran { "  <- not every run" } else { "" };
            let _ = writeln!(out, "{:width$}  {}/{}{flag}", r.id, r.passed, r.ran);
        }
        if !self.measurements.is_empty() {
            let label = |s: &Spread| format!("{}: {} ({})", s.step, s.name, s.unit);
            let width = self.measurements.iter().map(|s| label(s).len()).max().unwrap_or(0);
            let _ = writeln!(
                out,
                "\n{:width$}  {:>3}  {:>9}  {:>9}  {:>9}  {:>9}",
                "measurement", "n", "min", "median", "p95", "max"
            );
            for s in &self.measurements {
                let _ = writeln!(
                    out,
                    "{:width$}  {:>3}  {:>9}  {:>9}  {:>9}  {:>9}",
                    label(s),
                    s.n,
                    number(s.min),
                    number(s.median),
                    number(s.p95),
                    number(s.max)
                );
            }
        }
        out
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

fn spread(step: String, name: String, unit: String, mut v: Vec<f64>) -> Spread {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    // Nearest rank: the smallest value with at least 95% of the values at or below it.
    let p95 = v[((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1];
    Spread { step, name, unit, n, min: v[0], median, p95, max: v[n - 1] }
}

/// A run's document with these steps and this verdict (for the tests).
#[cfg(test)]
fn run(verdict: &str, steps: Value) -> Value {
    json!({"summary": {"verdict": verdict}, "steps": steps})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_rates_and_spreads() {
        let drill = |status: &str, ms: f64| json!({"id": "failover", "status": status, "measurements": [{"name": "failover time", "value": ms, "unit": "ms"}]});
        let docs = vec![
            run("passed", json!([{"id": "ping", "status": "passed"}, drill("passed", 7000.0)])),
            run("failed", json!([{"id": "ping", "status": "failed"}, drill("passed", 9000.0)])),
            run("passed", json!([{"id": "ping", "status": "passed"}, drill("passed", 7100.0)])),
            run("error", json!([{"id": "ping", "status": "passed"}, {"id": "failover", "status": "skipped"}])),
        ];
        let s = Statistics::of(&docs);
        assert_eq!((s.runs, s.passed_runs), (4, 2));
        assert_eq!(s.pass_rates[0], PassRate { id: "ping".into(), passed: 3, ran: 4 });
        assert_eq!(s.pass_rates[1], PassRate { id: "failover".into(), passed: 3, ran: 3 });
        let f = &s.measurements[0];
        assert_eq!((f.n, f.min, f.median, f.p95, f.max), (3, 7000.0, 7100.0, 9000.0, 9000.0));
        let shown = s.text();
        assert!(shown.contains("ping      3/4  <- not every run"), "{shown}");
        assert!(
            shown.contains("failover: failover time (ms)    3       7000       7100       9000       9000"),
            "{shown}"
        );
    }

    #[test]
    fn medians_of_even_counts_and_p95_by_nearest_rank() {
        let s = spread("s".into(), "m".into(), "ms".into(), (1..=20).map(f64::from).collect());
        assert_eq!((s.median, s.p95), (10.5, 19.0));
        let one = spread("s".into(), "m".into(), "ms".into(), vec![5.0]);
        assert_eq!((one.min, one.median, one.p95, one.max), (5.0, 5.0, 5.0, 5.0));
    }
}

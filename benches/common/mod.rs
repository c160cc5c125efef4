//! Tiny timing helpers shared by the benchmarks (no harness: they need a
//! running lab, which criterion's model does not fit).

use std::time::Duration;

/// Whether this is a full run (`cargo bench`) or a smoke run (`cargo test`).
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Iterations: many under `cargo bench`, a couple under `cargo test`.
pub fn iterations(full: usize) -> usize {
    if full_run() { full } else { 2 }
}

/// Prints median and p95 of a sample against a target, and returns the median.
pub fn report(name: &str, mut samples: Vec<Duration>, target: Duration) -> Duration {
    samples.sort();
    let median = samples[samples.len() / 2];
    let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
    let verdict = if median <= target { "meets" } else { "MISSES" };
    println!(
        "{name:<44} n={:<4} median {:>9.2?}  p95 {:>9.2?}  target {:>7.0?}  {verdict}",
        samples.len(),
        median,
        p95,
        target
    );
    median
}

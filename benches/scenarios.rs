//! `runbook run NAME --lab` for each built-in scenario, whole process
//! included (a fresh embedded lab each time), against issue 18's targets:
//! redis-sentinel under 30 s, redis-cluster under 12 s.
//! `cargo bench --bench scenarios`; `cargo test` smoke-runs redis-cache only.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// Each scenario and the time its run should stay under.
const SCENARIOS: [(&str, Duration); 4] = [
    ("redis-cache", Duration::from_secs(5)),
    ("counter-service", Duration::from_secs(60)),
    ("redis-cluster", Duration::from_secs(12)),
    ("redis-sentinel", Duration::from_secs(30)),
];

fn main() {
    let runbook = runbook::lab_host::runbook_binary().expect("runbook binary built");
    for (name, target) in SCENARIOS {
        if !common::full_run() && name != "redis-cache" {
            continue;
        }
        let samples = (0..common::iterations(1))
            .map(|_| {
                let started = Instant::now();
                let out = Command::new(&runbook).args(["run", name, "--lab", "--quiet"]).output().expect("runs");
                let took = started.elapsed();
                assert!(
                    out.status.success(),
                    "{name}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                took
            })
            .collect();
        common::report(&format!("runbook run {name} --lab"), samples, target);
    }
}

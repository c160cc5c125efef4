//! Writes during a failover drill: one write at a time, each recorded with
//! its time and outcome, so that a report can draw when writes failed (the
//! failover as a client lives it) next to what the drill saw.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::report::event::{Traffic, epoch_ms};

/// Pause between two writes.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// A write that takes longer counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// The interval writes are counted in, for the chart.
const COUNTED_PER_MS: u64 = 500;

/// Calls `write(n)` for n = 0, 1, … until `stop` is set; returns every
/// outcome as (ms since the epoch, succeeded).
pub async fn write_until(stop: &AtomicBool, mut write: impl AsyncFnMut(u64) -> bool) -> Vec<(u64, bool)> {
    let mut outcomes = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let ok = tokio::time::timeout(WRITE_TIMEOUT, write(n)).await.unwrap_or(false);
        outcomes.push((epoch_ms(), ok));
        n += 1;
        tokio::time::sleep(WRITE_EVERY).await;
    }
    outcomes
}

/// Runs `drill` while `write` writes; returns the drill's result and every
/// write's outcome, and keeps the writes (and two measurements of them) for
/// the step's report.
pub async fn during<T>(
    ctx: &super::context::Ctx,
    measured: &mut super::Done,
    drill: impl Future<Output = T>,
    write: impl AsyncFnMut(u64) -> bool,
) -> (T, Vec<(u64, bool)>) {
    let stop = AtomicBool::new(false);
    let drill = async {
        let outcome = drill.await;
        stop.store(true, Ordering::Relaxed);
        outcome
    };
    let (outcome, writes) = tokio::join!(drill, write_until(&stop, write));
    let failed = writes.iter().filter(|w| !w.1).count();
    measured.measure("writes during the drill", writes.len() as f64, "writes");
    measured.measure("failed writes", failed as f64, "writes");
    ctx.keep_traffic(Traffic::count("writes", &writes, COUNTED_PER_MS));
    (outcome, writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_until_stopped_and_times_out_slow_writes() {
        let stop = AtomicBool::new(false);
        let outcomes = write_until(&stop, async |n| {
            if n == 1 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if n == 3 {
                stop.store(true, Ordering::Relaxed);
            }
            n != 2
        })
        .await;
        let oks: Vec<bool> = outcomes.iter().map(|o| o.1).collect();
        assert_eq!(oks, [true, false, false, true]);
    }
}

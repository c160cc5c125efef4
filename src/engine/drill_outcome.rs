//! What a fault drill with a writing client reports, whatever the fault
//! (a Sentinel master cut off, a Redis Cluster master cut off or its node
//! down): the tally of its writes against what was read back, the time two
//! pods said they were master, when a replica was promoted and how long the
//! pods took to agree again, as lines for the step's output and as
//! measurements.

use std::time::Duration;

use super::Done;
use super::write_ledger::{Tally, Write, split_brain_ms, tally};

/// What the drill saw.
pub struct Seen<'a> {
    /// Every write, in order.
    pub writes: &'a [Write],
    /// Whether each write's key holds its value after healing, by number.
    pub present: &'a [bool],
    /// (ms since the epoch, pods saying master) samples.
    pub masters: &'a [(u64, usize)],
    /// When the fault began (ms since the epoch).
    pub fault_at: u64,
    /// When a replica was first seen promoted (ms since the epoch).
    pub promoted_at: Option<u64>,
    /// How long after healing the pods agreed on one master.
    pub converged_after: Duration,
    /// The master they agreed on, as the output names it.
    pub final_master: &'a str,
}

/// The numbers a drill reports.
pub struct Outcome {
    /// The tally of the writes.
    pub tally: Tally,
    /// How long into the fault the last lost write was acknowledged (ms);
    /// 0 when none was lost.
    pub window_ms: u64,
}

/// Tallies what was seen; adds its lines to `log` and its measurements to `done`.
pub fn report(seen: &Seen, log: &mut Vec<String>, done: &mut Done) -> Outcome {
    let t = tally(seen.writes, |n| seen.present.get(n as usize).copied().unwrap_or(false));
    let split = split_brain_ms(seen.masters);
    let window_ms = t
        .lost
        .iter()
        .filter_map(|n| seen.writes.get(*n as usize))
        .map(|w| w.at_ms.saturating_sub(seen.fault_at))
        .max()
        .unwrap_or(0);
    log.push(format!("converged on {} {} ms after healing", seen.final_master, seen.converged_after.as_millis()));
    log.push(format!(
        "{} writes, {} acknowledged; read back from {}: {} acknowledged writes lost, {} unacknowledged writes there",
        t.attempted,
        t.acknowledged,
        seen.final_master,
        t.lost.len(),
        t.unacknowledged_present
    ));
    log.push(format!("no acknowledged write for {} ms; two masters for {split} ms", t.unavailable_ms));
    done.measure("writes", t.attempted as f64, "writes");
    done.measure("acknowledged writes", t.acknowledged as f64, "writes");
    done.measure("acknowledged writes lost", t.lost.len() as f64, "writes");
    done.measure("unacknowledged writes present", t.unacknowledged_present as f64, "writes");
    done.measure("time without a writable master", t.unavailable_ms as f64, "ms");
    done.measure("split brain", split as f64, "ms");
    done.measure("time to converge", seen.converged_after.as_millis() as f64, "ms");
    if let Some(at) = seen.promoted_at {
        done.measure("promotion time", at.saturating_sub(seen.fault_at) as f64, "ms");
    }
    if !t.lost.is_empty() {
        done.measure("lost-write window", window_ms as f64, "ms");
    }
    Outcome { tally: t, window_ms }
}

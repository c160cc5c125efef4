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

/// A drill client's `WAIT` after each write: a write counts as acknowledged
/// only once this many replicas confirmed it, within 500 ms (as a client
/// that needs its writes to survive a failover does).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaitReplicas(pub u32);

impl WaitReplicas {
    /// The command sent after each write that succeeded.
    pub fn command(self) -> [String; 3] {
        ["WAIT".into(), self.0.to_string(), "500".into()]
    }

    /// Whether `WAIT`'s reply says enough replicas confirmed the write.
    pub fn confirmed<E>(self, reply: &Result<redis::Value, E>) -> bool {
        matches!(reply, Ok(redis::Value::Int(n)) if *n >= i64::from(self.0))
    }

    /// The line the drill's output says it with.
    pub fn describe(self) -> String {
        let n = self.0;
        format!("each write waits for {n} replica(s) (WAIT {n} 500): acknowledged only once they confirmed it")
    }

    /// Fails the drill when a confirmed write was lost.
    pub fn check(self, lost: usize, looked_at: &str, output: &str) -> Result<(), super::StepError> {
        if lost == 0 {
            return Ok(());
        }
        Err(super::StepError::Failed {
            expected: format!("no write lost that {} replica(s) had confirmed (WAIT)", self.0),
            actual: format!("{lost} lost"),
            looked_at: looked_at.into(),
            output: output.into(),
            diagnostics: None,
        })
    }
}

/// Marks on the drill's timeline where two pods begin and stop saying they
/// are master (from one sample's count of masters to the next), so the
/// report's chart shows the split brain as the stretch between them.
pub fn mark_split_brain(ctx: &super::context::Ctx, before: usize, now: usize) {
    if before <= 1 && now > 1 {
        ctx.mark("split brain: two masters");
    } else if before > 1 && now <= 1 {
        ctx.mark("split brain over");
    }
}

/// The writes of a drill's client, numbered in order, from its outcomes
/// (ms since the epoch, acknowledged).
pub fn ledger(outcomes: &[(u64, bool)]) -> Vec<Write> {
    outcomes.iter().enumerate().map(|(n, &(at_ms, acked))| Write { n: n as u64, at_ms, acked }).collect()
}

/// Tallies `writes` against what was read back from `read_from`; adds its
/// lines to `log` and its measurements to `done`.
pub fn report_writes(
    writes: &[Write],
    present: &[bool],
    read_from: &str,
    log: &mut Vec<String>,
    done: &mut Done,
) -> Tally {
    let t = tally(writes, |n| present.get(n as usize).copied().unwrap_or(false));
    log.push(format!(
        "{} writes, {} acknowledged; read back from {read_from}: {} acknowledged writes lost, {} unacknowledged writes there",
        t.attempted,
        t.acknowledged,
        t.lost.len(),
        t.unacknowledged_present
    ));
    log.push(format!("no acknowledged write for {} ms", t.unavailable_ms));
    done.measure("writes", t.attempted as f64, "writes");
    done.measure("acknowledged writes", t.acknowledged as f64, "writes");
    done.measure("acknowledged writes lost", t.lost.len() as f64, "writes");
    done.measure("unacknowledged writes present", t.unacknowledged_present as f64, "writes");
    done.measure("time without a writable master", t.unavailable_ms as f64, "ms");
    t
}

/// Tallies what was seen; adds its lines to `log` and its measurements to `done`.
pub fn report(seen: &Seen, log: &mut Vec<String>, done: &mut Done) -> Outcome {
    log.push(format!("converged on {} {} ms after healing", seen.final_master, seen.converged_after.as_millis()));
    let t = report_writes(seen.writes, seen.present, seen.final_master, log, done);
    let split = split_brain_ms(seen.masters);
    let window_ms = t
        .lost
        .iter()
        .filter_map(|n| seen.writes.get(*n as usize))
        .map(|w| w.at_ms.saturating_sub(seen.fault_at))
        .max()
        .unwrap_or(0);
    log.push(format!("two masters for {split} ms"));
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

/// Whether each key `PREFIX0 .. PREFIX(count-1)` holds its own number, read
/// with `MGET`s of 500 keys sent through `mget` (a pod's connection, or a
/// cluster client when the keys share a hash tag).
pub async fn read_numbered(
    prefix: &str,
    count: u64,
    mut mget: impl AsyncFnMut(Vec<String>) -> Result<redis::Value, super::StepError>,
) -> Result<Vec<bool>, super::StepError> {
    let mut present = Vec::new();
    let numbers: Vec<u64> = (0..count).collect();
    for chunk in numbers.chunks(500) {
        let mut command = vec!["MGET".to_string()];
        command.extend(chunk.iter().map(|n| format!("{prefix}{n}")));
        let values = match super::redis_client::to_value(&mget(command).await?) {
            serde_json::Value::Array(v) => v,
            _ => Vec::new(),
        };
        for (n, v) in chunk.iter().zip(values.iter().chain(std::iter::repeat(&serde_json::Value::Null))) {
            present.push(v.as_str() == Some(&n.to_string()));
        }
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_write_counts_once_enough_replicas_confirmed_it() {
        let wait = super::WaitReplicas(1);
        assert_eq!(wait.command(), ["WAIT", "1", "500"]);
        assert!(wait.confirmed::<()>(&Ok(redis::Value::Int(2))));
        assert!(!wait.confirmed::<()>(&Ok(redis::Value::Int(0))), "timed out without a replica");
        assert!(!wait.confirmed(&Err(())));
        assert!(wait.check(0, "GET", "").is_ok());
        let failed = super::super::error_text(&wait.check(3, "GET", "").unwrap_err());
        assert!(failed.contains("no write lost that 1 replica(s) had confirmed (WAIT)"), "{failed}");
    }
}

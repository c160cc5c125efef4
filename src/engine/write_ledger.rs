//! What a client saw while a fault was on, and what survived it, as Jepsen
//! counts it: every write is a unique key, recorded with the time its
//! answer came and whether it was acknowledged; after healing, each key is
//! read back. Pure arithmetic over those records.

/// One write: its number (the key's), when its answer came (ms since the
/// Unix epoch) and whether it was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Write {
    /// The write's number.
    pub n: u64,
    /// When its answer came, in ms since the Unix epoch.
    pub at_ms: u64,
    /// Acknowledged (OK).
    pub acked: bool,
}

/// The tally of a drill's writes against what was read back.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    /// Writes attempted.
    pub attempted: usize,
    /// Writes acknowledged.
    pub acknowledged: usize,
    /// Acknowledged writes missing after healing, by number.
    pub lost: Vec<u64>,
    /// Writes not acknowledged (failed, timed out) that are there after all.
    pub unacknowledged_present: usize,
    /// Time with no acknowledged write: each stretch from the last
    /// acknowledgement before failed writes to the next acknowledgement, summed (ms).
    pub unavailable_ms: u64,
}

/// Counts `writes` against `present(n)`: whether write `n` is there now.
pub fn tally(writes: &[Write], present: impl Fn(u64) -> bool) -> Tally {
    let mut t = Tally { attempted: writes.len(), ..Tally::default() };
    let mut last_ack: Option<u64> = None;
    let mut failing_since: Option<u64> = None;
    for w in writes {
        if w.acked {
            t.acknowledged += 1;
            if !present(w.n) {
                t.lost.push(w.n);
            }
            if let Some(since) = failing_since.take() {
                t.unavailable_ms += w.at_ms.saturating_sub(since);
            }
            last_ack = Some(w.at_ms);
        } else {
            if present(w.n) {
                t.unacknowledged_present += 1;
            }
            if failing_since.is_none() {
                failing_since = Some(last_ack.unwrap_or(w.at_ms));
            }
        }
    }
    if let (Some(since), Some(last)) = (failing_since, writes.last()) {
        t.unavailable_ms += last.at_ms.saturating_sub(since);
    }
    t
}

/// How long more than one pod said it was the master, from samples of
/// (ms since the epoch, masters counted), in time order: each sample's
/// count holds until the next sample.
pub fn split_brain_ms(samples: &[(u64, usize)]) -> u64 {
    samples.windows(2).filter(|w| w[0].1 > 1).map(|w| w[1].0.saturating_sub(w[0].0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(n: u64, at_ms: u64, acked: bool) -> Write {
        Write { n, at_ms, acked }
    }

    #[test]
    fn lost_writes_are_acknowledged_ones_not_read_back() {
        let writes = [w(0, 0, true), w(1, 100, true), w(2, 200, false), w(3, 300, true), w(4, 400, false)];
        // 1 was acknowledged and is gone; 4 failed yet is there.
        let t = tally(&writes, |n| n != 1 && n != 2);
        assert_eq!(t.attempted, 5);
        assert_eq!(t.acknowledged, 3);
        assert_eq!(t.lost, [1]);
        assert_eq!(t.unacknowledged_present, 1);
    }

    #[test]
    fn unavailability_runs_from_the_last_acknowledgement_to_the_next() {
        let writes = [w(0, 0, true), w(1, 100, false), w(2, 200, false), w(3, 700, true), w(4, 800, false)];
        // 0 -> 700, and 700 -> 800 (still failing at the end).
        assert_eq!(tally(&writes, |_| true).unavailable_ms, 800);
        let never = [w(0, 50, false), w(1, 150, false)];
        assert_eq!(tally(&never, |_| false).unavailable_ms, 100);
    }

    #[test]
    fn split_brain_is_the_time_two_masters_were_seen() {
        let samples = [(0, 1), (250, 2), (500, 2), (750, 1), (1000, 2)];
        assert_eq!(split_brain_ms(&samples), 500, "from 250 to 750; the last sample has no length");
        assert_eq!(split_brain_ms(&[]), 0);
    }
}

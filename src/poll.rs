//! The one wait loop: ask a probe until it says ready, fails, or the time is
//! up. The caller owns the timeout; the probe says why it is not ready yet, so
//! a timeout reports the last reason rather than "timed out". Between tries it
//! sleeps an interval that may grow (back-off), and wakes early when a watch
//! stream says something changed.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::time::Instant;

tokio::task_local! {
    static LOOKING_AGAIN: std::sync::Arc<dyn Fn() + Send + Sync>;
}

/// Runs `work` so that whenever a wait loop in it (a [`Poller`], or a retry
/// calling [`looking_again`]) is about to look again, `hook` runs first: the
/// engine forgets the reads it kept (see `engine::read_cache`), so that what
/// is looked at again, and by every later step, is read afresh.
pub async fn when_looking_again<F: std::future::Future>(
    hook: std::sync::Arc<dyn Fn() + Send + Sync>,
    work: F,
) -> F::Output {
    LOOKING_AGAIN.scope(hook, work).await
}

/// Says that what was read did not hold yet and will be read again (see
/// [`when_looking_again`]); nothing outside such a scope.
pub fn looking_again() {
    let _ = LOOKING_AGAIN.try_with(|hook| hook());
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<T> {
    /// Done, with what it found.
    Ready(T),
    /// Not yet, and why (shown if the time runs out).
    NotYet(String),
}

/// The time ran out before the probe was ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// The probe's last reason.
    pub last: String,
    /// How long it waited.
    pub waited: Duration,
}

/// How to wait: the timeout, the pause between tries (growing by half each
/// time up to `max_interval`), and what wakes it early.
pub struct Poller<'a> {
    timeout: Duration,
    interval: Duration,
    max_interval: Duration,
    wake: Option<BoxStream<'a, ()>>,
}

impl<'a> Poller<'a> {
    /// Waits at most `timeout`, trying every 250 ms.
    pub fn new(timeout: Duration) -> Self {
        let interval = Duration::from_millis(250);
        Poller { timeout, interval, max_interval: interval, wake: None }
    }

    /// Tries every `interval` (and no more often).
    pub fn every(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self.max_interval = self.max_interval.max(interval);
        self
    }

    /// Lets the pause grow by half after each try, up to `max`.
    pub fn backing_off_to(mut self, max: Duration) -> Self {
        self.max_interval = max.max(self.interval);
        self
    }

    /// Tries again as soon as `wake` yields (a watch stream's events).
    pub fn woken_by<S: futures::Stream + Send + 'a>(mut self, wake: S) -> Self {
        self.wake = Some(wake.map(|_| ()).boxed());
        self
    }

    /// Asks `probe` (given the time waited so far) until it is ready or fails;
    /// `Ok(Err(TimedOut))` when the time runs out first. The probe is always
    /// asked at least once, and once more at the deadline.
    pub async fn until<T, E>(
        mut self,
        mut probe: impl AsyncFnMut(Duration) -> Result<Probe<T>, E>,
    ) -> Result<Result<T, TimedOut>, E> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut pause = self.interval;
        loop {
            let reason = match probe(started.elapsed()).await? {
                Probe::Ready(found) => return Ok(Ok(found)),
                Probe::NotYet(reason) => {
                    looking_again();
                    reason
                }
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(Err(TimedOut { last: reason, waited: started.elapsed() }));
            }
            let until = (now + pause).min(deadline);
            match &mut self.wake {
                // A watch that ended (or failed past its back-off) no longer
                // wakes anything: the interval carries on alone.
                Some(wake) => tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    event = wake.next() => if event.is_none() { self.wake = None },
                },
                None => tokio::time::sleep_until(until).await,
            }
            pause = pause.mul_f64(1.5).min(self.max_interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_after_some_tries() {
        let mut tries = 0;
        let found = Poller::new(Duration::from_secs(10))
            .until(async |_| {
                tries += 1;
                Ok::<_, ()>(if tries == 3 { Probe::Ready("up") } else { Probe::NotYet(format!("try {tries}")) })
            })
            .await;
        assert_eq!(found, Ok(Ok("up")));
        assert_eq!(tries, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_reason_after_a_last_try_at_the_deadline() {
        let mut tries = 0;
        let outcome = Poller::new(Duration::from_secs(1))
            .until(async |_| {
                tries += 1;
                Ok::<Probe<()>, ()>(Probe::NotYet(format!("{tries} of 3 ready")))
            })
            .await
            .unwrap()
            .unwrap_err();
        // 0, 250, 500, 750 ms and the deadline itself.
        assert_eq!(tries, 5);
        assert_eq!(outcome.last, "5 of 3 ready");
        assert_eq!(outcome.waited, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn each_look_again_runs_the_hook_first() {
        let hooked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hooked.clone();
        let hook = std::sync::Arc::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let mut tries = 0;
        let found = when_looking_again(
            hook,
            Poller::new(Duration::from_secs(10)).until(async |_| {
                tries += 1;
                Ok::<_, ()>(if tries == 3 { Probe::Ready(()) } else { Probe::NotYet("not yet".into()) })
            }),
        )
        .await;
        assert_eq!(found, Ok(Ok(())));
        assert_eq!(hooked.load(std::sync::atomic::Ordering::SeqCst), 2, "once before each look again");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_ends_the_wait_at_once() {
        let outcome = Poller::new(Duration::from_secs(60)).until(async |_| Err::<Probe<()>, _>("forbidden")).await;
        assert_eq!(outcome, Err("forbidden"));
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_and_wakes_early_on_an_event() {
        let mut asked_at = Vec::new();
        let _ = Poller::new(Duration::from_secs(10))
            .every(Duration::from_secs(1))
            .backing_off_to(Duration::from_secs(2))
            .until(async |waited| {
                asked_at.push(waited.as_millis());
                Ok::<Probe<()>, ()>(Probe::NotYet("no".into()))
            })
            .await;
        assert_eq!(asked_at[..5], [0, 1000, 2500, 4500, 6500], "1 s, then 1.5 s, then at most 2 s");

        let (tx, events) = futures::channel::mpsc::unbounded::<()>();
        let mut asked_at = Vec::new();
        let found = Poller::new(Duration::from_secs(60))
            .every(Duration::from_secs(30))
            .woken_by(events)
            .until(async |waited| {
                asked_at.push(waited.as_millis());
                if asked_at.len() == 1 {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let _ = tx.unbounded_send(());
                    });
                    return Ok::<_, ()>(Probe::NotYet("waiting for an event".into()));
                }
                Ok(Probe::Ready(()))
            })
            .await;
        assert_eq!(found, Ok(Ok(())));
        assert_eq!(asked_at, [0, 100], "the event woke it long before the 30 s interval");
    }
}

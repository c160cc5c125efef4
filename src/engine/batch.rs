//! Checks side by side: consecutive read-only checks (a field, a Redis reply,
//! a command's output) and the captures and discoveries between them do not
//! depend on one another unless one uses what another finds, so they run at once and
//! a run costs its slowest check instead of their sum, which is what matters
//! on a cluster a network hop away. The report keeps scenario order and each
//! step's own duration.

use std::time::{Duration, Instant};

use super::context::Ctx;
use super::{Done, StepError, run_unless};
use crate::scenario::{Action, Scenario, Step, StepKind};

/// At most this many checks run at once (port-forwards and execs are
/// connections to the API server; a burst of them is what it throttles).
pub const AT_ONCE: usize = 8;

/// Whether a step may run side by side with its neighbours: a check that
/// reads once, or a capture or discovery (they read). Waits (under `verify`
/// too: a rollout still under way is waited for, and the checks after it
/// must read what it waited for), retried checks (`retryFor`, `eventually`)
/// and `unless` probes take their time and report progress as they go; HTTP
/// checks change what they count; drills and setup change the cluster.
fn side_by_side(step: &Step) -> bool {
    let reads_once = match &step.action {
        Action::Assert(a) => a.eventually.is_none(),
        Action::Redis(_) | Action::Exec(_) | Action::Capture(_) | Action::Discover(_) => true,
        _ => false,
    };
    let reads = step.kind == StepKind::Check || matches!(step.action, Action::Capture(_) | Action::Discover(_));
    reads && reads_once && step.retry_for.is_none() && step.unless.is_none()
}

/// The value a step sets for the steps after it (a capture's name, a
/// discovered parameter).
fn sets(step: &Step) -> Option<&str> {
    match &step.action {
        Action::Capture(c) => Some(&c.name),
        Action::Discover(d) => Some(&d.parameter),
        _ => None,
    }
}

/// Whether a step's text refers to `{{ name }}`.
fn uses(step: &Step, name: &str) -> bool {
    let text = serde_json::to_string(&step.spec).unwrap_or_default();
    crate::scenario::template::references(&text).is_ok_and(|refs| refs.iter().any(|(n, _)| n == name))
}

/// Where the batch that starts at `start` ends (exclusive): the run of steps
/// from `start` that may go side by side, none needing another of the run
/// (`needs` orders them) or using a value another of the run sets. A step
/// that may not is a batch of one.
pub fn batch_end(steps: &[&Step], start: usize) -> usize {
    let mut end = start;
    while let Some(step) = steps.get(end) {
        let earlier = &steps[start..end];
        let depends =
            earlier.iter().any(|e| step.needs.contains(&e.spec.id) || sets(e).is_some_and(|name| uses(step, name)));
        if !side_by_side(step) || depends {
            break;
        }
        end += 1;
    }
    end.max(start + 1)
}

/// A step's action run to its end, and when.
pub struct Executed {
    /// What it did or why not.
    pub outcome: Result<Done, StepError>,
    /// When it started (epoch ms, for the report's timeline).
    pub began_ms: u64,
    /// How long it took.
    pub took: Duration,
    /// Whether Ctrl-C or SIGTERM cut it short.
    pub interrupted: bool,
}

/// Runs one step's action (its `unless` probe and retries included) unless
/// the run is interrupted first.
pub async fn execute(
    ctx: &Ctx,
    scenario: &Scenario,
    step: &Step,
    interrupt: &tokio_util::sync::CancellationToken,
) -> Executed {
    let began = Instant::now();
    let began_ms = crate::report::event::epoch_ms();
    let mut interrupted = false;
    let outcome = tokio::select! {
        outcome = crate::poll::when_looking_again(ctx.looking_again_hook(), run_unless(ctx, scenario, step)) => outcome,
        _ = interrupt.cancelled() => {
            interrupted = true;
            Err(StepError::infra("interrupted (Ctrl-C or SIGTERM)"))
        }
    };
    Executed { outcome, began_ms, took: began.elapsed(), interrupted }
}

/// Runs the steps side by side (at most [`AT_ONCE`] at a time), each with
/// its progress messages held back, and returns them in the steps' order with
/// the messages each would have shown.
pub async fn execute_all(
    ctx: &Ctx,
    scenario: &Scenario,
    steps: &[&Step],
    interrupt: &tokio_util::sync::CancellationToken,
) -> Vec<(Executed, Vec<String>)> {
    use futures::StreamExt;
    futures::stream::iter(steps.iter().map(|step| async move {
        let held = super::context::HeldProgress::default();
        let executed = held.scope(execute(ctx, scenario, step, interrupt)).await;
        (executed, held.take())
    }))
    .buffered(AT_ONCE)
    .collect()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(steps: &str) -> Scenario {
        let text = format!("name: t\ntitle: t\nobjective: t\nsteps:\n{steps}");
        Scenario::from_memory("t.yaml", &text, Default::default()).expect("valid")
    }

    #[test]
    fn consecutive_single_reads_go_together_and_the_rest_alone() {
        let s = scenario(
            "- {id: wait, title: t, wait: {rollout: {kind: Deployment, name: r}}}\n\
             - {id: field, title: t, assert: {object: {kind: Deployment, name: r}, path: spec.replicas, expect: {equals: 1}}}\n\
             - {id: ping, title: t, redis: {pod: {name: p}, command: [PING], expect: {equals: PONG}}}\n\
             - {id: ls, title: t, exec: {pod: {name: p}, command: [ls], expect: {exitCode: 0}}}\n\
             - {id: retried, title: t, retryFor: 5s, redis: {pod: {name: p}, command: [PING], expect: {equals: PONG}}}\n\
             - {id: a, title: t, redis: {pod: {name: p}, command: [PING], expect: {equals: PONG}}}\n\
             - {id: b, title: t, needs: [a], redis: {pod: {name: p}, command: [PING], expect: {equals: PONG}}}\n\
             - {id: c, title: t, redis: {pod: {name: p}, command: [PING], expect: {equals: PONG}}}\n\
             - {id: cap, title: t, capture: {name: x, object: {kind: Deployment, name: r}, path: spec.replicas}}\n\
             - {id: other, title: t, assert: {object: {kind: Deployment, name: r}, path: spec.replicas, expect: {equals: 1}}}\n\
             - {id: uses-x, title: t, assert: {object: {kind: Deployment, name: '{{ x }}'}, path: spec.replicas, expect: {equals: 1}}}\n",
        );
        let steps: Vec<&Step> = s.steps().iter().collect();
        let mut batches = Vec::new();
        let mut i = 0;
        while i < steps.len() {
            let end = batch_end(&steps, i);
            batches.push(steps[i..end].iter().map(|s| s.spec.id.as_str()).collect::<Vec<_>>().join("+"));
            i = end;
        }
        // A wait goes alone, under verify too: the checks after it read what
        // it waited for (engine::verify_reads_afresh_after_a_wait_that_waited).
        assert_eq!(batches, ["wait", "field+ping+ls", "retried", "a", "b+c+cap+other", "uses-x"]);
    }
}

//! Cleanup, after every run (failures and Ctrl-C too) unless `--keep`: the
//! scenario's cleanup steps, then whatever the run applied, newest first,
//! then whatever else carries the run's label. Returns what is still there.

use std::time::{Duration, Instant};

use kube::api::DeleteParams;

use super::context::{Applied, Ctx};
use super::{run_action, step_info, to_result};
use crate::poll::{Poller, Probe};
use crate::report::Event;
use crate::scenario::Scenario;

/// Runs the cleanup and returns the leftovers (objects still present when
/// `timeout` ran out).
pub async fn run(ctx: &Ctx, scenario: &Scenario, run_id: &str, timeout: Duration, emit: &dyn Fn(Event)) -> Vec<String> {
    emit(Event::CleanupStarted);
    let cleanup = scenario.cleanup_steps();
    let total = cleanup.len();
    for (i, step) in cleanup.iter().enumerate() {
        ctx.set_step(&step.spec.id);
        let info = step_info(ctx, step, i + 1, total, None);
        emit(Event::StepStarted(info.clone()));
        let began = Instant::now();
        let (result, _) = to_result(ctx, run_action(ctx, scenario, &step.action).await, began.elapsed());
        emit(Event::StepFinished(info, result));
    }
    let deadline = Instant::now() + timeout;
    let reported = sweep(ctx, deadline).await;
    let mut leftovers: Vec<String> = reported.iter().map(Applied::display).collect();
    leftovers.extend(sweep_labelled(ctx, run_id, deadline, &reported).await);
    leftovers
}

/// Deletes whatever else carries this run's label (the namespace made for an
/// ephemeral run, say), and returns what could not be removed by `deadline`,
/// leaving out what `sweep` reported already. Only the kinds the run applied,
/// and namespaces, are searched: no discovery of the whole cluster per run.
async fn sweep_labelled(ctx: &Ctx, run_id: &str, deadline: Instant, reported: &[Applied]) -> Vec<String> {
    use crate::k8s::leftovers;
    let applied: Vec<Applied> = ctx.applied.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut kinds: Vec<(String, String)> = applied.iter().map(|a| (a.api_version.clone(), a.kind.clone())).collect();
    kinds.push(("v1".into(), "Namespace".into()));
    kinds.sort();
    kinds.dedup();
    let mut types = Vec::new();
    for (api_version, kind) in &kinds {
        if let Ok((_, resource, namespaced)) = ctx.api(Some(api_version), kind, None).await {
            types.push((resource, namespaced));
        }
    }
    let search = leftovers::find_in(&ctx.client, &leftovers::selector(Some(run_id)), None, &types).await;
    // Types it could not list are left to the record `sweep` went by.
    let new: Vec<_> = search
        .found
        .into_iter()
        .filter(|o| {
            !reported.iter().any(|a| {
                a.kind == o.resource.kind && a.name == o.name && a.namespace == o.namespace.clone().unwrap_or_default()
            })
        })
        .collect();
    let patience = deadline.saturating_duration_since(Instant::now());
    leftovers::remove(&ctx.client, &new, patience).await.iter().map(|o| o.display()).collect()
}

/// Deletes whatever the run applied that cleanup left (reverse order), and
/// returns what is still there at `deadline`.
async fn sweep(ctx: &Ctx, deadline: Instant) -> Vec<Applied> {
    let applied: Vec<Applied> = ctx.applied.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut leftovers = Vec::new();
    for a in applied.iter().rev() {
        let ns = (!a.namespace.is_empty()).then_some(a.namespace.as_str());
        let Ok((api, _, _)) = ctx.api(Some(&a.api_version), &a.kind, ns).await else { continue };
        match api.get_opt(&a.name).await {
            Ok(None) => continue,
            Ok(Some(_)) => {
                let _ = api.delete(&a.name, &DeleteParams::background()).await;
                let gone = Poller::new(deadline.saturating_duration_since(Instant::now()))
                    .every(Duration::from_millis(200))
                    .until(async |_| {
                        Ok::<_, std::convert::Infallible>(match api.get_opt(&a.name).await {
                            Ok(None) => Probe::Ready(()),
                            _ => Probe::NotYet("still present".into()),
                        })
                    })
                    .await;
                if !matches!(gone, Ok(Ok(()))) {
                    leftovers.push(a.clone());
                }
            }
            Err(_) => leftovers.push(a.clone()),
        }
    }
    leftovers
}

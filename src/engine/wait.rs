//! `wait`: a rollout, ready pods or a deletion, driven by a watch, with a
//! deadline, progress on the way, and transient pod troubles (an
//! ImagePullBackOff that resolves) reported rather than fatal.

use std::time::Duration;

use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use super::context::Ctx;
use super::diagnostics;
use super::troubles::{self, Troubles};
use super::{Done, StepError};
use crate::k8s::conditions::{self, pod_troubles};
use crate::poll::{Poller, Probe};
use crate::scenario::{ConditionWait, ObjectRef, PodRef, Wait};

/// Runs a wait step (`timeout` as the step gives it, or its default).
pub async fn run(ctx: &Ctx, wait: &Wait, mut timeout: Duration) -> Result<Done, StepError> {
    if let Some(cap) = ctx.wait_cap {
        timeout = timeout.min(cap);
    }
    if let Some(object) = &wait.rollout {
        rollout(ctx, object, timeout).await
    } else if let Some(p) = &wait.pods_ready {
        pods_ready(ctx, p, timeout).await
    } else if let Some(c) = &wait.condition {
        condition(ctx, c, timeout).await
    } else if let Some(object) = &wait.deleted {
        deleted(ctx, object, timeout)
            .await
            .map(|_| Done { output: format!("{} deleted", object.kind.to_lowercase()), ..Done::default() })
    } else {
        Err(StepError::Invalid("wait needs rollout, podsReady, deleted or condition".into()))
    }
}

fn selector_of(object: &Value) -> String {
    object["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until a Deployment or StatefulSet has rolled out (also the rolling
/// update of an `httpLoad` drill).
pub async fn rollout(ctx: &Ctx, object: &ObjectRef, timeout: Duration) -> Result<Done, StepError> {
    let name = ctx.render(object.name.as_deref().unwrap_or_default());
    let ns = object.namespace.as_deref().map(|n| ctx.render(n));
    let (api, _, _) = ctx.api(object.api_version.as_deref(), &object.kind, ns.as_deref()).await?;
    // The watch only wakes the loop early; a dropped watch backs off and
    // resumes, and the 1 s interval carries on meanwhile.
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let changes = watcher::watcher(api.clone(), config).default_backoff();
    let mut troubles_seen: Vec<String> = Vec::new();
    let mut troubles = Troubles::default();
    let mut selector = String::new();
    let waited = Poller::new(timeout)
        .every(Duration::from_secs(1))
        .woken_by(changes)
        .until(async |elapsed| {
            let mut reason = format!("{} {name} not found", object.kind);
            let named = ObjectRef { name: Some(name.clone()), selector: None, ..object.clone() };
            if let Some(value) = ctx.find(&named).await? {
                selector = selector_of(&value);
                match conditions::rollout_complete(&value) {
                    Ok(()) => {
                        let pods =
                            PodRef { selector: Some(selector.clone()), namespace: ns.clone(), name: None, node: None };
                        let pods =
                            if selector.is_empty() { Vec::new() } else { ctx.pods(&pods).await.unwrap_or_default() };
                        match pods.iter().find_map(troubles::settling) {
                            None => return Ok::<_, StepError>(Probe::Ready(Ok((value, elapsed)))),
                            Some(why) => reason = why,
                        }
                    }
                    Err(why) => reason = why,
                }
            }
            // Say what the pods are going through; a pull back-off may resolve itself.
            if !selector.is_empty() {
                let pods = PodRef { selector: Some(selector.clone()), namespace: ns.clone(), name: None, node: None };
                for pod in ctx.pods(&pods).await.unwrap_or_default() {
                    if let Some(why) = troubles.hopeless(&pod, elapsed) {
                        return Ok(Probe::Ready(Err(format!("{reason}; {why}"))));
                    }
                    for trouble in pod_troubles(&pod) {
                        let line = format!("pod {}: {trouble}", pod["metadata"]["name"].as_str().unwrap_or_default());
                        if !troubles_seen.contains(&line) {
                            ctx.progress(&format!("{line} (waiting it out)"));
                            troubles_seen.push(line);
                        }
                    }
                }
            }
            ctx.progress(&format!("{reason} ({:.0}s)", elapsed.as_secs_f64()));
            Ok(Probe::NotYet(reason))
        })
        .await?;
    let diagnose = async || {
        if selector.is_empty() { None } else { diagnostics::for_selector(ctx, ns.as_deref(), &selector).await }
    };
    let expected = format!("{} {name} rolled out within {}s", object.kind, timeout.as_secs());
    let looked_at = format!("{}/{name} status", object.kind.to_lowercase());
    match waited {
        Ok(Err(hopeless)) => Err(StepError::Failed {
            expected,
            actual: hopeless,
            looked_at,
            output: String::new(),
            diagnostics: diagnose().await,
        }),
        Ok(Ok((value, elapsed))) => {
            let ready = value["status"]["readyReplicas"].as_i64().unwrap_or(0);
            let replicas = value["spec"]["replicas"].as_i64().unwrap_or(1);
            let output =
                format!("{} \"{name}\" successfully rolled out\nREADY {ready}/{replicas}", object.kind.to_lowercase());
            let message = (!troubles_seen.is_empty())
                .then(|| format!("waited out transient pod troubles: {}", troubles_seen.join("; ")));
            let mut done = Done { output, message, ..Done::default() };
            done.measure("rollout time", elapsed.as_secs_f64() * 1000.0, "ms");
            Ok(done)
        }
        Err(timed_out) => Err(StepError::Failed {
            expected,
            actual: timed_out.last,
            looked_at,
            output: String::new(),
            diagnostics: diagnose().await,
        }),
    }
}

async fn pods_ready(ctx: &Ctx, p: &crate::scenario::PodsReady, timeout: Duration) -> Result<Done, StepError> {
    let want = p.count.unwrap_or(1) as usize;
    let pod_ref =
        PodRef { selector: p.selector.clone(), namespace: p.namespace.clone(), name: p.name.clone(), node: None };
    let selector = match (&p.name, &p.selector) {
        (Some(name), _) => format!("pod/{}", ctx.render(name)),
        (None, selector) => format!("pods -l {}", ctx.render(selector.as_deref().unwrap_or_default())),
    };
    let mut last_seen: Vec<Value> = Vec::new();
    let mut troubles = Troubles::default();
    let waited = Poller::new(timeout)
        .until(async |elapsed| {
            last_seen = ctx.pods(&pod_ref).await?;
            if let Some(why) = last_seen.iter().find_map(|pod| troubles.hopeless(pod, elapsed)) {
                return Ok(Probe::Ready(Err(why)));
            }
            let settling: Vec<String> = last_seen.iter().filter_map(troubles::settling).collect();
            let ready: Vec<&str> = last_seen
                .iter()
                .filter(|p| conditions::pod_ready(p) && troubles::settling(p).is_none())
                .filter_map(|p| p["metadata"]["name"].as_str())
                .collect();
            if ready.len() >= want {
                let output = ready.iter().map(|n| format!("pod/{n} condition met")).collect::<Vec<_>>().join("\n");
                return Ok::<_, StepError>(Probe::Ready(Ok((output, elapsed))));
            }
            ctx.progress(&format!("{} of {want} pods Ready ({:.0}s)", ready.len(), elapsed.as_secs_f64()));
            // "0 of 0 Ready" hides the usual mistake: nothing matches.
            Ok(Probe::NotYet(if last_seen.is_empty() {
                format!("no pod matches ({selector})")
            } else if let Some(why) = settling.first() {
                format!("{} of {} Ready; {why}", ready.len(), last_seen.len())
            } else {
                format!("{} of {} Ready", ready.len(), last_seen.len())
            }))
        })
        .await?;
    let expected = format!("{want} Ready pod(s) ({selector}) within {}s", timeout.as_secs());
    let (actual, diagnostics) = match waited {
        Ok(Ok((output, elapsed))) => {
            let mut done = Done { output, ..Done::default() };
            done.measure("time to ready", elapsed.as_secs_f64() * 1000.0, "ms");
            return Ok(done);
        }
        Ok(Err(hopeless)) => (hopeless, diagnostics::for_pods(ctx, &last_seen).await),
        Err(timed_out) => (timed_out.last, diagnostics::for_pods(ctx, &last_seen).await),
    };
    Err(StepError::Failed { expected, actual, looked_at: selector, output: String::new(), diagnostics })
}

/// Waits until an object (every object a selector matches, at least one)
/// has a condition with a status; a pod that cannot get there (a crash loop)
/// ends the wait early, as for `podsReady`.
async fn condition(ctx: &Ctx, c: &ConditionWait, timeout: Duration) -> Result<Done, StepError> {
    let want = c.status.as_deref().unwrap_or("True");
    let kind = c.object.kind.to_lowercase();
    let shown = match (&c.object.name, &c.object.selector) {
        (Some(name), _) => format!("{kind}/{}", ctx.render(name)),
        (None, selector) => format!("{kind} -l {}", ctx.render(selector.as_deref().unwrap_or_default())),
    };
    let mut troubles = Troubles::default();
    let waited = Poller::new(timeout)
        .until(async |elapsed| {
            let objects = ctx.find_all(&c.object).await?;
            if c.object.kind == "Pod"
                && let Some(why) = objects.iter().find_map(|pod| troubles.hopeless(pod, elapsed))
            {
                return Ok::<_, StepError>(Probe::Ready(Err(why)));
            }
            let status_of = |o: &Value| {
                o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|cond| cond["type"] == c.condition_type.as_str())
                    .and_then(|cond| cond["status"].as_str())
                    .map(String::from)
            };
            let lagging: Vec<String> = objects
                .iter()
                .filter(|o| status_of(o).as_deref() != Some(want))
                .map(|o| {
                    let name = o["metadata"]["name"].as_str().unwrap_or_default();
                    match status_of(o) {
                        Some(s) => format!("{kind}/{name}: {} is {s}", c.condition_type),
                        None => format!("{kind}/{name}: no condition {}", c.condition_type),
                    }
                })
                .collect();
            if objects.is_empty() {
                return Ok(Probe::NotYet(format!("nothing matches ({shown})")));
            }
            if lagging.is_empty() {
                let met = objects
                    .iter()
                    .map(|o| format!("{kind}/{} condition met", o["metadata"]["name"].as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Ok(Probe::Ready(Ok((met, elapsed))));
            }
            ctx.progress(&format!("{} ({:.0}s)", lagging.join("; "), elapsed.as_secs_f64()));
            Ok(Probe::NotYet(lagging.join("; ")))
        })
        .await?;
    let actual = match waited {
        Ok(Ok((output, elapsed))) => {
            let mut done = Done { output, ..Done::default() };
            done.measure("time to condition", elapsed.as_secs_f64() * 1000.0, "ms");
            return Ok(done);
        }
        Ok(Err(hopeless)) => hopeless,
        Err(timed_out) => timed_out.last,
    };
    Err(StepError::failed(
        format!("{} {want} on {shown} within {}s", c.condition_type, timeout.as_secs()),
        actual,
        shown,
    ))
}

/// Waits until an object is gone.
pub async fn deleted(ctx: &Ctx, object: &ObjectRef, timeout: Duration) -> Result<(), StepError> {
    let waited = Poller::new(timeout)
        .every(Duration::from_millis(200))
        .until(async |_| {
            Ok::<_, StepError>(match ctx.find(object).await? {
                None => Probe::Ready(()),
                Some(_) => Probe::NotYet("still present".into()),
            })
        })
        .await?;
    waited.map_err(|timed_out| {
        StepError::failed(
            format!("{} gone within {}s", object.kind, timeout.as_secs()),
            timed_out.last,
            format!(
                "{} {}",
                object.kind,
                ctx.render(object.name.as_deref().or(object.selector.as_deref()).unwrap_or_default())
            ),
        )
    })
}

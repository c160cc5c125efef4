//! `wait`: a rollout, ready pods or a deletion, driven by a watch, with a
//! deadline, progress on the way, and transient pod troubles (an
//! ImagePullBackOff that resolves) reported rather than fatal.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::watcher;
use serde_json::Value;

use super::context::Ctx;
use super::diagnostics;
use super::{Done, StepError};
use crate::kube::conditions::{self, pod_troubles};
use crate::scenario::{ObjectRef, Wait, parse_duration};

/// Default wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a wait step.
pub async fn run(ctx: &Ctx, wait: &Wait) -> Result<Done, StepError> {
    let mut timeout = wait.timeout.as_deref().and_then(parse_duration).unwrap_or(DEFAULT_TIMEOUT);
    if let Some(cap) = ctx.wait_cap {
        timeout = timeout.min(cap);
    }
    if let Some(object) = &wait.rollout {
        rollout(ctx, object, timeout).await
    } else if let Some(p) = &wait.pods_ready {
        pods_ready(ctx, p, timeout).await
    } else if let Some(object) = &wait.deleted {
        deleted(ctx, object, timeout)
            .await
            .map(|_| Done { output: format!("{} deleted", object.kind.to_lowercase()), ..Done::default() })
    } else {
        Err(StepError::Invalid("wait needs rollout, podsReady or deleted".into()))
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

async fn rollout(ctx: &Ctx, object: &ObjectRef, timeout: Duration) -> Result<Done, StepError> {
    let name = ctx.render(object.name.as_deref().unwrap_or_default());
    let ns = object.namespace.as_deref().map(|n| ctx.render(n));
    let (api, _, _) = ctx.api(object.api_version.as_deref(), &object.kind, ns.as_deref()).await?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api.clone(), config).boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_reason = format!("{} {name} not found", object.kind);
    let mut troubles_seen: Vec<String> = Vec::new();
    let mut selector = String::new();
    loop {
        if let Some(current) = api.get_opt(&name).await? {
            let value = serde_json::to_value(&current).unwrap_or(Value::Null);
            selector = selector_of(&value);
            match conditions::rollout_complete(&value) {
                Ok(()) => {
                    let mut output = format!("{} \"{name}\" successfully rolled out", object.kind.to_lowercase());
                    let ready = value["status"]["readyReplicas"].as_i64().unwrap_or(0);
                    let replicas = value["spec"]["replicas"].as_i64().unwrap_or(1);
                    output.push_str(&format!("\nREADY {ready}/{replicas}"));
                    let message = (!troubles_seen.is_empty())
                        .then(|| format!("waited out transient pod troubles: {}", troubles_seen.join("; ")));
                    let mut done = Done { output, message, ..Done::default() };
                    done.measure("rollout time", started.elapsed().as_secs_f64() * 1000.0, "ms");
                    return Ok(done);
                }
                Err(reason) => last_reason = reason,
            }
        }
        // Say what the pods are going through; a pull back-off may resolve itself.
        if !selector.is_empty()
            && let Ok(pods) = ctx
                .pods(&crate::scenario::PodRef { selector: Some(selector.clone()), namespace: ns.clone(), name: None })
                .await
        {
            for pod in &pods {
                for trouble in pod_troubles(pod) {
                    let line = format!("pod {}: {trouble}", pod["metadata"]["name"].as_str().unwrap_or_default());
                    if !troubles_seen.contains(&line) {
                        ctx.progress(&format!("{line} (waiting it out)"));
                        troubles_seen.push(line);
                    }
                }
            }
        }
        ctx.progress(&format!("{last_reason} ({:.0}s)", started.elapsed().as_secs_f64()));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                let diagnostics = if selector.is_empty() { None } else { diagnostics::for_selector(ctx, ns.as_deref(), &selector).await };
                return Err(StepError::Failed {
                    expected: format!("{} {name} rolled out within {}s", object.kind, timeout.as_secs()),
                    actual: last_reason,
                    looked_at: format!("{}/{name} status", object.kind.to_lowercase()),
                    output: String::new(),
                    diagnostics,
                });
            }
            _ = events.next() => {}
            _ = tick.tick() => {}
        }
    }
}

async fn pods_ready(ctx: &Ctx, p: &crate::scenario::PodsReady, timeout: Duration) -> Result<Done, StepError> {
    let want = p.count.unwrap_or(1) as usize;
    let selector = ctx.render(&p.selector);
    let pod_ref =
        crate::scenario::PodRef { selector: Some(selector.clone()), namespace: p.namespace.clone(), name: None };
    let started = Instant::now();
    loop {
        let pods = ctx.pods(&pod_ref).await?;
        let ready: Vec<&Value> = pods.iter().filter(|p| conditions::pod_ready(p)).collect();
        if ready.len() >= want {
            let names: Vec<&str> = ready.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
            let output = names.iter().map(|n| format!("pod/{n} condition met")).collect::<Vec<_>>().join("\n");
            let mut done = Done { output, ..Done::default() };
            done.measure("time to ready", started.elapsed().as_secs_f64() * 1000.0, "ms");
            return Ok(done);
        }
        if started.elapsed() >= timeout {
            return Err(StepError::Failed {
                expected: format!("{want} Ready pod(s) matching {selector} within {}s", timeout.as_secs()),
                actual: format!("{} of {} Ready", ready.len(), pods.len()),
                looked_at: format!("pods -l {selector}"),
                output: String::new(),
                diagnostics: diagnostics::for_pods(ctx, &pods).await,
            });
        }
        ctx.progress(&format!("{} of {want} pods Ready ({:.0}s)", ready.len(), started.elapsed().as_secs_f64()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until an object is gone.
pub async fn deleted(ctx: &Ctx, object: &ObjectRef, timeout: Duration) -> Result<(), StepError> {
    let started = Instant::now();
    loop {
        if ctx.find(object).await?.is_none() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(StepError::failed(
                format!("{} gone within {}s", object.kind, timeout.as_secs()),
                "still present",
                format!(
                    "{} {}",
                    object.kind,
                    ctx.render(object.name.as_deref().or(object.selector.as_deref()).unwrap_or_default())
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

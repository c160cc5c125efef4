//! `onFailure`: what a scenario's author asks to see when a step does not
//! pass (logs of given pods, a namespace's events, an object dump), added to
//! the automatic diagnostics. Collecting only reads, and a collector that
//! cannot read says why instead of failing the step a second time.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

use super::context::Ctx;
use crate::scenario::{Collector, EventsCollector, LogsCollector, ObjectRef};

/// How many log lines, unless the collector says.
const LOG_TAIL: u32 = 50;
/// How many events, unless the collector says.
const EVENTS: u32 = 20;

/// Everything the collectors gather, as text (secrets redacted).
pub async fn collect(ctx: &Ctx, collectors: &[&Collector]) -> String {
    let mut out = String::new();
    for c in collectors {
        let part = match (&c.logs, &c.events, &c.get) {
            (Some(l), None, None) => logs(ctx, l).await,
            (None, Some(e), None) => events(ctx, e).await,
            (None, None, Some(o)) => dump(ctx, o).await,
            // validate refuses these; a scenario run without it says so here.
            _ => "onFailure: a collector needs exactly one of logs, events, get\n".into(),
        };
        out.push_str(&part);
    }
    ctx.redact(&out)
}

async fn logs(ctx: &Ctx, l: &LogsCollector) -> String {
    let tail = l.tail.unwrap_or(LOG_TAIL);
    let pods = match ctx.pods(&l.pod).await {
        Ok(pods) if pods.is_empty() => return format!("onFailure logs: no {}\n", ctx.describe_pod(&l.pod)),
        Ok(pods) => pods,
        Err(e) => return format!("onFailure logs of {}: {}\n", ctx.describe_pod(&l.pod), super::error_text(&e)),
    };
    let mut out = String::new();
    for pod in pods.iter().take(3) {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace);
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        let containers: Vec<String> = match &l.container {
            Some(c) => vec![ctx.render(c)],
            None => names(&pod["spec"]["containers"]),
        };
        for container in containers {
            let params = LogParams {
                tail_lines: Some(tail.into()),
                container: Some(container.clone()),
                previous: l.previous,
                ..LogParams::default()
            };
            let which = if l.previous { "previous " } else { "" };
            out.push_str(&format!("logs of pod {ns}/{name}, {which}container {container} (last {tail} lines):\n"));
            match api.logs(name, &params).await {
                Ok(text) if text.trim().is_empty() => out.push_str("  (empty)\n"),
                Ok(text) => text.lines().for_each(|line| out.push_str(&format!("  {line}\n"))),
                Err(e) => out.push_str(&format!("  (cannot read: {e})\n")),
            }
        }
    }
    out
}

fn names(containers: &Value) -> Vec<String> {
    containers.as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(String::from)).collect()
}

async fn events(ctx: &Ctx, e: &EventsCollector) -> String {
    let ns = e.namespace.as_deref().map(|n| ctx.render(n)).unwrap_or_else(|| ctx.namespace.clone());
    let last = e.last.unwrap_or(EVENTS) as usize;
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    let mut items = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(err) => return format!("onFailure events of namespace {ns}: {err}\n"),
    };
    super::diagnostics::sort_events(&mut items);
    let mut out = format!("events of namespace {ns} (last {last}):\n");
    if items.is_empty() {
        out.push_str("  (none)\n");
    }
    for e in items.iter().rev().take(last).rev() {
        let object = &e.involved_object;
        out.push_str(&format!(
            "  {} {} {}/{}: {}\n",
            e.type_.as_deref().unwrap_or_default(),
            e.reason.as_deref().unwrap_or_default(),
            object.kind.as_deref().unwrap_or_default().to_lowercase(),
            object.name.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default().trim_end()
        ));
    }
    out
}

async fn dump(ctx: &Ctx, object: &ObjectRef) -> String {
    let what = ctx.describe_object(object);
    match ctx.find(object).await {
        Ok(Some(mut found)) => {
            if let Some(meta) = found["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
            let yaml = serde_yaml_ng::to_string(&found).unwrap_or_default();
            let mut out = format!("{what}:\n");
            yaml.lines().for_each(|line| out.push_str(&format!("  {line}\n")));
            out
        }
        Ok(None) => format!("{what}: not found\n"),
        Err(e) => format!("onFailure get {what}: {}\n", super::error_text(&e)),
    }
}

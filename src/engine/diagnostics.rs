//! What a failed step collects so that the failure explains itself: pod
//! status, container states, recent events and the last log lines.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

use super::context::Ctx;

const LOG_LINES: i64 = 20;

/// Events oldest first. Events of the events.k8s.io API (the scheduler's)
/// have an event time and no last timestamp.
pub fn sort_events(items: &mut [k8s_openapi::api::core::v1::Event]) {
    items.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)));
}

/// Diagnostics for these pods (at most three), as text.
pub async fn for_pods(ctx: &Ctx, pods: &[Value]) -> Option<String> {
    if pods.is_empty() {
        return None;
    }
    let mut out = String::new();
    for pod in pods.iter().take(3) {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace);
        out.push_str(&format!("pod {ns}/{name}: phase {}\n", pod["status"]["phase"].as_str().unwrap_or("Unknown")));
        for c in pod["status"]["conditions"].as_array().into_iter().flatten().filter(|c| c["status"] != "True") {
            out.push_str(&format!(
                "  condition {} is {}{}\n",
                c["type"].as_str().unwrap_or_default(),
                c["status"].as_str().unwrap_or_default(),
                c["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default()
            ));
        }
        for list in ["initContainerStatuses", "containerStatuses"] {
            for c in pod["status"][list].as_array().into_iter().flatten() {
                let state = c["state"].as_object().and_then(|s| s.iter().next());
                let (state_name, detail) = match state {
                    Some((k, v)) => {
                        (k.clone(), v["reason"].as_str().or(v["message"].as_str()).unwrap_or_default().to_string())
                    }
                    None => ("unknown".into(), String::new()),
                };
                let message = c["state"]["waiting"]["message"].as_str().map(|m| format!(": {m}")).unwrap_or_default();
                out.push_str(&format!(
                    "  container {}: {state_name} {detail}{message} (ready {}, restarts {})\n",
                    c["name"].as_str().unwrap_or_default(),
                    c["ready"],
                    c["restartCount"]
                ));
            }
        }
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(ctx.client.clone(), ns);
        let selector = format!("involvedObject.name={name}");
        if let Ok(list) = events.list(&ListParams::default().fields(&selector)).await {
            let mut items = list.items;
            sort_events(&mut items);
            for e in items.iter().rev().take(8).rev() {
                out.push_str(&format!(
                    "  event {} {}: {}\n",
                    e.type_.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default()
                ));
            }
        }
        let logs: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        let first = pod["spec"]["containers"][0]["name"].as_str().map(String::from);
        let params = LogParams { tail_lines: Some(LOG_LINES), container: first, ..LogParams::default() };
        if let Ok(text) = logs.logs(name, &params).await
            && !text.trim().is_empty()
        {
            out.push_str(&format!("  last {LOG_LINES} log lines:\n"));
            for line in text.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    Some(ctx.redact(&out))
}

/// Diagnostics for the pods matching a label selector.
pub async fn for_selector(ctx: &Ctx, namespace: Option<&str>, selector: &str) -> Option<String> {
    let ns = namespace.unwrap_or(&ctx.namespace);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(selector)).await.ok()?;
    let values: Vec<Value> = list.items.into_iter().filter_map(|p| serde_json::to_value(p).ok()).collect();
    if values.is_empty() {
        return Some(format!("no pod in namespace {ns} matches {selector}\n"));
    }
    for_pods(ctx, &values).await
}

//! `capture`: a value read from the cluster for later steps' templates, as
//! the seed's `$(kubectl get pods -o jsonpath=…)` does.

use super::context::Ctx;
use super::{Done, StepError, expect};
use crate::k8s::{conditions, jsonpath};
use crate::scenario::{Capture, CaptureAs};
use serde_json::Value;

/// Runs a capture step.
pub async fn run(ctx: &Ctx, capture: &Capture) -> Result<Done, StepError> {
    let value = if let Some(pods) = &capture.pods {
        let all = ctx.pods(pods).await?;
        let running: Vec<_> =
            all.iter().filter(|p| conditions::pod_running(p) && p["status"]["podIP"].is_string()).collect();
        if let Some(want) = capture.count
            && running.len() != want as usize
        {
            return Err(StepError::failed(
                format!("{want} Running pods"),
                format!("{} Running of {}", running.len(), all.len()),
                ctx.describe_pod(pods),
            ));
        }
        let format = capture.format.clone().unwrap_or_else(|| "{ip}".into());
        running
            .iter()
            .map(|p| {
                format
                    .replace("{ip}", p["status"]["podIP"].as_str().unwrap_or_default())
                    .replace("{name}", p["metadata"]["name"].as_str().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join(capture.separator.as_deref().unwrap_or(" "))
    } else {
        let object =
            capture.object.as_ref().ok_or_else(|| StepError::Invalid("capture needs pods or object".into()))?;
        let path = ctx.render(capture.path.as_deref().unwrap_or_default());
        let found = ctx
            .find(object)
            .await?
            .ok_or_else(|| StepError::failed(format!("{} to exist", object.kind), "not found", object.kind.clone()))?;
        let value = jsonpath::get(&found, &path).map_err(|e| StepError::Invalid(e.to_string()))?;
        match capture.written_as {
            None => expect::show(value),
            Some(CaptureAs::Selector) => label_selector(value.unwrap_or(&Value::Null)).ok_or_else(|| {
                StepError::failed(
                    format!("a label selector at {path}"),
                    expect::show(value),
                    format!("{} {}", object.kind.to_lowercase(), object.name.as_deref().unwrap_or_default()),
                )
            })?,
        }
    };
    ctx.set_var(&capture.name, value.clone());
    Ok(Done { output: format!("{} = {value}", capture.name), ..Done::default() })
}

/// A `LabelSelector` (matchLabels, matchExpressions) as `-l` takes it, terms
/// in a stable order; `None` for anything else or an empty selector (which
/// would select every pod).
fn label_selector(selector: &Value) -> Option<String> {
    let mut terms: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str()?;
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        terms.push(match e["operator"].as_str()? {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    (!terms.is_empty()).then(|| terms.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_as_kubectl_writes_them() {
        let s = serde_json::json!({"matchLabels": {"tier": "cache", "app": "redis"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]},
                                 {"key": "old", "operator": "DoesNotExist"}]});
        assert_eq!(label_selector(&s).unwrap(), "app=redis,tier=cache,env in (a,b),!old");
        assert_eq!(label_selector(&serde_json::json!({})), None, "an empty selector selects everything: refused");
        assert_eq!(label_selector(&serde_json::json!("app=redis")), None);
    }
}

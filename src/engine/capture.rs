//! `capture`: a value read from the cluster for later steps' templates, as
//! the seed's `$(kubectl get pods -o jsonpath=…)` does.

use super::context::Ctx;
use super::{Done, StepError, expect};
use crate::k8s::{conditions, jsonpath};
use crate::scenario::Capture;

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
        expect::show(jsonpath::get(&found, &path).map_err(|e| StepError::Invalid(e.to_string()))?)
    };
    ctx.set_var(&capture.name, value.clone());
    Ok(Done { output: format!("{} = {value}", capture.name), ..Done::default() })
}

//! The autoscaling drill of `httpLoad`: while the load runs, follow the
//! HorizontalPodAutoscaler's target until it has more Ready replicas than
//! before (seconds to scale out, replicas reached); once the load stops,
//! optionally until the HPA brings it back to its minimum (seconds to scale in).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::StepError;
use super::context::Ctx;
use crate::poll::{Poller, Probe};

/// The HPA's target and bounds, read once before the load.
pub struct Target {
    hpa: String,
    deployment: String,
    min_replicas: i64,
    /// Ready replicas when the load began.
    pub baseline: i64,
}

/// What the HPA says about itself, for messages: its conditions' reasons
/// and the ScalingActive message when it is not active.
async fn hpa_story(ctx: &Ctx, hpa: &str) -> String {
    let Ok((api, _, _)) = ctx.api(Some("autoscaling/v2"), "HorizontalPodAutoscaler", None).await else {
        return String::new();
    };
    let Ok(object) = api.get(hpa).await else { return String::new() };
    let value = serde_json::to_value(&object).unwrap_or_default();
    let conditions: Vec<String> = value["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut said = format!("{} {}", c["type"].as_str().unwrap_or("?"), c["reason"].as_str().unwrap_or("?"));
            if c["status"] == "False" && c["type"] == "ScalingActive" {
                said.push_str(&format!(" ({})", c["message"].as_str().unwrap_or_default()));
            }
            said
        })
        .collect();
    format!("HPA {hpa}: {}", if conditions.is_empty() { "no status yet".into() } else { conditions.join(", ") })
}

async fn deployment(ctx: &Ctx, name: &str) -> Result<Value, StepError> {
    let (api, _, _) = ctx.api(Some("apps/v1"), "Deployment", None).await?;
    Ok(serde_json::to_value(api.get(name).await?).unwrap_or_default())
}

fn ready(deployment: &Value) -> i64 {
    deployment["status"]["readyReplicas"].as_i64().unwrap_or(0)
}

impl Target {
    /// Reads the HPA `hpa` and its target Deployment.
    pub async fn of(ctx: &Ctx, hpa: &str) -> Result<Target, StepError> {
        let hpa = ctx.render(hpa);
        let (api, _, _) = ctx.api(Some("autoscaling/v2"), "HorizontalPodAutoscaler", None).await?;
        let object = serde_json::to_value(api.get(&hpa).await?).unwrap_or_default();
        let target = &object["spec"]["scaleTargetRef"];
        if target["kind"] != "Deployment" {
            return Err(StepError::Invalid(format!(
                "httpLoad.autoscale: HPA {hpa} scales a {}, the drill follows Deployments",
                target["kind"].as_str().unwrap_or("?")
            )));
        }
        let name = target["name"].as_str().unwrap_or_default().to_string();
        let baseline = ready(&deployment(ctx, &name).await?);
        Ok(Target {
            min_replicas: object["spec"]["minReplicas"].as_i64().unwrap_or(1),
            hpa,
            deployment: name,
            baseline,
        })
    }

    /// Waits (until `deadline`) for more Ready replicas than at the start;
    /// how long it took from `load_started`.
    pub async fn scaled_out(&self, ctx: &Ctx, load_started: Instant, within: Duration) -> Result<f64, StepError> {
        let outcome = Poller::new(within)
            .until(async |_| {
                let now = ready(&deployment(ctx, &self.deployment).await?);
                Ok::<_, StepError>(if now > self.baseline {
                    Probe::Ready(())
                } else {
                    Probe::NotYet(format!("{now} Ready replicas"))
                })
            })
            .await?;
        match outcome {
            Ok(()) => Ok(load_started.elapsed().as_secs_f64()),
            Err(timed_out) => Err(StepError::failed(
                format!(
                    "HPA {} scales Deployment {} out under load (more than {} Ready replicas)",
                    self.hpa, self.deployment, self.baseline
                ),
                format!(
                    "still {} after {:.0}s of load; {}",
                    timed_out.last,
                    within.as_secs_f64(),
                    hpa_story(ctx, &self.hpa).await
                ),
                format!("deployment/{} status.readyReplicas", self.deployment),
            )),
        }
    }

    /// The replicas the HPA asks for now.
    pub async fn replicas(&self, ctx: &Ctx) -> Result<i64, StepError> {
        Ok(deployment(ctx, &self.deployment).await?["spec"]["replicas"].as_i64().unwrap_or(0))
    }

    /// Waits `within` for the HPA to bring the Deployment back to its
    /// minimum, all Ready; seconds taken.
    pub async fn scaled_in(&self, ctx: &Ctx, within: Duration) -> Result<f64, StepError> {
        let started = Instant::now();
        let outcome = Poller::new(within)
            .until(async |_| {
                let now = deployment(ctx, &self.deployment).await?;
                let wanted = now["spec"]["replicas"].as_i64().unwrap_or(0);
                Ok::<_, StepError>(if wanted <= self.min_replicas && ready(&now) == wanted {
                    Probe::Ready(())
                } else {
                    Probe::NotYet(format!("{wanted} replicas ({} Ready)", ready(&now)))
                })
            })
            .await?;
        match outcome {
            Ok(()) => Ok(started.elapsed().as_secs_f64()),
            Err(timed_out) => Err(StepError::failed(
                format!(
                    "HPA {} scales Deployment {} back to {} within {:.0}s of the load's end",
                    self.hpa,
                    self.deployment,
                    self.min_replicas,
                    within.as_secs_f64()
                ),
                format!("{}; {}", timed_out.last, hpa_story(ctx, &self.hpa).await),
                format!("deployment/{} spec.replicas", self.deployment),
            )),
        }
    }
}

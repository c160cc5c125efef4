//! The HorizontalPodAutoscaler controller: every 15 s (kube-controller-
//! manager's `--horizontal-pod-autoscaler-sync-period`), and at once when an
//! HPA is created or changed, it reads its target's pods' usage from the
//! metrics API's source, computes the replicas each Resource metric asks for
//! (hpa_math.rs), keeps the largest, applies the behavior's stabilization and
//! policies and min/max, scales the target, and writes the status and events
//! as upstream does. Without a metrics source (a lab that runs no pods) the
//! status says that metrics are unavailable, as on a cluster without
//! metrics-server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::hpa_math::{self, History, PodSample, Rules, Target};
use crate::api::metrics::MetricsSource;
use crate::api::objects::{self, Part};
use crate::api::resources::{ResourceType, by_key, by_kind};
use crate::api::selectors::LabelSelector;
use crate::api::store::Store;
use crate::controllers::replicaset::write_status;

/// How often every HPA is reconciled.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

/// The message of an HPA when the lab has no metrics source.
pub const NO_METRICS: &str = "the HPA was unable to compute the replica count: failed to get cpu utilization: \
    unable to get metrics for resource cpu: no metrics server in the runbook lab";

/// Per HPA (by uid): what was last synced and its history.
#[derive(Default)]
struct Memory {
    synced: HashMap<String, (Instant, i64)>,
    history: HashMap<String, History>,
}

/// Runs the controller until `shutdown`.
pub fn spawn(
    store: Arc<Store>,
    metrics: Option<Arc<dyn MetricsSource>>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut memory = Memory::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => reconcile_due(&store, metrics.as_deref(), &mut memory, Instant::now()),
            }
        }
    })
}

fn reconcile_due(store: &Store, metrics: Option<&dyn MetricsSource>, memory: &mut Memory, now: Instant) {
    let Some(rt) = by_kind("autoscaling/v2", "HorizontalPodAutoscaler") else { return };
    let hpas = store.list(rt.key(), None).0;
    let uids: Vec<String> = hpas.iter().filter_map(|h| h["metadata"]["uid"].as_str().map(String::from)).collect();
    memory.synced.retain(|uid, _| uids.contains(uid));
    memory.history.retain(|uid, _| uids.contains(uid));
    for hpa in hpas {
        let uid = hpa["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let generation = hpa["metadata"]["generation"].as_i64().unwrap_or(0);
        let due =
            memory.synced.get(&uid).is_none_or(|(at, g)| *g != generation || now.duration_since(*at) >= SYNC_PERIOD);
        if !due {
            continue;
        }
        memory.synced.insert(uid.clone(), (now, generation));
        let history = memory.history.entry(uid).or_default();
        reconcile(store, rt, &hpa, metrics, history, now);
    }
}

/// The scale target: its resource type and current object.
fn target_of(store: &Store, hpa: &Value) -> Result<(&'static ResourceType, Value), String> {
    let ns = hpa["metadata"]["namespace"].as_str().unwrap_or_default();
    let target = &hpa["spec"]["scaleTargetRef"];
    let (kind, name) = (target["kind"].as_str().unwrap_or_default(), target["name"].as_str().unwrap_or_default());
    let key = match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "ReplicaSet" => "replicasets",
        _ => {
            return Err(format!(
                "the HPA controller was unable to get the target's current scale: no scale for {kind}"
            ));
        }
    };
    let rt = by_key(key).ok_or("unknown target kind")?;
    let object = store.get(key, ns, name).ok_or_else(|| {
        format!("the HPA controller was unable to get the target's current scale: {key}.apps \"{name}\" not found")
    })?;
    Ok((rt, (*object).clone()))
}

fn reconcile(
    store: &Store,
    rt: &'static ResourceType,
    hpa: &Value,
    metrics: Option<&dyn MetricsSource>,
    history: &mut History,
    now: Instant,
) {
    let mut conditions = Conditions::from(hpa);
    let (target_rt, target) = match target_of(store, hpa) {
        Ok(found) => found,
        Err(message) => {
            conditions.set("AbleToScale", "False", "FailedGetScale", &message);
            write(store, rt, hpa, 0, 0, Value::Null, conditions, None);
            objects::record_event(store, hpa, "Warning", "FailedGetScale", &message, "horizontal-pod-autoscaler");
            return;
        }
    };
    let spec = &hpa["spec"];
    let current = target["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
    let min = spec["minReplicas"].as_i64().unwrap_or(1) as i32;
    let max = spec["maxReplicas"].as_i64().unwrap_or(1) as i32;
    conditions.set(
        "AbleToScale",
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    if current == 0 && min != 0 {
        conditions.set(
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        write(store, rt, hpa, current, current, Value::Null, conditions, None);
        return;
    }
    let (desired, current_metrics, reason) = if current > max {
        (max, Value::Null, "Current number of replicas above Spec.MaxReplicas".to_string())
    } else if current < min {
        (min, Value::Null, "Current number of replicas below Spec.MinReplicas".to_string())
    } else {
        let Some(source) = metrics else {
            conditions.set("ScalingActive", "False", "FailedGetResourceMetric", NO_METRICS);
            write(store, rt, hpa, current, current, Value::Null, conditions, None);
            return;
        };
        match recommend(store, hpa, &target, source, current) {
            Ok((replicas, current_metrics, metric_name)) => {
                let message = format!("the HPA was able to successfully calculate a replica count from {metric_name}");
                conditions.set("ScalingActive", "True", "ValidMetricFound", &message);
                // As upstream's recordInitialRecommendation: the count found at
                // first sight is a recommendation, so a fresh HPA does not scale
                // down before its stabilization window has passed.
                if history.recommendations.is_empty() {
                    history.recommendations.push((now, current));
                }
                let up = Rules::from_spec(&spec["behavior"]["scaleUp"], Rules::default_up());
                let down = Rules::from_spec(&spec["behavior"]["scaleDown"], Rules::default_down());
                let limited = hpa_math::normalize(history, now, current, replicas, (min, max), (&up, &down));
                limited_conditions(&mut conditions, &limited, current);
                let reason = if limited.replicas > current {
                    format!("{metric_name} above target")
                } else {
                    "All metrics below target".to_string()
                };
                (limited.replicas, current_metrics, reason)
            }
            Err((reason, message)) => {
                conditions.set("ScalingActive", "False", reason, &message);
                objects::record_event(store, hpa, "Warning", reason, &message, "horizontal-pod-autoscaler");
                write(store, rt, hpa, current, current, Value::Null, conditions, None);
                return;
            }
        }
    };
    let mut scaled_at = None;
    if desired != current {
        let (ns, name) = objects::ns_name(&target);
        let mut next = target.clone();
        next["spec"]["replicas"] = json!(desired);
        if objects::update(store, target_rt, &ns, &name, next, Part::Main).is_ok() {
            hpa_math::record_scale(history, now, current, desired);
            scaled_at = Some(objects::now());
            let message = format!("New size: {desired}; reason: {reason}");
            objects::record_event(store, hpa, "Normal", "SuccessfulRescale", &message, "horizontal-pod-autoscaler");
            let done = format!("the HPA controller was able to update the target scale to {desired}");
            conditions.set("AbleToScale", "True", "SucceededRescale", &done);
        }
    }
    write(store, rt, hpa, current, desired, current_metrics, conditions, scaled_at);
}

/// The replicas the HPA's metrics ask for (the largest), the status's
/// `currentMetrics`, and the name of the metric that asked for the most.
fn recommend(
    store: &Store,
    hpa: &Value,
    target: &Value,
    source: &dyn MetricsSource,
    current: i32,
) -> Result<(i32, Value, String), (&'static str, String)> {
    let ns = hpa["metadata"]["namespace"].as_str().unwrap_or_default();
    let selector =
        LabelSelector::from_object(&target["spec"]["selector"]).map_err(|e| ("InvalidSelector", e.message))?;
    let pods: Vec<Value> = store
        .list("pods", Some(ns))
        .0
        .into_iter()
        .filter(|p| selector.matches(p))
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] != "Failed")
        .map(|p| (*p).clone())
        .collect();
    let usage = source.pods();
    let default_metric = [json!({"type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}})];
    let specs = hpa["spec"]["metrics"].as_array().map(Vec::as_slice).unwrap_or(&default_metric);
    let mut best: Option<(i32, String)> = None;
    let mut current_metrics = Vec::new();
    for metric in specs {
        if metric["type"] != "Resource" {
            let kind = metric["type"].as_str().unwrap_or_default();
            return Err((
                "FailedGetExternalMetric",
                format!("the lab serves resource metrics only, not {kind} metrics"),
            ));
        }
        let resource = metric["resource"]["name"].as_str().unwrap_or("cpu");
        let target = match metric["resource"]["target"]["type"].as_str() {
            Some("Utilization") => {
                Target::Utilization(metric["resource"]["target"]["averageUtilization"].as_i64().unwrap_or(80))
            }
            _ => Target::AverageValue(quantity(&metric["resource"]["target"]["averageValue"], resource)),
        };
        let samples: Vec<PodSample> = pods
            .iter()
            .map(|pod| PodSample {
                usage: usage.iter().find(|u| pod["metadata"]["uid"] == u.uid.as_str()).map(|u| {
                    u.containers
                        .iter()
                        .map(|c| {
                            if resource == "cpu" { (c.cpu_nanocores / 1_000_000) as i64 } else { c.memory_bytes as i64 }
                        })
                        .sum()
                }),
                request: request_of(pod, resource),
                ready: ready(pod),
            })
            .collect();
        let found = hpa_math::replicas_for(current, &samples, target).map_err(|why| {
            let message =
                format!("the HPA was unable to compute the replica count: failed to get {resource} utilization: {why}");
            ("FailedGetResourceMetric", message)
        })?;
        let mut now = json!({"averageValue": format_quantity(found.average, resource)});
        if let Some(percent) = found.utilization {
            now["averageUtilization"] = json!(percent);
        }
        current_metrics.push(json!({"type": "Resource", "resource": {"name": resource, "current": now}}));
        let name = match target {
            Target::Utilization(_) => format!("{resource} resource utilization (percentage of request)"),
            Target::AverageValue(_) => format!("{resource} resource"),
        };
        if best.as_ref().is_none_or(|(r, _)| found.replicas > *r) {
            best = Some((found.replicas, name));
        }
    }
    let (replicas, name) = best.unwrap_or((current, "no metrics".into()));
    Ok((replicas, json!(current_metrics), name))
}

fn ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The pod's request of `resource` summed over its containers (millicores
/// or bytes); None if a container has none.
fn request_of(pod: &Value, resource: &str) -> Option<i64> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .map(|c| {
            let v = &c["resources"]["requests"][resource];
            (!v.is_null()).then(|| quantity(v, resource))
        })
        .sum()
}

/// A quantity in millicores (cpu) or bytes.
fn quantity(v: &Value, resource: &str) -> i64 {
    let text = v.as_str().map(String::from).or_else(|| v.as_number().map(|n| n.to_string())).unwrap_or_default();
    let Ok(q) = runbook_units::Quantity::parse(&text) else { return 0 };
    if resource == "cpu" { q.millis() as i64 } else { q.units_ceil() as i64 }
}

fn format_quantity(amount: i64, resource: &str) -> String {
    if resource == "cpu" { format!("{amount}m") } else { amount.to_string() }
}

fn limited_conditions(conditions: &mut Conditions, limited: &hpa_math::Limited, current: i32) {
    match limited.stabilized {
        Some("ScaleDownStabilized") => conditions.set(
            "AbleToScale",
            "True",
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        ),
        Some(_) => conditions.set(
            "AbleToScale",
            "True",
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        ),
        None if limited.replicas == current => {
            conditions.set("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size")
        }
        None => {}
    }
    let (status, message) = match limited.limit {
        "TooManyReplicas" => ("True", "the desired replica count is more than the maximum replica count"),
        "TooFewReplicas" => ("True", "the desired replica count is less than the minimum replica count"),
        "ScaleUpLimit" => ("True", "the desired replica count is increasing faster than the maximum scale rate"),
        "ScaleDownLimit" => ("True", "the desired replica count is decreasing faster than the maximum scale rate"),
        _ => ("False", "the desired count is within the acceptable range"),
    };
    conditions.set("ScalingLimited", status, limited.limit, message);
}

/// The status conditions, keeping each one's transition time while its
/// status stays.
struct Conditions(Vec<Value>);

impl Conditions {
    fn from(hpa: &Value) -> Self {
        Conditions(hpa["status"]["conditions"].as_array().cloned().unwrap_or_default())
    }

    fn set(&mut self, kind: &str, status: &str, reason: &str, message: &str) {
        let since = self
            .0
            .iter()
            .find(|c| c["type"] == kind && c["status"] == status)
            .map(|c| c["lastTransitionTime"].clone())
            .unwrap_or_else(|| json!(objects::now()));
        self.0.retain(|c| c["type"] != kind);
        let order = ["AbleToScale", "ScalingActive", "ScalingLimited"];
        let at = order.iter().position(|k| *k == kind).unwrap_or(order.len());
        let index = self
            .0
            .iter()
            .position(|c| order.iter().position(|k| c["type"] == *k).unwrap_or(order.len()) > at)
            .unwrap_or(self.0.len());
        self.0.insert(
            index,
            json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}),
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn write(
    store: &Store,
    rt: &'static ResourceType,
    hpa: &Value,
    current: i32,
    desired: i32,
    current_metrics: Value,
    conditions: Conditions,
    scaled_at: Option<String>,
) {
    let last_scale = scaled_at.map(Value::from).unwrap_or_else(|| hpa["status"]["lastScaleTime"].clone());
    let mut status = json!({
        "currentReplicas": current, "desiredReplicas": desired,
        "currentMetrics": current_metrics, "conditions": conditions.0,
    });
    if !last_scale.is_null() {
        status["lastScaleTime"] = last_scale;
    }
    write_status(store, rt, hpa, status);
}

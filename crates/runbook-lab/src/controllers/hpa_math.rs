//! The HorizontalPodAutoscaler's arithmetic, as kube-controller-manager does
//! it (pkg/controller/podautoscaler: replica_calculator.go and the behavior
//! part of horizontal.go): the replica count a resource metric asks for,
//! with the 10% tolerance and the treatment of unready pods and pods without
//! metrics; then the stabilization window and the scaling policies.

use std::time::{Duration, Instant};

/// Changes within this fraction of the target do not scale (the
/// controller's `--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;

/// One pod as the calculation sees it.
#[derive(Debug, Clone)]
pub struct PodSample {
    /// Its usage of the resource (millicores or bytes), if measured.
    pub usage: Option<i64>,
    /// Its request of the resource (millicores or bytes) summed over its containers.
    pub request: Option<i64>,
    /// Ready (Running and Ready condition True).
    pub ready: bool,
}

/// What a metric target asks for.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// `averageUtilization`: percent of the request.
    Utilization(i64),
    /// `averageValue`: per pod, in millicores or bytes.
    AverageValue(i64),
}

/// The outcome: replicas wanted and the metric's current value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recommendation {
    /// Replicas the metric asks for.
    pub replicas: i32,
    /// Current utilization in percent (Utilization targets).
    pub utilization: Option<i64>,
    /// Current average per pod (millicores or bytes).
    pub average: i64,
}

/// The replicas a resource metric asks for, given `current` replicas.
pub fn replicas_for(current: i32, pods: &[PodSample], target: Target) -> Result<Recommendation, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let measured: Vec<&PodSample> = pods.iter().filter(|p| p.ready && p.usage.is_some()).collect();
    let missing = pods.iter().filter(|p| p.usage.is_none()).count();
    let unready = pods.iter().filter(|p| !p.ready && p.usage.is_some()).count();
    if measured.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let usage: i64 = measured.iter().map(|p| p.usage.unwrap_or(0)).sum();
    let (ratio, utilization, average) = match target {
        Target::Utilization(percent) => {
            if pods.iter().any(|p| p.request.is_none_or(|r| r <= 0)) {
                return Err("missing request for the resource in a targeted pod".into());
            }
            let requests: i64 = measured.iter().map(|p| p.request.unwrap_or(0)).sum();
            let utilization = usage * 100 / requests.max(1);
            (utilization as f64 / percent as f64, Some(utilization), usage / measured.len() as i64)
        }
        Target::AverageValue(per_pod) => {
            let average = usage / measured.len() as i64;
            (usage as f64 / (per_pod as f64 * measured.len() as f64), None, average)
        }
    };
    let ready_count = measured.len() as f64;
    let scale_up_with_unready = unready > 0 && ratio > 1.0;
    let recommend = |replicas: i32| Recommendation { replicas, utilization, average };
    if !scale_up_with_unready && missing == 0 {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok(recommend(current));
        }
        return Ok(recommend((ratio * ready_count).ceil() as i32));
    }
    // Pods without metrics count as using all of their share when scaling
    // down and nothing when scaling up; unready pods nothing when scaling up:
    // both dampen the change, as upstream does.
    let share = |p: &PodSample| match target {
        Target::Utilization(percent) => p.request.unwrap_or(0) * percent / 100,
        Target::AverageValue(per_pod) => per_pod,
    };
    let mut counted: Vec<(i64, i64)> = measured.iter().map(|p| (p.usage.unwrap_or(0), share(p))).collect();
    for p in pods.iter().filter(|p| p.usage.is_none()) {
        counted.push((if ratio < 1.0 { share(p) } else { 0 }, share(p)));
    }
    if scale_up_with_unready {
        counted.extend(pods.iter().filter(|p| !p.ready && p.usage.is_some()).map(|p| (0, share(p))));
    }
    let (used, wanted): (i64, i64) = counted.iter().fold((0, 0), |(u, w), (a, b)| (u + a, w + b));
    let new_ratio = used as f64 / wanted.max(1) as f64;
    let reversed = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (1.0 - new_ratio).abs() <= TOLERANCE || reversed {
        return Ok(recommend(current));
    }
    let replicas = (new_ratio * counted.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(recommend(current));
    }
    Ok(recommend(replicas))
}

/// One scaling policy of `behavior`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// `Pods` (true) or `Percent`.
    pub pods: bool,
    /// How many pods or what percent.
    pub value: i64,
    /// Over what period.
    pub period: Duration,
}

/// `behavior.scaleUp` or `behavior.scaleDown`, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `stabilizationWindowSeconds`.
    pub stabilization: Duration,
    /// `selectPolicy`: `Max`, `Min` or `Disabled`.
    pub select: String,
    /// `policies`.
    pub policies: Vec<Policy>,
}

impl Rules {
    /// Kubernetes' scale-up default: no stabilization; the larger of 4 pods
    /// or 100% per 15 s.
    pub fn default_up() -> Rules {
        let period = Duration::from_secs(15);
        Rules {
            stabilization: Duration::ZERO,
            select: "Max".into(),
            policies: vec![Policy { pods: true, value: 4, period }, Policy { pods: false, value: 100, period }],
        }
    }

    /// Kubernetes' scale-down default: 300 s stabilization; 100% per 15 s.
    pub fn default_down() -> Rules {
        Rules {
            stabilization: Duration::from_secs(300),
            select: "Max".into(),
            policies: vec![Policy { pods: false, value: 100, period: Duration::from_secs(15) }],
        }
    }

    /// The rules an HPA's `behavior.scaleUp`/`scaleDown` gives, over `default`.
    pub fn from_spec(spec: &serde_json::Value, default: Rules) -> Rules {
        let mut rules = default;
        if let Some(secs) = spec["stabilizationWindowSeconds"].as_u64() {
            rules.stabilization = Duration::from_secs(secs);
        }
        if let Some(select) = spec["selectPolicy"].as_str() {
            rules.select = select.to_string();
        }
        if let Some(list) = spec["policies"].as_array() {
            rules.policies = list
                .iter()
                .map(|p| Policy {
                    pods: p["type"] == "Pods",
                    value: p["value"].as_i64().unwrap_or(0),
                    period: Duration::from_secs(p["periodSeconds"].as_u64().unwrap_or(15)),
                })
                .collect();
        }
        rules
    }
}

/// What an HPA remembers between syncs.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Recommendations before stabilization, with when.
    pub recommendations: Vec<(Instant, i32)>,
    /// Replicas added by each scale-up, with when.
    pub ups: Vec<(Instant, i32)>,
    /// Replicas removed by each scale-down, with when.
    pub downs: Vec<(Instant, i32)>,
}

/// Why the count was held or limited: a condition reason and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    /// The replica count to set.
    pub replicas: i32,
    /// AbleToScale's reason when stabilization held the count back.
    pub stabilized: Option<&'static str>,
    /// ScalingLimited's reason (`DesiredWithinRange`, `TooManyReplicas`, …).
    pub limit: &'static str,
}

/// Applies stabilization, policies and min/max to `desired`.
pub fn normalize(
    history: &mut History,
    now: Instant,
    current: i32,
    desired: i32,
    (min, max): (i32, i32),
    (up, down): (&Rules, &Rules),
) -> Limited {
    // Stabilization: the lowest recommendation of the scale-up window and
    // the highest of the scale-down window bound the change.
    let mut up_bound = desired;
    let mut down_bound = desired;
    for (at, rec) in &history.recommendations {
        if now.duration_since(*at) < up.stabilization {
            up_bound = up_bound.min(*rec);
        }
        if now.duration_since(*at) < down.stabilization {
            down_bound = down_bound.max(*rec);
        }
    }
    let keep = up.stabilization.max(down.stabilization);
    history.recommendations.retain(|(at, _)| now.duration_since(*at) < keep);
    history.recommendations.push((now, desired));
    let mut replicas = current.max(up_bound).min(down_bound);
    let stabilized = if replicas != desired && desired < current {
        Some("ScaleDownStabilized")
    } else if replicas != desired && desired > current {
        Some("ScaleUpStabilized")
    } else {
        None
    };
    let mut limit = "DesiredWithinRange";
    if replicas > current {
        let allowed = scale_limit(history, now, current, up, true).max(current);
        let ceiling = max.min(allowed);
        if replicas > ceiling {
            replicas = ceiling;
            limit = if allowed < max { "ScaleUpLimit" } else { "TooManyReplicas" };
        }
    } else if replicas < current {
        let allowed = scale_limit(history, now, current, down, false).min(current);
        let floor = min.max(allowed);
        if replicas < floor {
            replicas = floor;
            limit = if allowed > min { "ScaleDownLimit" } else { "TooFewReplicas" };
        }
    }
    Limited { replicas, stabilized, limit }
}

/// How far the policies let the count go from `current` now.
fn scale_limit(history: &History, now: Instant, current: i32, rules: &Rules, up: bool) -> i32 {
    if rules.select == "Disabled" {
        return current;
    }
    // Max picks the policy allowing the most change, Min the least.
    let most_change = rules.select != "Min";
    let mut result: Option<i32> = None;
    for policy in &rules.policies {
        let within = |events: &[(Instant, i32)]| -> i32 {
            events.iter().filter(|(at, _)| now.duration_since(*at) < policy.period).map(|(_, n)| n).sum()
        };
        let start = current - within(&history.ups) + within(&history.downs);
        let proposed = match (policy.pods, up) {
            (true, true) => start + policy.value as i32,
            (false, true) => (start as f64 * (1.0 + policy.value as f64 / 100.0)).ceil() as i32,
            (true, false) => start - policy.value as i32,
            (false, false) => (start as f64 * (1.0 - policy.value as f64 / 100.0)) as i32,
        };
        let better = |a: i32, b: i32| if up == most_change { a.max(b) } else { a.min(b) };
        result = Some(result.map_or(proposed, |r| better(r, proposed)));
    }
    result.unwrap_or(current)
}

/// Records a change of the replica count, for the policies' periods.
pub fn record_scale(history: &mut History, now: Instant, from: i32, to: i32) {
    let longest = Duration::from_secs(1800);
    history.ups.retain(|(at, _)| now.duration_since(*at) < longest);
    history.downs.retain(|(at, _)| now.duration_since(*at) < longest);
    if to > from {
        history.ups.push((now, to - from));
    } else if to < from {
        history.downs.push((now, from - to));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(usage: i64, request: i64) -> PodSample {
        PodSample { usage: Some(usage), request: Some(request), ready: true }
    }

    #[test]
    fn utilization_over_target_scales_by_the_ratio() {
        // 2 pods at 150m of 100m requested against a 75% target: 200% / 75% × 2 = 5.33 → 6.
        let r = replicas_for(2, &[pod(150, 100), pod(250, 100)], Target::Utilization(75)).unwrap();
        assert_eq!((r.replicas, r.utilization), (6, Some(200)));
    }

    #[test]
    fn changes_within_the_tolerance_keep_the_count() {
        let r = replicas_for(3, &[pod(80, 100), pod(80, 100), pod(80, 100)], Target::Utilization(75)).unwrap();
        assert_eq!(r.replicas, 3, "80% against 75% is within 10%");
    }

    #[test]
    fn a_pod_without_a_request_is_an_error_and_no_pods_too() {
        let no_request = PodSample { usage: Some(10), request: None, ready: true };
        assert!(replicas_for(1, &[no_request], Target::Utilization(50)).is_err());
        assert!(replicas_for(1, &[], Target::Utilization(50)).is_err());
    }

    #[test]
    fn pods_without_metrics_dampen_a_scale_down() {
        // One idle pod measured, one not: assumed at 100% of target, the
        // ratio is (0 + 75) / 150 = 0.5, so 2 × 0.5 = 1.
        let missing = PodSample { usage: None, request: Some(100), ready: true };
        let r = replicas_for(2, &[pod(0, 100), missing], Target::Utilization(75)).unwrap();
        assert_eq!(r.replicas, 1);
    }

    #[test]
    fn average_value_targets_divide_by_the_per_pod_value() {
        let r = replicas_for(1, &[pod(300, 100)], Target::AverageValue(100)).unwrap();
        assert_eq!((r.replicas, r.average), (3, 300));
    }

    #[test]
    fn scale_up_is_limited_by_the_default_policies() {
        let mut h = History::default();
        let now = Instant::now();
        let (up, down) = (Rules::default_up(), Rules::default_down());
        // From 1, the larger of +4 pods and +100% is 5.
        let l = normalize(&mut h, now, 1, 20, (1, 30), (&up, &down));
        assert_eq!((l.replicas, l.limit), (5, "ScaleUpLimit"));
        let l = normalize(&mut h, now, 1, 20, (1, 3), (&up, &down));
        assert_eq!((l.replicas, l.limit), (3, "TooManyReplicas"));
    }

    #[test]
    fn scale_down_waits_out_the_stabilization_window() {
        let mut h = History::default();
        let start = Instant::now();
        let (up, down) = (Rules::default_up(), Rules::default_down());
        assert_eq!(normalize(&mut h, start, 4, 4, (1, 10), (&up, &down)).replicas, 4);
        let later = start + Duration::from_secs(60);
        let held = normalize(&mut h, later, 4, 1, (1, 10), (&up, &down));
        assert_eq!((held.replicas, held.stabilized), (4, Some("ScaleDownStabilized")));
        let after = start + Duration::from_secs(301);
        assert_eq!(normalize(&mut h, after, 4, 1, (1, 10), (&up, &down)).replicas, 1);
    }

    #[test]
    fn behavior_from_the_spec_overrides_the_defaults() {
        let spec = serde_json::json!({"stabilizationWindowSeconds": 10,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]});
        let rules = Rules::from_spec(&spec, Rules::default_down());
        assert_eq!(rules.stabilization, Duration::from_secs(10));
        assert_eq!(rules.policies, [Policy { pods: true, value: 1, period: Duration::from_secs(60) }]);
        let mut h = History::default();
        let now = Instant::now();
        let l = normalize(&mut h, now, 5, 1, (1, 10), (&Rules::default_up(), &rules));
        assert_eq!((l.replicas, l.limit), (4, "ScaleDownLimit"), "one pod per minute");
    }

    #[test]
    fn disabled_scale_down_never_removes_pods() {
        let rules = Rules { select: "Disabled".into(), ..Rules::default_down() };
        let mut h = History::default();
        let l = normalize(&mut h, Instant::now(), 3, 1, (1, 10), (&Rules::default_up(), &rules));
        assert_eq!(l.replicas, 3);
    }
}

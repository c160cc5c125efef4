//! `discover`: a parameter filled with the name of what plays a role (the
//! Deployment behind the LoadBalancer, the StatefulSet that runs
//! redis-sentinel), so a check grades what the task asks of that object
//! whatever the learner called it. The parameter's own value wins when it
//! plays the role or was given with `--set`; and only `verify` looks
//! (`run` deploys the objects under the scenario's own names).

use super::context::Ctx;
use super::redis_client::{connect, field, query, to_value};
use super::{Done, StepError, roles};
use crate::k8s::conditions;
use crate::scenario::{Discover, MonitoredBy, ObjectRef};
use serde_json::Value;

/// What the step settles on.
#[derive(Debug, PartialEq, Eq)]
enum Choice {
    /// The parameter's value stands: it plays the role, or nothing does.
    Keep,
    /// The one object that plays the role.
    Found(String),
    /// Several play it and the value names none of them.
    Ambiguous,
}

fn choose(current: &str, candidates: &[String]) -> Choice {
    match candidates {
        [] => Choice::Keep,
        _ if candidates.iter().any(|c| c == current) => Choice::Keep,
        [one] => Choice::Found(one.clone()),
        _ => Choice::Ambiguous,
    }
}

/// Runs a discover step.
pub async fn run(ctx: &Ctx, d: &Discover) -> Result<Done, StepError> {
    let current = ctx.vars().get(&d.parameter).cloned().unwrap_or_default();
    let role = describe(ctx, d);
    if ctx.given.contains(&d.parameter) {
        let output = format!("{} = {current} (given: the {role} is not looked for)", d.parameter);
        return Ok(Done { output, ..Done::default() });
    }
    if !ctx.verifying {
        // What this run applies has the scenario's names; looking around
        // could pick up someone else's object and apply over it.
        let output = format!("{} = {current} (this run deploys the {role} under that name)", d.parameter);
        return Ok(Done { output, ..Done::default() });
    }
    let candidates = candidates(ctx, d).await?;
    let listed = if candidates.is_empty() { "none".to_string() } else { candidates.join(", ") };
    let output = match choose(&current, &candidates) {
        Choice::Keep if candidates.is_empty() => {
            format!("{} = {current} (no {role} found; the checks look for {current})", d.parameter)
        }
        Choice::Keep => format!("{} = {current} (the {role}; found: {listed})", d.parameter),
        Choice::Found(name) => {
            ctx.set_var(&d.parameter, name.clone());
            format!("{} = {name} (the {role}, instead of {current})", d.parameter)
        }
        Choice::Ambiguous => {
            return Err(StepError::failed(
                format!("one {role}, or {} naming one of them (--set {}=NAME)", d.parameter, d.parameter),
                format!("{} of them: {listed}", candidates.len()),
                format!("{} in namespace {}", d.kind.as_deref().unwrap_or("Sentinel"), ctx.namespace),
            ));
        }
    };
    Ok(Done { output, ..Done::default() })
}

/// The role in words: `Deployment that runs redis-server`.
pub fn describe(ctx: &Ctx, d: &Discover) -> String {
    let kind = d.kind.clone().unwrap_or_default();
    let named = |o: &ObjectRef| ctx.describe_object(o);
    if let Some(p) = d.runs {
        match &d.within {
            Some(w) => format!("container of {} that runs {}", named(w), p.name()),
            None => format!("{kind} that runs {}", p.name()),
        }
    } else if let Some(t) = &d.behind_service {
        format!("{kind} behind a {t} Service")
    } else if let Some(w) = &d.selects {
        format!("Service that selects the pods of {}", named(w))
    } else if let Some(w) = &d.scales {
        format!("HorizontalPodAutoscaler that scales {}", named(w))
    } else if let Some(w) = &d.mounted_by {
        format!("ConfigMap mounted by {}", named(w))
    } else if let Some(m) = &d.monitored_by {
        format!("master monitored by the Sentinels ({})", ctx.describe_pod(&m.pods))
    } else {
        kind
    }
}

/// The names of everything that plays the role, sorted.
async fn candidates(ctx: &Ctx, d: &Discover) -> Result<Vec<String>, StepError> {
    let kind = d.kind.as_deref().unwrap_or_default();
    let mut names: Vec<String> = if let Some(m) = &d.monitored_by {
        return monitored_masters(ctx, m).await;
    } else if let (Some(program), Some(within)) = (d.runs, &d.within) {
        let Some(workload) = ctx.find(within).await? else { return Ok(Vec::new()) };
        roles::containers(&workload)
            .filter(|c| roles::container_runs(c, program))
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect()
    } else if let Some(program) = d.runs {
        names_where(list(ctx, kind).await?, |w| roles::workload_runs(w, program))
    } else if let Some(service_type) = &d.behind_service {
        let services: Vec<Value> =
            list(ctx, "Service").await?.into_iter().filter(|s| roles::service_type(s) == service_type).collect();
        names_where(list(ctx, kind).await?, |w| {
            services.iter().any(|s| roles::service_selects(s, roles::pod_labels(w)))
        })
    } else if let Some(workload) = &d.selects {
        let Some(workload) = ctx.find(workload).await? else { return Ok(Vec::new()) };
        names_where(list(ctx, "Service").await?, |s| roles::service_selects(s, roles::pod_labels(&workload)))
    } else if let Some(target) = &d.scales {
        let name = ctx.render(target.name.as_deref().unwrap_or_default());
        names_where(list(ctx, "HorizontalPodAutoscaler").await?, |h| roles::hpa_scales(h, &target.kind, &name))
    } else if let Some(workload) = &d.mounted_by {
        match ctx.find(workload).await? {
            Some(w) => roles::mounted_config_maps(&w),
            None => Vec::new(),
        }
    } else {
        return Err(StepError::Invalid("discover needs a role".into()));
    };
    names.sort();
    names.dedup();
    Ok(names)
}

fn names_where(objects: Vec<Value>, plays: impl Fn(&Value) -> bool) -> Vec<String> {
    objects.iter().filter(|o| plays(o)).filter_map(|o| o["metadata"]["name"].as_str().map(String::from)).collect()
}

/// Every object of a kind in the run's namespace, as JSON with its kind set
/// (a list's items do not carry it).
async fn list(ctx: &Ctx, kind: &str) -> Result<Vec<Value>, StepError> {
    let every = ObjectRef { kind: kind.to_string(), selector: Some(String::new()), ..ObjectRef::default() };
    let mut objects = ctx.find_all(&every).await?;
    for object in &mut objects {
        object["kind"] = Value::String(kind.to_string());
    }
    Ok(objects)
}

/// The masters the first answering Sentinel monitors (`SENTINEL MASTERS`).
async fn monitored_masters(ctx: &Ctx, m: &MonitoredBy) -> Result<Vec<String>, StepError> {
    let port = m.port.unwrap_or(26379);
    for pod in ctx.pods(&m.pods).await?.iter().filter(|p| conditions::pod_running(p)) {
        let Ok(mut conn) = connect(ctx, pod, port, None).await else { continue };
        let Ok(reply) = query(&mut conn, &["SENTINEL".into(), "MASTERS".into()]).await else { continue };
        let Value::Array(masters) = to_value(&reply) else { continue };
        let mut names: Vec<String> =
            masters.iter().filter_map(|m| field(m, "name")).filter_map(|n| n.as_str().map(String::from)).collect();
        names.sort();
        return Ok(names);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_wins_when_it_plays_the_role_one_candidate_replaces_it_several_are_ambiguous() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(choose("redis", &names(&[])), Choice::Keep);
        assert_eq!(choose("redis", &names(&["cache", "redis"])), Choice::Keep);
        assert_eq!(choose("counter-service", &names(&["go-lang-app"])), Choice::Found("go-lang-app".into()));
        assert_eq!(choose("redis", &names(&["a", "b"])), Choice::Ambiguous);
    }
}

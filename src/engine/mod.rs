//! The engine: runs a scenario's steps against a cluster through
//! `kube::Client` only (it never knows whether that is the lab), emits events
//! for the reporters, and always runs cleanup.

pub mod apply;
pub mod assert;
pub mod capture;
pub mod cluster;
pub mod command;
pub mod context;
pub mod delete;
pub mod diagnostics;
pub mod exec;
pub mod expect;
pub mod http;
pub mod redis;
pub mod sentinel;
pub mod wait;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::DeleteParams;

use crate::exit;
use crate::report::event::{
    Environment, ErrorKind, Fix, Measurement, Mode, NodeInfo, RunInfo, Status, StepInfo, StepResult, Summary,
};
use crate::report::{Event, Redactor, Reporters};
use crate::scenario::{Scenario, Step, StepKind};
use context::{Applied, Ctx};

/// Why a step did not pass.
#[derive(Debug)]
pub enum StepError {
    /// A check did not hold.
    Failed {
        /// What was expected.
        expected: String,
        /// What was found.
        actual: String,
        /// Where it looked.
        looked_at: String,
        /// The output seen.
        output: String,
        /// Collected for the failure.
        diagnostics: Option<String>,
    },
    /// The scenario or a manifest is wrong.
    Invalid(String),
    /// The cluster or the tool broke.
    Infra(String),
}

impl StepError {
    /// A check that did not hold, with nothing more to show than where it looked.
    pub fn failed(expected: impl Into<String>, actual: impl Into<String>, looked_at: impl Into<String>) -> Self {
        StepError::Failed {
            expected: expected.into(),
            actual: actual.into(),
            looked_at: looked_at.into(),
            output: String::new(),
            diagnostics: None,
        }
    }
}

impl From<kube::Error> for StepError {
    fn from(e: kube::Error) -> Self {
        StepError::Infra(e.to_string())
    }
}

/// What a step produced when it passed.
#[derive(Debug, Default)]
pub struct Done {
    /// Its output.
    pub output: String,
    /// Where it looked.
    pub looked_at: Option<String>,
    /// A note (transient troubles waited out).
    pub message: Option<String>,
    /// The pod a selector chose (for the kubectl equivalent).
    pub resolved_pod: Option<String>,
    /// Values measured.
    pub measurements: Vec<Measurement>,
}

impl Done {
    /// Records a measurement.
    pub fn measure(&mut self, name: &str, value: f64, unit: &str) {
        self.measurements.push(Measurement { name: name.into(), value, unit: unit.into() });
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// run or verify.
    pub mode: Mode,
    /// Parameter overrides.
    pub overrides: Vec<(String, String)>,
    /// Skip cleanup.
    pub keep: bool,
    /// Disruptive steps may run.
    pub allow_disruption: bool,
    /// Cancelled by Ctrl-C or SIGTERM ([`crate::interrupt::watch`]).
    pub interrupt: tokio_util::sync::CancellationToken,
    /// The run's id (`{{ run_id }}`, and the run-id label on what it creates).
    pub run_id: String,
    /// How long cleanup waits for what the run created to be gone.
    pub cleanup_timeout: Duration,
}

/// The cluster a run uses.
pub struct Target {
    /// The client.
    pub client: kube::Client,
    /// The default namespace.
    pub namespace: String,
    /// Context name.
    pub context: String,
    /// Server URL.
    pub server: String,
}

/// Reads the cluster's version and nodes for the report.
async fn environment(client: &kube::Client) -> Environment {
    let version = client.apiserver_version().await.map(|v| v.git_version).unwrap_or_else(|_| "unknown".into());
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let nodes = nodes
        .list(&Default::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|n| {
                    let info = n.status.and_then(|s| s.node_info).unwrap_or_default();
                    NodeInfo {
                        name: n.metadata.name.unwrap_or_default(),
                        os_image: info.os_image,
                        kernel: info.kernel_version,
                        container_runtime: info.container_runtime_version,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Environment { kubernetes_version: version, nodes }
}

fn resources_of(scenario: &Scenario, vars: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for step in &scenario.file.steps {
        if let Some(a) = &step.apply
            && let Ok(docs) = apply::documents(vars, scenario, a)
        {
            for (_, doc) in docs {
                out.push(format!(
                    "{} {}",
                    doc["kind"].as_str().unwrap_or_default(),
                    doc["metadata"]["name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    out
}

async fn run_action(ctx: &Ctx, scenario: &Scenario, step: &Step) -> Result<Done, StepError> {
    let s = &step.spec;
    if let Some(a) = &s.apply {
        apply::run(ctx, scenario, a).await
    } else if let Some(w) = &s.wait {
        wait::run(ctx, w).await
    } else if let Some(e) = &s.exec {
        exec::run(ctx, e).await
    } else if let Some(a) = &s.assert {
        assert::run(ctx, a).await
    } else if let Some(r) = &s.redis {
        redis::run(ctx, r).await
    } else if let Some(d) = &s.delete {
        delete::run(ctx, d).await
    } else if let Some(c) = &s.capture {
        capture::run(ctx, c).await
    } else if let Some(k) = &s.redis_keys {
        cluster::keys(ctx, k).await
    } else if let Some(f) = &s.cluster_failover {
        cluster::failover(ctx, f).await
    } else if let Some(f) = &s.sentinel_failover {
        sentinel::failover(ctx, f).await
    } else if let Some(r) = &s.sentinel_restart {
        sentinel::restart(ctx, r).await
    } else if let Some(r) = &s.replication {
        sentinel::replication(ctx, r).await
    } else if let Some(r) = &s.sentinels {
        sentinel::sentinels(ctx, r).await
    } else if let Some(r) = &s.sentinel_reset {
        sentinel::reset(ctx, r).await
    } else if let Some(h) = &s.http {
        http::check(ctx, h).await
    } else if let Some(l) = &s.http_load {
        http::load(ctx, l).await
    } else {
        Err(StepError::Invalid("the step has no action".into()))
    }
}

/// Runs a step, unless its `unless` probe shows the work is already done.
async fn run_unless(ctx: &Ctx, scenario: &Scenario, step: &Step) -> Result<Done, StepError> {
    if let Some(probe) = &step.spec.unless {
        let spec = crate::scenario::StepFile {
            redis: probe.redis.clone(),
            exec: probe.exec.clone(),
            assert: probe.assert.clone(),
            apply: None,
            wait: None,
            delete: None,
            capture: None,
            redis_keys: None,
            cluster_failover: None,
            sentinel_failover: None,
            sentinel_restart: None,
            replication: None,
            sentinels: None,
            sentinel_reset: None,
            http: None,
            http_load: None,
            unless: None,
            ..step.spec.clone()
        };
        if let Ok(done) = run_action(ctx, scenario, &Step { spec, kind: StepKind::Check }).await {
            let what = done.looked_at.unwrap_or_else(|| "its precondition".into());
            return Ok(Done {
                output: done.output,
                message: Some(format!("already done ({what} holds): not run again")),
                ..Done::default()
            });
        }
    }
    let Some(mut patience) = step.spec.retry_for.as_deref().and_then(crate::scenario::parse_duration) else {
        return run_action(ctx, scenario, step).await;
    };
    if let Some(cap) = ctx.wait_cap {
        patience = patience.min(cap);
    }
    let started = Instant::now();
    loop {
        match run_action(ctx, scenario, step).await {
            Err(StepError::Failed { actual, .. }) if started.elapsed() < patience => {
                ctx.progress(&format!("not yet: {actual} ({:.0}s)", started.elapsed().as_secs_f64()));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            outcome => return outcome,
        }
    }
}

fn step_info(ctx: &Ctx, step: &Step, index: usize, total: usize, resolved_pod: Option<&str>) -> StepInfo {
    let s = &step.spec;
    StepInfo {
        index,
        total,
        id: s.id.clone(),
        title: ctx.render(&s.title),
        kind: step.kind,
        command: ctx.redact(&command::kubectl(s, resolved_pod, &|t| ctx.render(t))),
        explanation: ctx.render(s.explanation.trim()),
        points: s.points,
        hint: s.hint.as_ref().map(|h| ctx.render(h)),
    }
}

fn to_result(ctx: &Ctx, outcome: Result<Done, StepError>, duration: Duration) -> (StepResult, Option<String>) {
    let mut r = StepResult::new(Status::Passed);
    r.duration = duration;
    let mut resolved = None;
    match outcome {
        Ok(done) => {
            r.output = ctx.redact(&done.output);
            r.looked_at = done.looked_at;
            r.message = done.message.map(|m| ctx.redact(&m));
            r.measurements = done.measurements;
            resolved = done.resolved_pod;
        }
        Err(StepError::Failed { expected, actual, looked_at, output, diagnostics }) => {
            r.status = Status::Failed;
            r.expected = Some(ctx.redact(&expected));
            r.actual = Some(ctx.redact(&actual));
            r.looked_at = Some(looked_at);
            r.output = ctx.redact(&output);
            r.diagnostics = diagnostics.map(|d| ctx.redact(&d));
        }
        Err(StepError::Invalid(m)) => {
            r.status = Status::Error;
            r.error_kind = Some(ErrorKind::Invalid);
            r.message = Some(ctx.redact(&m));
        }
        Err(StepError::Infra(m)) => {
            r.status = Status::Error;
            r.error_kind = Some(ErrorKind::Infrastructure);
            r.message = Some(ctx.redact(&m));
        }
    }
    (r, resolved)
}

/// How long verify waits for a rollout that should already be complete.
pub const VERIFY_WAIT_CAP: Duration = Duration::from_secs(15);

/// Runs a scenario and returns the process exit code. Ctrl-C stops the current
/// step; cleanup still runs and the reports are still written.
pub async fn run(
    scenario: &Scenario,
    target: Target,
    options: &RunOptions,
    reporters: Reporters,
) -> anyhow::Result<u8> {
    let mut vars = scenario.parameters(&options.overrides).map_err(exit::invalid)?;
    // `{{ run_id }}`: unique to this run, for names and keys that must not collide.
    vars.insert("run_id".into(), options.run_id.clone());
    let redactor = Redactor::new(scenario.secret_values(&vars));
    let reporters = Arc::new(Mutex::new(reporters));
    let emit = |e: Event| reporters.lock().unwrap_or_else(|p| p.into_inner()).emit(&e);
    let wait_cap = (options.mode == Mode::Verify).then_some(VERIFY_WAIT_CAP);
    let ctx =
        Ctx::new(target.client.clone(), target.namespace.clone(), vars.clone(), redactor, reporters.clone(), wait_cap);
    let started = Instant::now();
    let parameters: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if scenario.file.parameters.get(k).is_some_and(|p| p.secret) {
                    crate::report::REDACTED.into()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    emit(Event::RunStarted(RunInfo {
        scenario: scenario.file.name.clone(),
        title: scenario.file.title.clone(),
        objective: ctx.render(scenario.file.objective.trim()),
        source: scenario.file.source.clone(),
        mode: options.mode,
        namespace: target.namespace.clone(),
        run_id: options.run_id.clone(),
        context: target.context.clone(),
        server: target.server.clone(),
        started_at: crate::lab::api::objects::now(),
        environment: environment(&target.client).await,
        parameters,
        resources: resources_of(scenario, &vars),
    }));

    // Verify runs the checks, and the captures they may need (read-only).
    let steps: Vec<Step> = scenario
        .steps()
        .into_iter()
        .filter(|s| options.mode == Mode::Run || s.kind == StepKind::Check || s.spec.capture.is_some())
        .collect();
    let total = steps.len();
    let mut results: Vec<(StepInfo, StepResult)> = Vec::new();
    let mut stop_reason: Option<String> = None;
    let mut interrupted = false;
    for (i, step) in steps.iter().enumerate() {
        let info = step_info(&ctx, step, i + 1, total, None);
        if let Some(reason) = &stop_reason {
            let mut r = StepResult::new(Status::Skipped);
            r.message = Some(reason.clone());
            emit(Event::StepFinished(info.clone(), r.clone()));
            results.push((info, r));
            continue;
        }
        if step.kind == StepKind::Disruptive && !options.allow_disruption {
            let mut r = StepResult::new(Status::Skipped);
            r.message = Some("disruptive step: runs only on the lab or with --allow-disruption".into());
            emit(Event::StepFinished(info.clone(), r.clone()));
            results.push((info, r));
            continue;
        }
        ctx.set_step(&step.spec.id);
        emit(Event::StepStarted(info.clone()));
        let began = Instant::now();
        let outcome = tokio::select! {
            outcome = run_unless(&ctx, scenario, step) => outcome,
            _ = options.interrupt.cancelled() => {
                interrupted = true;
                Err(StepError::Infra("interrupted (Ctrl-C or SIGTERM)".into()))
            }
        };
        let (mut result, resolved) = to_result(&ctx, outcome, began.elapsed());
        if result.measurements.is_empty() {
            result.measurements = ctx.take_measurements();
        }
        ctx.take_measurements();
        let info = if resolved.is_some() { step_info(&ctx, step, i + 1, total, resolved.as_deref()) } else { info };
        if interrupted {
            stop_reason = Some("the run was interrupted".into());
        } else if result.status == Status::Error || (result.status == Status::Failed && step.kind != StepKind::Check) {
            stop_reason = Some(format!("step {:?} did not pass", step.spec.id));
        }
        emit(Event::StepFinished(info.clone(), result.clone()));
        results.push((info, result));
    }

    let mut leftovers = Vec::new();
    if options.mode == Mode::Run && !options.keep {
        emit(Event::CleanupStarted);
        let cleanup = scenario.cleanup_steps();
        let ctotal = cleanup.len();
        for (i, step) in cleanup.iter().enumerate() {
            ctx.set_step(&step.spec.id);
            let info = step_info(&ctx, step, i + 1, ctotal, None);
            emit(Event::StepStarted(info.clone()));
            let began = Instant::now();
            let (result, _) = to_result(&ctx, run_action(&ctx, scenario, step).await, began.elapsed());
            emit(Event::StepFinished(info, result));
        }
        let deadline = Instant::now() + options.cleanup_timeout;
        let reported = sweep(&ctx, deadline).await;
        leftovers = reported.iter().map(Applied::display).collect();
        leftovers.extend(sweep_labelled(&ctx, &options.run_id, deadline, &reported).await);
    }

    let count = |s: Status| results.iter().filter(|(_, r)| r.status == s).count();
    let (passed, failed, errors, skipped) =
        (count(Status::Passed), count(Status::Failed), count(Status::Error), count(Status::Skipped));
    // Checks and drills score; a drill this cluster does not allow is left out.
    let scored = |i: &StepInfo, r: &StepResult| {
        i.kind == StepKind::Check || i.kind == StepKind::Disruptive && r.status != Status::Skipped
    };
    let possible: u32 = results.iter().filter(|(i, r)| scored(i, r)).map(|(i, _)| i.points.unwrap_or(0)).sum();
    let earned: u32 = results
        .iter()
        .filter(|(i, r)| scored(i, r) && r.status == Status::Passed)
        .map(|(i, _)| i.points.unwrap_or(0))
        .sum();
    let to_fix = results
        .iter()
        .filter(|(i, r)| scored(i, r) && matches!(r.status, Status::Failed | Status::Error))
        .map(fix)
        .collect();
    let invalid = results.iter().any(|(_, r)| r.error_kind == Some(ErrorKind::Invalid));
    let (verdict, code) = if interrupted {
        ("interrupted", exit::INTERRUPTED)
    } else if invalid {
        ("error", exit::INVALID_INPUT)
    } else if errors > 0 {
        ("error", exit::INFRASTRUCTURE)
    } else if failed > 0 {
        ("failed", exit::CHECK_FAILED)
    } else {
        ("passed", exit::SUCCESS)
    };
    emit(Event::RunFinished(Summary {
        verdict: verdict.into(),
        passed,
        failed,
        errors,
        skipped,
        score: (earned, possible),
        duration: started.elapsed(),
        exit_code: code,
        leftovers,
        to_fix,
    }));
    let finished = reporters.lock().unwrap_or_else(|p| p.into_inner()).finish();
    finished?;
    Ok(code)
}

/// What a learner should do about a step that did not pass.
fn fix((info, result): &(StepInfo, StepResult)) -> Fix {
    let advice = match (&info.hint, &result.expected, &result.actual) {
        (Some(hint), _, _) => hint.clone(),
        (None, Some(expected), Some(actual)) => format!("expected {expected}, found {actual}"),
        _ => result.message.clone().unwrap_or_else(|| "see the step's output".into()),
    };
    Fix { id: info.id.clone(), title: info.title.clone(), points: info.points.unwrap_or(0), advice }
}

/// Deletes whatever else carries this run's label (the namespace made for an
/// ephemeral run, say), and returns what could not be removed by `deadline`,
/// leaving out what `sweep` reported already. Only the kinds the run applied,
/// and namespaces, are searched: no discovery of the whole cluster per run.
async fn sweep_labelled(ctx: &Ctx, run_id: &str, deadline: Instant, reported: &[Applied]) -> Vec<String> {
    use crate::kube::leftovers;
    let applied: Vec<Applied> = ctx.applied.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut kinds: Vec<(String, String)> = applied.iter().map(|a| (a.api_version.clone(), a.kind.clone())).collect();
    kinds.push(("v1".into(), "Namespace".into()));
    kinds.sort();
    kinds.dedup();
    let mut types = Vec::new();
    for (api_version, kind) in &kinds {
        if let Ok((_, resource, namespaced)) = ctx.api(Some(api_version), kind, None).await {
            types.push((resource, namespaced));
        }
    }
    let search = leftovers::find_in(&ctx.client, &leftovers::selector(Some(run_id)), None, &types).await;
    // Types it could not list are left to the record `sweep` went by.
    let new: Vec<_> = search
        .found
        .into_iter()
        .filter(|o| {
            !reported.iter().any(|a| {
                a.kind == o.resource.kind && a.name == o.name && a.namespace == o.namespace.clone().unwrap_or_default()
            })
        })
        .collect();
    let patience = deadline.saturating_duration_since(Instant::now());
    leftovers::remove(&ctx.client, &new, patience).await.iter().map(|o| o.display()).collect()
}

/// Deletes whatever the run applied that cleanup left (reverse order), and
/// returns what is still there at `deadline`.
async fn sweep(ctx: &Ctx, deadline: Instant) -> Vec<Applied> {
    let applied: Vec<Applied> = ctx.applied.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut leftovers = Vec::new();
    for a in applied.iter().rev() {
        let ns = (!a.namespace.is_empty()).then_some(a.namespace.as_str());
        let Ok((api, _, _)) = ctx.api(Some(&a.api_version), &a.kind, ns).await else { continue };
        match api.get_opt(&a.name).await {
            Ok(None) => continue,
            Ok(Some(_)) => {
                let _ = api.delete(&a.name, &DeleteParams::background()).await;
                let gone = async {
                    loop {
                        if matches!(api.get_opt(&a.name).await, Ok(None)) {
                            return true;
                        }
                        if Instant::now() >= deadline {
                            return false;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                };
                if !gone.await {
                    leftovers.push(a.clone());
                }
            }
            Err(_) => leftovers.push(a.clone()),
        }
    }
    leftovers
}

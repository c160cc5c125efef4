//! The engine: runs a scenario's steps against a cluster through
//! `kube::Client` only (it never knows whether that is the lab), emits events
//! for the reporters, and always runs cleanup.

pub mod apply;
pub mod assert;
pub mod autoscale;
mod batch;
pub mod capture;
pub mod cleanup;
pub mod cluster;
pub mod cluster_client;
mod cluster_fault;
mod cluster_keys;
mod collectors;
pub mod command;
pub mod context;
mod cut;
pub mod delete;
pub mod diagnostics;
pub mod discover;
mod drill_outcome;
mod drill_writes;
pub mod exec;
pub mod expect;
mod failover_fault;
pub mod host_command;
pub mod http;
mod node_down;
mod partial;
mod partition;
mod password_source;
mod pause;
mod read_cache;
pub mod redis;
pub mod redis_client;
pub mod roles;
pub mod sentinel;
mod sentinel_failover;
mod sentinel_partition;
mod troubles;
pub mod wait;
mod write_ledger;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::exit;
use crate::report::event::{
    Environment, ErrorKind, Fix, Measurement, Mode, NodeInfo, RunInfo, Status, StepInfo, StepResult, Summary, Verdict,
};
use crate::report::{Event, Redactor, Reporters};
use crate::scenario::{Action, Scenario, Step, StepKind};
use context::Ctx;

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
    Infra(InfraError),
    /// The cluster cannot do what a drill needs (a network plugin that does
    /// not enforce NetworkPolicy cannot be partitioned): the step is
    /// skipped, for this reason, and left out of the score.
    NotHere(String),
}

/// Why the cluster or the tool could not do what a step asked. Keeps its
/// source, so a refusal (403), a missing object (404) and a timeout are told
/// apart, not flattened into text.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The API server answered with an error status.
    #[error("the API server answered {code} {reason}: {message}")]
    Api {
        /// The HTTP status (403, 404, 409, 500…).
        code: u16,
        /// Kubernetes' reason (`Forbidden`, `NotFound`…).
        reason: String,
        /// What the API server said.
        message: String,
        /// The error as kube-rs reports it.
        source: kube::Error,
    },
    /// Anything else (a connection, a port-forward, a Redis reply), with
    /// its chain of causes.
    #[error("{0:#}")]
    Other(anyhow::Error),
}

impl InfraError {
    /// The API status code, when the API server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            InfraError::Api { code, .. } => Some(*code),
            InfraError::Other(_) => None,
        }
    }
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

/// A step error in one line, for a note that must not fail in its turn.
fn error_text(e: &StepError) -> String {
    match e {
        StepError::Failed { expected, actual, .. } => format!("expected {expected}, found {actual}"),
        StepError::Invalid(m) => m.clone(),
        StepError::Infra(e) => e.to_string(),
        StepError::NotHere(m) => m.clone(),
    }
}

impl StepError {
    /// An infrastructure error with this message.
    pub fn infra(message: impl std::fmt::Display) -> Self {
        StepError::Infra(InfraError::Other(anyhow::anyhow!("{message}")))
    }

    /// An infrastructure error caused by `source` (kept as its cause).
    pub fn from_source(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StepError::Infra(InfraError::Other(anyhow::Error::new(source)))
    }
}

impl From<kube::Error> for StepError {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(status) => StepError::Infra(InfraError::Api {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
                source: e,
            }),
            _ => StepError::Infra(InfraError::Other(anyhow::Error::new(e))),
        }
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
    /// Wait at the first step that does not pass (`--pause-on-failure`).
    pub pause_on_failure: bool,
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
    /// The kubeconfig `command` steps' programs get (see
    /// [`crate::k8s::client::Connection::kubeconfig`]).
    pub kubeconfig: Option<kube::config::Kubeconfig>,
    /// Whether the cluster answers, when the connection has not awaited it
    /// (see [`crate::k8s::client::connect_unchecked`]): the run awaits it
    /// with its first reads and stops with its message if it does not.
    pub reachable: Option<crate::k8s::client::Reachability>,
}

/// Reads the cluster's version (the answer [`Target::reachable`] awaits,
/// when given: an error if the cluster does not answer) and nodes for the
/// report.
async fn environment(target: &Target) -> anyhow::Result<Environment> {
    let client = &target.client;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let version = async {
        match &target.reachable {
            Some(reachable) => reachable.clone().await.map_err(|e| anyhow::anyhow!(e)),
            None => Ok(client.apiserver_version().await.map(|v| v.git_version).unwrap_or_else(|_| "unknown".into())),
        }
    };
    // Both at once: on a remote cluster each is a round trip.
    let list = Default::default();
    let (version, nodes) = tokio::join!(version, nodes.list(&list));
    let version = version?;
    let nodes = nodes
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
    Ok(Environment { kubernetes_version: version, nodes })
}

/// Under verify, lists every kind the scenario's steps read, all at once,
/// while the cluster's version and nodes are read: on a remote cluster one
/// round trip for what would be one per step (see [`read_cache`]).
async fn prefetch(ctx: &Ctx, scenario: &Scenario) {
    if ctx.reads.is_none() {
        return;
    }
    let steps: Vec<serde_json::Value> =
        scenario.steps().iter().filter_map(|s| serde_json::to_value(&s.spec).ok()).collect();
    let built_in = |kind: &str| context::default_api_version(kind).is_some();
    let lists = read_cache::kinds_named(&steps, built_in).into_iter().map(|kind| async move {
        let every = crate::scenario::ObjectRef { kind, ..Default::default() };
        // A kind that cannot be listed is read as each step asks, with its error.
        let _ = ctx.kept_list(&every).await;
    });
    futures::future::join_all(lists).await;
}

fn resources_of(scenario: &Scenario, vars: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for step in scenario.steps() {
        if let Action::Apply(a) = &step.action
            && let Ok(docs) = crate::scenario::manifest::step_documents(vars, scenario, a)
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

async fn run_action(ctx: &Ctx, scenario: &Scenario, action: &Action) -> Result<Done, StepError> {
    match action {
        Action::Apply(a) => apply::run(ctx, scenario, a).await,
        Action::Wait { spec, timeout } => wait::run(ctx, spec, *timeout).await,
        Action::Exec(e) => exec::run(ctx, e).await,
        Action::Assert(a) => assert::run(ctx, a).await,
        Action::Redis(r) => redis::run(ctx, r).await,
        Action::Delete { spec, timeout } => delete::run(ctx, spec, *timeout).await,
        Action::Capture(c) => capture::run(ctx, c).await,
        Action::Discover(d) => discover::run(ctx, d).await,
        Action::RedisKeys(k) => cluster_keys::keys(ctx, k).await,
        Action::ClusterFailover { spec, timeout } => cluster::failover(ctx, spec, *timeout).await,
        Action::SentinelFailover { spec, timeout } => sentinel_failover::failover(ctx, spec, *timeout).await,
        Action::SentinelRestart { spec, timeout } => sentinel::restart(ctx, spec, *timeout).await,
        Action::Replication(r) => sentinel::replication(ctx, r).await,
        Action::Sentinels(r) => sentinel::sentinels(ctx, r).await,
        Action::SentinelReset(r) => sentinel::reset(ctx, r).await,
        Action::Partition { spec, lasts } => partition::run(ctx, spec, *lasts).await,
        Action::SentinelPartition { spec, lasts, timeout } => {
            sentinel_partition::drill(ctx, spec, *lasts, *timeout).await
        }
        Action::NodeDown { spec, lasts, timeout } => node_down::run(ctx, spec, *lasts, *timeout).await,
        Action::ClusterFault { spec, lasts, timeout } => cluster_fault::drill(ctx, spec, *lasts, *timeout).await,
        Action::Http(h) => http::check(ctx, h).await,
        Action::HttpLoad { spec, timeout, settle, scale_in } => {
            http::load(ctx, spec, *timeout, *settle, *scale_in).await
        }
        Action::Command { spec, timeout } => host_command::run(ctx, scenario, spec, *timeout).await,
    }
}

/// Runs a step, unless its `unless` probe shows the work is already done.
async fn run_unless(ctx: &Ctx, scenario: &Scenario, step: &Step) -> Result<Done, StepError> {
    if let Some(probe) = &step.unless
        && let Ok(done) = run_action(ctx, scenario, probe).await
    {
        let what = done.looked_at.unwrap_or_else(|| "its precondition".into());
        return Ok(Done {
            output: done.output,
            message: Some(format!("already done ({what} holds): not run again")),
            ..Done::default()
        });
    }
    let Some(mut patience) = step.retry_for else {
        return run_action(ctx, scenario, &step.action).await;
    };
    if let Some(cap) = ctx.wait_cap {
        patience = patience.min(cap);
    }
    let started = Instant::now();
    let mut reading = 0;
    loop {
        reading += 1;
        match run_action(ctx, scenario, &step.action).await {
            Err(StepError::Failed { actual, .. }) if started.elapsed() < patience => {
                ctx.progress(&format!("not yet: {actual} ({:.0}s)", started.elapsed().as_secs_f64()));
                crate::poll::looking_again();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(mut done) if reading > 1 => {
                let held = format!("held after {reading} readings ({:.1}s)", started.elapsed().as_secs_f64());
                done.message = Some(done.message.map_or(held.clone(), |m| format!("{held}; {m}")));
                return Ok(done);
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
        command: ctx.redact(&command::kubectl(&step.action, resolved_pod, &|t| ctx.render(t))),
        explanation: ctx.render(s.explanation.trim()),
        points: s.points,
        hint: s.hint.as_ref().map(|h| ctx.render(h)),
        requirement: s.requirement.as_ref().map(|r| ctx.render(r)),
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
        Err(StepError::NotHere(why)) => {
            r.status = Status::Skipped;
            r.message = Some(ctx.redact(&why));
        }
        Err(StepError::Infra(e)) => {
            r.status = Status::Error;
            r.error_kind = Some(ErrorKind::Infrastructure);
            let mut message = e.to_string();
            if e.code() == Some(403) {
                message.push_str(" (the kubeconfig's account may not do this: check its RBAC permissions)");
            }
            r.message = Some(ctx.redact(&message));
        }
    }
    (r, resolved)
}

/// Reporters shared by the engine (events as they happen) and its caller.
pub type SharedReporters = Arc<Mutex<Reporters>>;

/// Ends a run's reporting: sends `RunFinished`, writes every report, and
/// returns the exit code of the verdict.
pub fn finish(reporters: &SharedReporters, summary: Summary) -> anyhow::Result<u8> {
    let mut reporters = reporters.lock().unwrap_or_else(|p| p.into_inner());
    let code = summary.verdict.exit_code();
    reporters.emit(&Event::RunFinished(summary));
    reporters.finish()?;
    Ok(code)
}

/// How long verify waits for a rollout that should already be complete.
pub const VERIFY_WAIT_CAP: Duration = Duration::from_secs(15);

/// Runs a scenario and returns how it ended. Ctrl-C stops the current step;
/// cleanup still runs. Every event but the last goes to `reporters` as it
/// happens; the caller sends `RunFinished` with the summary returned, finishes
/// the reporters and picks the exit code ([`finish`] does all three).
pub async fn run(
    scenario: &Scenario,
    target: Target,
    options: &RunOptions,
    reporters: SharedReporters,
) -> anyhow::Result<Summary> {
    let mut vars = scenario.parameters(&options.overrides).map_err(exit::invalid)?;
    // `{{ run_id }}`: unique to this run, for names and keys that must not collide.
    vars.insert("run_id".into(), options.run_id.clone());
    let bound = scenario.bound_to(&vars).map_err(exit::invalid)?;
    let scenario = &bound;
    let redactor = Redactor::new(scenario.secret_values(&vars));
    let emit = |e: Event| reporters.lock().unwrap_or_else(|p| p.into_inner()).emit(&e);
    let wait_cap = (options.mode == Mode::Verify).then_some(VERIFY_WAIT_CAP);
    let mut ctx =
        Ctx::new(target.client.clone(), target.namespace.clone(), vars.clone(), redactor, reporters.clone(), wait_cap);
    ctx.kubeconfig = target.kubeconfig.clone();
    ctx.context_name = target.context.clone();
    ctx.given = options.overrides.iter().map(|(k, _)| k.clone()).collect();
    ctx.verifying = options.mode == Mode::Verify;
    if ctx.verifying {
        ctx.reads = Some(Default::default());
    }
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
    // A cluster that does not answer ends the run at once, lists or not.
    let (environment, ()) = tokio::try_join!(environment(&target), async {
        prefetch(&ctx, scenario).await;
        Ok(())
    })?;
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
        started_at: crate::k8s::timestamp_now(),
        environment,
        parameters,
        resources: resources_of(scenario, &vars),
        tool: crate::report::event::tool_version(),
    }));

    // Verify runs the checks, and the captures and discoveries they may need (read-only).
    let steps: Vec<&Step> = scenario
        .steps()
        .iter()
        .filter(|s| {
            options.mode == Mode::Run
                || s.kind == StepKind::Check
                || matches!(s.action, Action::Capture(_) | Action::Discover(_))
        })
        .collect();
    let total = steps.len();
    let mut results: Vec<(StepInfo, StepResult)> = Vec::new();
    let mut stop_reason: Option<String> = None;
    let mut interrupted = false;
    let mut i = 0;
    while i < steps.len() {
        // Consecutive read-only checks run side by side (see `batch`).
        let end = if options.pause_on_failure || stop_reason.is_some() { i + 1 } else { batch::batch_end(&steps, i) };
        let batch = &steps[i..end];
        let skips: Vec<Option<String>> =
            batch.iter().map(|step| skip_reason(step, &stop_reason, &results, options)).collect();
        let runs: Vec<&Step> = batch.iter().zip(&skips).filter(|(_, skip)| skip.is_none()).map(|(s, _)| *s).collect();
        // One step runs live, its progress shown as it goes; several have
        // all run by the time the first is reported.
        let live = runs.len() <= 1;
        let mut executed = if !live {
            batch::execute_all(&ctx, scenario, &runs, &options.interrupt).await.into_iter()
        } else {
            Vec::new().into_iter()
        };
        for (offset, (step, skip)) in batch.iter().zip(skips).enumerate() {
            let index = i + offset + 1;
            let info = step_info(&ctx, step, index, total, None);
            if let Some(reason) = skip.or_else(|| stop_reason.clone().filter(|_| live)) {
                let mut r = StepResult::new(Status::Skipped);
                r.message = Some(reason);
                emit(Event::StepFinished(info.clone(), r.clone()));
                results.push((info, r));
                continue;
            }
            ctx.set_step(&step.spec.id);
            emit(Event::StepStarted(info.clone()));
            let done = match executed.next() {
                Some((done, held)) => {
                    for message in held {
                        emit(Event::StepProgress { id: step.spec.id.clone(), message });
                    }
                    done
                }
                None => batch::execute(&ctx, scenario, step, &options.interrupt).await,
            };
            interrupted |= done.interrupted;
            let (result, resolved) = step_result(&ctx, scenario, step, done).await;
            let info = if resolved.is_some() { step_info(&ctx, step, index, total, resolved.as_deref()) } else { info };
            if interrupted {
                stop_reason = Some("the run was interrupted".into());
            } else if result.status == Status::Error
                || (result.status == Status::Failed && step.kind != StepKind::Check)
            {
                stop_reason = Some(format!("step {:?} did not pass", step.spec.id));
            }
            let paused =
                options.pause_on_failure && !interrupted && matches!(result.status, Status::Failed | Status::Error);
            emit(Event::StepFinished(info.clone(), result.clone()));
            results.push((info, result));
            if paused {
                pause::at_failure(&ctx, &step.spec.id, &options.interrupt).await;
                stop_reason = Some("the run stopped at the first failure (--pause-on-failure)".into());
            }
        }
        i = end;
    }

    // A partition whose step was cut short is healed whatever the mode.
    let unhealed = partition::heal_all(&ctx).await;
    let mut leftovers = if options.mode == Mode::Run && !options.keep {
        cleanup::run(&ctx, scenario, &options.run_id, options.cleanup_timeout, &emit).await
    } else {
        Vec::new()
    };
    leftovers.extend(unhealed);

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
    let to_fix = results.iter().filter(|(i, r)| scored(i, r) && r.status != Status::Passed).map(fix).collect();
    let verdict = Verdict::of(interrupted, results.iter().map(|(_, r)| r));
    Ok(Summary {
        verdict,
        passed,
        failed,
        errors,
        skipped,
        score: (earned, possible),
        duration: started.elapsed(),
        exit_code: verdict.exit_code(),
        leftovers,
        to_fix,
    })
}

/// Why a step cannot run: a step it needs ran and did not pass. A needed
/// step that did not run in this mode (a setup step in `verify`) is no reason.
/// Why a step does not run: the run stopped, a step it needs did not pass,
/// or it is a drill this cluster does not allow.
fn skip_reason(
    step: &Step,
    stop_reason: &Option<String>,
    results: &[(StepInfo, StepResult)],
    options: &RunOptions,
) -> Option<String> {
    if let Some(reason) = stop_reason {
        return Some(reason.clone());
    }
    if let Some(reason) = unmet_need(step, results) {
        return Some(reason);
    }
    (step.kind == StepKind::Disruptive && !options.allow_disruption)
        .then(|| "disruptive step: runs only on the lab or with --allow-disruption".into())
}

/// A step's result from what its action did: measurements, the drill's
/// timeline and traffic, and what `onFailure` collects when it did not pass.
async fn step_result(
    ctx: &Ctx,
    scenario: &Scenario,
    step: &Step,
    done: batch::Executed,
) -> (StepResult, Option<String>) {
    let (mut result, resolved) = to_result(ctx, done.outcome, done.took);
    if result.measurements.is_empty() {
        result.measurements = ctx.take_measurements();
    }
    ctx.take_measurements();
    result.started_ms = Some(done.began_ms);
    if matches!(result.status, Status::Failed | Status::Error) && !done.interrupted {
        let asked: Vec<&crate::scenario::Collector> =
            step.spec.on_failure.iter().chain(&scenario.file.on_failure).collect();
        if !asked.is_empty() {
            let collected = collectors::collect(ctx, &asked).await;
            result.diagnostics = Some(match result.diagnostics.take() {
                Some(automatic) => format!("{automatic}{collected}"),
                None => collected,
            });
        }
    }
    (result.timeline, result.traffic) = ctx.take_drill();
    (result, resolved)
}

fn unmet_need(step: &Step, results: &[(StepInfo, StepResult)]) -> Option<String> {
    step.needs.iter().find_map(|need| {
        let (_, result) = results.iter().find(|(info, _)| &info.id == need)?;
        let how = match result.status {
            Status::Passed => return None,
            Status::Failed => "failed",
            Status::Error => "ended in an error",
            Status::Skipped => "was skipped",
        };
        Some(format!("needs step {need:?}, which {how}"))
    })
}

/// What a learner should do about a step that did not pass.
fn fix((info, result): &(StepInfo, StepResult)) -> Fix {
    // A check that did not run lost its points too: say why it did not.
    let skipped = (result.status == Status::Skipped)
        .then(|| format!("not checked: {}", result.message.as_deref().unwrap_or("skipped")));
    let advice = match (&skipped, &info.hint, &result.expected, &result.actual) {
        (Some(why), ..) => why.clone(),
        (None, Some(hint), _, _) => hint.clone(),
        (None, None, Some(expected), Some(actual)) => format!("expected {expected}, found {actual}"),
        _ => result.message.clone().unwrap_or_else(|| "see the step's output".into()),
    };
    Fix {
        id: info.id.clone(),
        title: info.title.clone(),
        points: info.points.unwrap_or(0),
        advice,
        requirement: info.requirement.clone(),
    }
}

//! One container: start it inside the pod, watch it, restart it by the pod's
//! restartPolicy with CrashLoopBackOff back-off, stop it gracefully (SIGTERM,
//! grace period, SIGKILL), and report every state change.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::KubeletCtx;
use super::cgroups::ContainerCgroup;
use super::env::{self, PodFacts};
use super::image::{self, ImageInfo};
use super::logfile;
use super::pod::PodHandle;
use super::probes;
use super::process::{PodNamespaces, SpawnMode, signal_group, spawn_in_pod};
use super::status::ContainerView;
use super::termination;
use crate::api::objects;

/// Everything needed to (re)start one container.
#[derive(Clone)]
pub struct ContainerPlan {
    /// The container spec.
    pub spec: Value,
    /// What the image maps to.
    pub info: ImageInfo,
    /// An init container (runs to completion).
    pub is_init: bool,
    /// The pod's restartPolicy.
    pub restart_policy: String,
    /// Container name.
    pub name: String,
}

impl ContainerPlan {
    /// A plan for `spec`.
    pub fn new(spec: &Value, info: ImageInfo, is_init: bool, restart_policy: &str) -> Self {
        ContainerPlan {
            spec: spec.clone(),
            info,
            is_init,
            restart_policy: restart_policy.to_string(),
            name: spec["name"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// The default PATH of the images the lab runs.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The full environment of a container: image defaults, then the spec's.
pub fn environment(
    ctx: &KubeletCtx,
    handle: &PodHandle,
    pod: &Value,
    spec: &Value,
) -> Result<Vec<(String, String)>, String> {
    let (ip, host_ip) = {
        let view = handle.view.lock().unwrap_or_else(|e| e.into_inner());
        (view.pod_ip.clone().unwrap_or_default(), view.host_ip.clone())
    };
    let facts = PodFacts { pod, pod_ip: &ip, host_ip: &host_ip };
    let mut all = vec![
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOSTNAME".to_string(), handle.name.clone()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    for (k, v) in env::build(&ctx.store, &facts, spec)? {
        all.retain(|(name, _)| *name != k);
        all.push((k, v));
    }
    Ok(all)
}

fn log_path(handle: &PodHandle, name: &str) -> std::path::PathBuf {
    handle.dir.join("logs").join(format!("{name}.log"))
}

/// Path of the log of the previous instance of a container.
pub fn previous_log_path(handle: &PodHandle, name: &str) -> std::path::PathBuf {
    handle.dir.join("logs").join(format!("{name}.previous.log"))
}

/// Path of a container's current log.
pub fn current_log_path(handle: &PodHandle, name: &str) -> std::path::PathBuf {
    log_path(handle, name)
}

enum StartError {
    Config(String),
    Run(String),
}

async fn start(
    ctx: &KubeletCtx,
    handle: &PodHandle,
    pod: &Value,
    plan: &ContainerPlan,
    cgroup: Option<&ContainerCgroup>,
) -> Result<Started, StartError> {
    let env = environment(ctx, handle, pod, &plan.spec).map_err(StartError::Config)?;
    let strings = |key: &str| -> Vec<String> {
        plan.spec[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| env::expand(v.as_str().unwrap_or_default(), &env))
            .collect()
    };
    let sandbox = handle.sandbox_pid.load(Ordering::SeqCst);
    let pod_root = format!("/proc/{sandbox}/root");
    let argv = image::argv(&plan.info, &strings("command"), &strings("args"), |conf| {
        let path = format!("{pod_root}/{}", conf.trim_start_matches('/'));
        std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("protected-mode")))
    });
    let Some((program, args)) = argv.split_first() else {
        return Err(StartError::Run(
            "no command: the container has neither command nor args and the image no default".into(),
        ));
    };
    let workdir = plan.spec["workingDir"].as_str().unwrap_or(&plan.info.workdir).to_string();
    let logs = handle.dir.join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let path = log_path(handle, &plan.name);
    if path.exists() {
        let _ = std::fs::rename(&path, previous_log_path(handle, &plan.name));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| StartError::Run(e.to_string()))?;
    let ns = PodNamespaces::of_container(sandbox, &handle.mount_view(&plan.name))
        .map_err(|e| StartError::Run(format!("pod sandbox gone: {e}")))?;
    termination::reset(sandbox, &plan.spec);
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child =
        spawn_in_pod(cmd, &ns, &workdir, SpawnMode::container(&plan.spec), cgroup).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                StartError::Run(format!("exec: \"{program}\": executable file not found in $PATH"))
            }
            _ => StartError::Run(format!("exec {program}: {e}")),
        })?;
    handle.envs.lock().unwrap_or_else(|e| e.into_inner()).retain(|(n, _)| *n != plan.name);
    handle.envs.lock().unwrap_or_else(|e| e.into_inner()).push((plan.name.clone(), env));
    let (stdout, stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let logging = tokio::spawn(logfile::copy(stdout, stderr, log));
    Ok(Started { child, logging })
}

/// A container's running main process, and the task writing its output to
/// its log (which ends once everything holding the output has closed it).
struct Started {
    child: tokio::process::Child,
    logging: tokio::task::JoinHandle<()>,
}

fn with_container(
    handle: &PodHandle,
    ctx: &KubeletCtx,
    is_init: bool,
    index: usize,
    change: impl FnOnce(&mut ContainerView),
) {
    handle.update(ctx, |v| {
        let list = if is_init { &mut v.init } else { &mut v.containers };
        if let Some(c) = list.get_mut(index) {
            change(c);
        }
    });
}

fn terminated(code: i64, started: &str, reason_override: Option<&str>) -> Value {
    let reason = reason_override.unwrap_or(if code == 0 { "Completed" } else { "Error" });
    json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": objects::now()}})
}

fn exit_code(status: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    status.code().map(i64::from).or_else(|| status.signal().map(|s| 128 + i64::from(s))).unwrap_or(1)
}

/// Stops a running container: SIGTERM to its process group, then SIGKILL after `grace`.
async fn stop(child: &mut tokio::process::Child, grace: i64) -> i64 {
    if let Some(pid) = child.id() {
        signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        let waited = tokio::time::timeout(Duration::from_secs(grace.max(0) as u64), child.wait()).await;
        if let Ok(Ok(status)) = waited {
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            return exit_code(status);
        }
        signal_group(pid, nix::sys::signal::Signal::SIGKILL);
    }
    child.wait().await.map(exit_code).unwrap_or(137)
}

/// Back-off before restart number `restarts` (the first restart is immediate).
fn backoff(restarts: i64) -> Duration {
    if restarts <= 1 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1 << (restarts - 2).min(5));
    Duration::from_secs(secs.min(300))
}

enum Ended {
    Exited(i64),
    Stopped(i64),
    LivenessFailed(i64),
}

/// Runs an init container until it succeeds; false when the pod stops first.
pub async fn run_init(
    ctx: &Arc<KubeletCtx>,
    handle: &Arc<PodHandle>,
    pod: &Value,
    index: usize,
    plan: ContainerPlan,
) -> bool {
    let mut restarts = 0;
    loop {
        let (ended, _) = run_once(ctx, handle, pod, index, &plan).await;
        match ended {
            Some(Ended::Exited(0)) => return true,
            Some(Ended::Stopped(_)) | None => return false,
            Some(Ended::Exited(_)) | Some(Ended::LivenessFailed(_)) => {
                if plan.restart_policy == "Never" {
                    handle.update(ctx, |v| v.final_phase = Some("Failed"));
                    handle.terminating().cancelled().await;
                    return false;
                }
                restarts += 1;
                if !wait_backoff(ctx, handle, pod, index, &plan, restarts).await {
                    return false;
                }
            }
        }
    }
}

/// Runs a container under its restart policy until the pod stops.
pub async fn supervise(ctx: &Arc<KubeletCtx>, handle: &Arc<PodHandle>, pod: &Value, index: usize, plan: ContainerPlan) {
    let mut restarts = 0;
    loop {
        let (ended, ran_for) = run_once(ctx, handle, pod, index, &plan).await;
        let code = match ended {
            None | Some(Ended::Stopped(_)) => return,
            Some(Ended::Exited(code)) | Some(Ended::LivenessFailed(code)) => code,
        };
        let restart = match plan.restart_policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if !restart {
            return;
        }
        // A container that ran ten minutes without trouble starts its back-off over.
        if ran_for > Duration::from_secs(600) {
            restarts = 0;
        }
        restarts += 1;
        if !wait_backoff(ctx, handle, pod, index, &plan, restarts).await {
            return;
        }
    }
}

async fn wait_backoff(
    ctx: &KubeletCtx,
    handle: &PodHandle,
    pod: &Value,
    index: usize,
    plan: &ContainerPlan,
    restarts: i64,
) -> bool {
    let delay = backoff(restarts);
    with_container(handle, ctx, plan.is_init, index, |c| {
        // The count goes up when the container is started again, not while
        // it waits out its back-off (as the kubelet reports it).
        c.restart_count = if delay.is_zero() { restarts } else { restarts - 1 };
        c.last_state = c.state.clone();
        if !delay.is_zero() {
            let reason = "CrashLoopBackOff";
            let message =
                format!("back-off {}s restarting failed container={} pod={}", delay.as_secs(), plan.name, handle.name);
            c.state = json!({"waiting": {"reason": reason, "message": message}});
        }
    });
    if !delay.is_zero() {
        ctx.container_event(
            pod,
            &plan.name,
            plan.is_init,
            "Warning",
            "BackOff",
            // The pod as the kubelet's format.Pod writes it: name_namespace(uid).
            &format!(
                "Back-off restarting failed container {} in pod {}_{}({})",
                plan.name,
                handle.name,
                handle.ns,
                pod["metadata"]["uid"].as_str().unwrap_or_default()
            ),
        );
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => {
            with_container(handle, ctx, plan.is_init, index, |c| c.restart_count = restarts);
            true
        }
        _ = handle.terminating().cancelled() => false,
    }
}

/// Starts the container once and waits for it to end; None if it never started
/// because the pod is stopping.
async fn run_once(
    ctx: &Arc<KubeletCtx>,
    handle: &Arc<PodHandle>,
    pod: &Value,
    index: usize,
    plan: &ContainerPlan,
) -> (Option<Ended>, Duration) {
    let image = plan.spec["image"].as_str().unwrap_or_default().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let event = |kind: &str, reason: &str, message: &str| {
        ctx.container_event(pod, &plan.name, plan.is_init, kind, reason, message);
    };
    let cgroup = match ctx.cgroups.container(uid, &plan.name, &plan.spec) {
        Ok(cgroup) => cgroup,
        Err(e) => {
            let why = format!("creating the container's cgroup: {e}");
            event("Warning", "Failed", &format!("Error: {why}"));
            with_container(handle, ctx, plan.is_init, index, |c| {
                c.state = json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": why}});
            });
            return (Some(Ended::Exited(128)), Duration::ZERO);
        }
    };
    // Kept across restarts (an exec session may still be inside), so OOM
    // kills are counted from here.
    let oom_kills_before = cgroup.as_ref().map_or(0, ContainerCgroup::oom_kills);
    let Started { mut child, logging } = loop {
        if handle.terminating().is_cancelled() {
            return (None, Duration::ZERO);
        }
        match start(ctx, handle, pod, plan, cgroup.as_ref()).await {
            Ok(started) => break started,
            Err(StartError::Config(why)) => {
                event("Warning", "Failed", &format!("Error: {why}"));
                with_container(handle, ctx, plan.is_init, index, |c| {
                    c.state = json!({"waiting": {"reason": "CreateContainerConfigError", "message": why}});
                });
            }
            Err(StartError::Run(why)) => {
                event("Warning", "Failed", &format!("Error: {why}"));
                with_container(handle, ctx, plan.is_init, index, |c| {
                    c.state = json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": why}});
                });
                return (Some(Ended::Exited(128)), Duration::ZERO);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = handle.terminating().cancelled() => return (None, Duration::ZERO),
        }
    };
    let pid = child.id().unwrap_or_default();
    handle.groups.lock().unwrap_or_else(|e| e.into_inner()).insert(pid);
    handle.set_main_pid(&plan.name, Some(pid));
    let started_at = objects::now();
    let began = Instant::now();
    // At every start, as the kubelet's image check says it (counted on one event).
    event("Normal", "Pulled", &format!("Container image \"{image}\" already present on machine"));
    event("Normal", "Created", &format!("Created container: {}", plan.name));
    event("Normal", "Started", &format!("Started container {}", plan.name));
    let has_readiness = plan.spec["readinessProbe"].is_object() && !plan.is_init;
    // Kubernetes' kubelet learns that a container started on its next relist
    // (PLEG): a process that exits at once (a config Redis refuses) is never
    // reported Running, let alone Ready. The lab looks as long before it says
    // Running, so a wait does not see a crashing container Ready for a moment.
    let exited_at_once = match tokio::time::timeout(FIRST_SIGHT, child.wait()).await {
        Ok(status) => Some(status.map(exit_code).unwrap_or(1)),
        Err(_) => None,
    };
    with_container(handle, ctx, plan.is_init, index, |c| {
        c.container_id = format!("runbook://{pid}");
        if exited_at_once.is_none() {
            c.state = json!({"running": {"startedAt": started_at}});
            c.started = true;
            c.ready = !has_readiness && !plan.is_init;
        }
    });
    let probe_stop = CancellationToken::new();
    let (liveness_tx, mut liveness_rx) = mpsc::channel::<()>(1);
    if !plan.is_init && exited_at_once.is_none() {
        probes::spawn(ctx, handle, pod, index, plan, probe_stop.clone(), liveness_tx);
    }
    let ended = if let Some(code) = exited_at_once {
        signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        Ended::Exited(code)
    } else {
        tokio::select! {
        status = child.wait() => {
            let code = status.map(exit_code).unwrap_or(1);
            // Whatever the main process left running in its group goes with it.
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            Ended::Exited(code)
        }
        _ = handle.terminating().cancelled() => {
            event("Normal", "Killing", &format!("Stopping container {}", plan.name));
            Ended::Stopped(stop(&mut child, handle.grace()).await)
        }
        Some(()) = liveness_rx.recv() => {
            let grace = plan.spec["terminationGracePeriodSeconds"].as_i64()
                .or(pod["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30);
            Ended::LivenessFailed(stop(&mut child, grace).await)
        }
        }
    };
    probe_stop.cancel();
    handle.groups.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
    handle.set_main_pid(&plan.name, None);
    let oom_killed = cgroup.as_ref().is_some_and(|c| c.oom_kills() > oom_kills_before);
    let (code, reason) = match &ended {
        // As the runtime reports it: the kernel killed it for memory.
        Ended::Exited(code) if oom_killed => (*code, Some("OOMKilled")),
        Ended::Exited(code) => (*code, None),
        Ended::Stopped(code) => (*code, None),
        Ended::LivenessFailed(code) => (*code, Some("Error")),
    };
    // The last lines are in the log before the status says it ended (a
    // process the container left behind may hold its output open: not long).
    let _ = tokio::time::timeout(Duration::from_secs(1), logging).await;
    let sandbox = handle.sandbox_pid.load(Ordering::SeqCst);
    let message = termination::message(sandbox, &plan.spec, code, &current_log_path(handle, &plan.name));
    with_container(handle, ctx, plan.is_init, index, |c| {
        c.state = terminated(code, &started_at, reason);
        // As the kubelet reports it, and what `logs --previous` looks for.
        c.state["terminated"]["containerID"] = json!(c.container_id);
        if let Some(message) = message {
            c.state["terminated"]["message"] = json!(message);
        }
        // A completed init container counts as ready (the kubelet says so).
        c.ready = plan.is_init && code == 0 && matches!(ended, Ended::Exited(_));
        c.started = false;
    });
    (Some(ended), began.elapsed())
}

/// How long a started container is watched before it is reported Running
/// (see `run_once`): shorter than the kubelet's relist (1 s), long enough for
/// a process that refuses its configuration to be gone.
const FIRST_SIGHT: Duration = Duration::from_millis(150);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
    }
}

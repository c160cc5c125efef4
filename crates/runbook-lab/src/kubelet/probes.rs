//! Liveness and readiness probes (exec, tcpSocket, httpGet), run from inside
//! the pod; readiness drives the container's `ready`, liveness restarts it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::KubeletCtx;
use super::cgroups::ContainerCgroup;
use super::container::ContainerPlan;
use super::netutil::connect_in_netns;
use super::pod::PodHandle;
use super::process::{MountView, PodNamespaces, SpawnMode, spawn_in_pod};

/// The settings of one probe, with Kubernetes' defaults.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// Seconds before the first probe.
    pub initial_delay: u64,
    /// Seconds between probes.
    pub period: u64,
    /// Seconds a probe may take.
    pub timeout: u64,
    /// Consecutive successes to count as passing.
    pub success_threshold: u32,
    /// Consecutive failures to count as failing.
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// Reads a probe's timing fields.
    pub fn of(probe: &Value) -> Self {
        let n = |k: &str, d: u64| probe[k].as_u64().unwrap_or(d);
        ProbeSettings {
            initial_delay: n("initialDelaySeconds", 0),
            period: n("periodSeconds", 10).max(1),
            timeout: n("timeoutSeconds", 1).max(1),
            success_threshold: n("successThreshold", 1).max(1) as u32,
            failure_threshold: n("failureThreshold", 3).max(1) as u32,
        }
    }
}

fn port_of(handler: &Value, container: &Value) -> Result<u16, String> {
    match &handler["port"] {
        Value::Number(n) => n.as_u64().map(|p| p as u16).ok_or_else(|| "invalid port".into()),
        Value::String(name) => container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .map(|p| p as u16)
            .ok_or_else(|| format!("port {name:?} is not a named port of the container")),
        _ => Err("probe has no port".into()),
    }
}

/// Runs a probe once; Err carries the failure message shown in events.
pub async fn run_once(
    probe: &Value,
    container: &Value,
    sandbox: u32,
    mounts: &MountView,
    pod_ip: &str,
    env: &[(String, String)],
    cgroup: Option<&ContainerCgroup>,
) -> Result<(), String> {
    let timeout = Duration::from_secs(ProbeSettings::of(probe).timeout);
    if let Some(command) = probe["exec"]["command"].as_array() {
        // As the kubelet does, `$(VAR)` is expanded with the container's
        // static env (`value`, not `valueFrom`).
        let static_env: Vec<(String, String)> = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
            .collect();
        let argv: Vec<String> =
            command.iter().map(|v| super::env::expand(v.as_str().unwrap_or_default(), &static_env)).collect();
        let (program, args) = argv.split_first().ok_or("empty exec probe command")?;
        let ns = PodNamespaces::of_container(sandbox, mounts).map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = spawn_in_pod(cmd, &ns, "/", SpawnMode::probe(container), cgroup)
            .map_err(|e| format!("exec {program}: {e}"))?;
        return match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Err(_) => Err(format!("command {argv:?} timed out after {}s", timeout.as_secs())),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(format!(
                "command {argv:?} exited with {}: {}",
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).trim()
            )),
        };
    }
    let handler = if probe["tcpSocket"].is_object() { &probe["tcpSocket"] } else { &probe["httpGet"] };
    let port = port_of(handler, container)?;
    let host = handler["host"].as_str().unwrap_or(pod_ip);
    let addr: SocketAddr =
        format!("{host}:{port}").parse().map_err(|_| format!("invalid probe address {host}:{port}"))?;
    let mut stream = connect_in_netns(sandbox, addr, timeout).await.map_err(|e| format!("dial tcp {addr}: {e}"))?;
    if probe["tcpSocket"].is_object() {
        return Ok(());
    }
    let path = handler["path"].as_str().unwrap_or("/");
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\n\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("Get \"http://{addr}{path}\": context deadline exceeded"))?
        .map_err(|e| e.to_string())?;
    let status: u16 =
        String::from_utf8_lossy(&reply).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if (200..400).contains(&status) { Ok(()) } else { Err(format!("HTTP probe failed with statuscode: {status}")) }
}

/// Starts the container's probes; they stop with `stop`. Liveness failures are
/// sent on `liveness_failed`.
pub fn spawn(
    ctx: &Arc<KubeletCtx>,
    handle: &Arc<PodHandle>,
    pod: &Value,
    index: usize,
    plan: &ContainerPlan,
    stop: CancellationToken,
    liveness_failed: mpsc::Sender<()>,
) {
    for (kind, key) in [("Readiness", "readinessProbe"), ("Liveness", "livenessProbe")] {
        let probe = plan.spec[key].clone();
        if !probe.is_object() {
            continue;
        }
        let (ctx, handle, pod, plan, stop, tx) =
            (ctx.clone(), handle.clone(), pod.clone(), plan.clone(), stop.clone(), liveness_failed.clone());
        tokio::spawn(async move {
            let settings = ProbeSettings::of(&probe);
            let (mut successes, mut failures, mut passing) = (0u32, 0u32, false);
            let mut delay = Duration::from_secs(settings.initial_delay);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return,
                }
                delay = Duration::from_secs(settings.period);
                // The kubelet of a node that is down probes nothing.
                if ctx.down_nodes.contains(&handle.node) {
                    continue;
                }
                let sandbox = handle.sandbox_pid.load(Ordering::SeqCst);
                let ip = handle.view.lock().unwrap_or_else(|e| e.into_inner()).pod_ip.clone().unwrap_or_default();
                let env = handle
                    .envs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .find(|(n, _)| *n == plan.name)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_default();
                let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
                let cgroup = ctx.cgroups.existing(uid, &plan.name);
                let mounts = handle.mount_view(&plan.name);
                let result = run_once(&probe, &plan.spec, sandbox, &mounts, &ip, &env, cgroup.as_ref()).await;
                if stop.is_cancelled() {
                    return;
                }
                match result {
                    Ok(()) => {
                        successes += 1;
                        failures = 0;
                    }
                    Err(why) => {
                        failures += 1;
                        successes = 0;
                        ctx.container_event(
                            &pod,
                            &plan.name,
                            false,
                            "Warning",
                            "Unhealthy",
                            &format!("{kind} probe failed: {why}"),
                        );
                    }
                }
                if kind == "Readiness" {
                    let now_passing = if passing {
                        failures < settings.failure_threshold
                    } else {
                        successes >= settings.success_threshold
                    };
                    if now_passing != passing {
                        passing = now_passing;
                        handle.update(&ctx, |v| {
                            if let Some(c) = v.containers.get_mut(index) {
                                c.ready = now_passing;
                            }
                        });
                    }
                } else if failures >= settings.failure_threshold {
                    ctx.container_event(
                        &pod,
                        &plan.name,
                        false,
                        "Normal",
                        "Killing",
                        &format!("Container {} failed liveness probe, will be restarted", plan.name),
                    );
                    let _ = tx.send(()).await;
                    return;
                }
            }
        });
    }
}

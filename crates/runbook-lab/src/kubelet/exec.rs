//! `pods/exec` over websocket (channel protocols v5 and v4): the command runs
//! inside the pod's namespaces with the container's environment; stdout and
//! stderr stream on channels 1 and 2; the exit status ends the session on
//! channel 3 as kubectl expects (`NonZeroExitCode` with the code as a cause).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::KubeletCtx;
use super::cgroups::ContainerCgroup;
use super::logs::choose_container;
use super::pod::PodHandle;
use super::process::{MountView, PodNamespaces, SpawnMode, spawn_in_pod};
use super::terminal::{Terminal, parse_resize, resize};
use crate::api::route::Query;
use crate::api::status::{ApiError, ApiResult};
use crate::latency::Latency;

/// The websocket subprotocols the lab speaks, preferred first.
pub const PROTOCOLS: [&str; 3] = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// Upgrades the request to a websocket for the session.
pub async fn upgrade(req: Request) -> ApiResult<WebSocketUpgrade> {
    let (mut parts, _) = req.into_parts();
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("this endpoint needs a websocket upgrade: {e}")))?;
    Ok(ws.protocols(PROTOCOLS))
}

/// A close frame with the normal code: kubectl treats anything else as an error.
pub fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame { code: 1000, reason: "".into() }))
}

/// The exit status frame body.
pub fn exit_status(code: i32, command: &[String]) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
}

/// Serves an exec request against a running pod.
pub async fn serve(
    ctx: &KubeletCtx,
    handle: Arc<PodHandle>,
    pod: &Value,
    query: &Query,
    req: Request,
) -> ApiResult<Response> {
    let latency = ctx.latency;
    let command: Vec<String> = query.all("command").to_vec();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let container = choose_container(pod, query.get("container"))?;
    let running = handle
        .view
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .containers
        .iter()
        .any(|c| c.name == container && c.is_running());
    if !running {
        return Err(ApiError::bad_request(format!("container {container} is not running in pod {}", handle.name)));
    }
    let env = handle
        .envs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(n, _)| *n == container)
        .map(|(_, e)| e.clone())
        .unwrap_or_default();
    let spec = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container.as_str())
        .cloned()
        .unwrap_or_default();
    let stdin = query.flag("stdin");
    let tty = query.flag("tty");
    // As with a runtime's exec: the process runs in the container's
    // directory, within its limits and with its capabilities.
    let target = InContainer {
        sandbox: handle.sandbox_pid.load(Ordering::SeqCst),
        workdir: spec["workingDir"].as_str().unwrap_or("/").to_string(),
        cgroup: ctx.cgroups.existing(pod["metadata"]["uid"].as_str().unwrap_or_default(), &container),
        capabilities: super::capabilities::of_container(&spec),
        mounts: handle.mount_view(&container),
    };
    let ws = upgrade(req).await?;
    let v5 = ws.selected_protocol().is_some_and(|p| p.as_bytes() == PROTOCOLS[0].as_bytes());
    Ok(ws.on_upgrade(move |socket| async move {
        let _ = session(socket, target, command, env, stdin, tty, v5, latency).await;
    }))
}

async fn pump(mut from: impl AsyncRead + Unpin, channel: u8, tx: tokio::sync::mpsc::Sender<(Instant, Message)>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(channel);
                frame.extend_from_slice(&buf[..n]);
                if tx.send((Instant::now(), Message::Binary(Bytes::from(frame)))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Where an exec runs: the container's pod, directory, cgroup, capabilities
/// and mounts.
struct InContainer {
    sandbox: u32,
    workdir: String,
    cgroup: Option<ContainerCgroup>,
    capabilities: super::capabilities::CapabilitySet,
    mounts: MountView,
}

#[allow(clippy::too_many_arguments)]
async fn session(
    socket: WebSocket,
    target: InContainer,
    command: Vec<String>,
    env: Vec<(String, String)>,
    stdin: bool,
    tty: bool,
    v5: bool,
    latency: Latency,
) -> anyhow::Result<()> {
    let InContainer { sandbox, workdir, cgroup, capabilities, mounts } = target;
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Message)>(64);
    // Clients wait for this empty first frame on each output channel.
    for ch in [STDOUT, STDERR] {
        if !(tty && ch == STDERR) {
            let _ = sink.send(Message::Binary(Bytes::from(vec![ch]))).await;
        }
    }
    let mut terminal_master: Option<std::fs::File> = None;
    let spawned = (|| {
        let ns = PodNamespaces::of_container(sandbox, &mounts)?;
        let mut cmd = tokio::process::Command::new(&command[0]);
        cmd.args(&command[1..]).env_clear().envs(env.iter().cloned()).kill_on_drop(true);
        if tty {
            // The command's three streams are the terminal, as with a runtime's `exec -t`.
            let terminal = Terminal::open(sandbox)?;
            cmd.stdin(terminal.slave.try_clone()?).stdout(terminal.slave.try_clone()?).stderr(terminal.slave);
            if !env.iter().any(|(k, _)| k == "TERM") {
                cmd.env("TERM", "xterm");
            }
            terminal_master = Some(terminal.master);
        } else {
            cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mode = SpawnMode { own_group: false, die_with_lab: false, terminal: tty, capabilities: Some(capabilities) };
        spawn_in_pod(cmd, &ns, &workdir, mode, cgroup.as_ref())
    })();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                format!("exec: \"{}\": executable file not found in $PATH", command[0])
            } else {
                e.to_string()
            };
            let status = json!({"metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
                "message": format!("error executing command in container: {message}")});
            let mut frame = vec![STATUS];
            frame.extend(status.to_string().into_bytes());
            sink.send(Message::Binary(Bytes::from(frame))).await?;
            let _ = sink.send(normal_close()).await;
            return Ok(());
        }
    };
    let mut child_stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>> = None;
    let mut resize_to: Option<std::fs::File> = None;
    let (out, err) = match terminal_master {
        Some(master) => {
            // The terminal carries stdout and stderr together, on channel 1.
            let reader = tokio::fs::File::from_std(master.try_clone()?);
            if stdin {
                child_stdin = Some(Box::new(tokio::fs::File::from_std(master.try_clone()?)));
            }
            resize_to = Some(master);
            (tokio::spawn(pump(reader, STDOUT, tx.clone())), None)
        }
        None => {
            child_stdin = child.stdin.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>);
            let out = tokio::spawn(pump(child.stdout.take().expect("piped"), STDOUT, tx.clone()));
            (out, Some(tokio::spawn(pump(child.stderr.take().expect("piped"), STDERR, tx.clone()))))
        }
    };
    drop(tx);
    let writer = tokio::spawn(async move {
        while let Some((sent, message)) = rx.recv().await {
            latency.hold(sent).await;
            if sink.send(message).await.is_err() {
                break;
            }
        }
        sink
    });
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            latency.wait().await;
            match message {
                Message::Binary(data) if !data.is_empty() => match data[0] {
                    STDIN => {
                        if let Some(input) = child_stdin.as_mut() {
                            let _ = input.write_all(&data[1..]).await;
                        }
                    }
                    RESIZE => {
                        if let (Some(master), Some((columns, rows))) = (&resize_to, parse_resize(&data[1..])) {
                            resize(master, columns, rows);
                        }
                    }
                    CLOSE if v5 && data.get(1) == Some(&STDIN) => {
                        if let Some(mut input) = child_stdin.take() {
                            let _ = input.shutdown().await;
                        }
                    }
                    _ => {}
                },
                Message::Close(_) => return true,
                _ => {}
            }
        }
        true
    };
    let code = tokio::select! {
        status = child.wait() => status.ok().and_then(|s| s.code()).unwrap_or(137),
        _ = reader => {
            // The client went away: end the command with it.
            let _ = child.kill().await;
            return Ok(());
        }
    };
    if resize_to.is_some() {
        // A terminal's reader sees EIO only once every holder of the
        // terminal is gone; what the command wrote is there already.
        // (Unless a process the command left in the background holds it:
        // then what came within a few seconds is what the client gets.)
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), out).await;
    } else {
        let _ = out.await;
    }
    if let Some(err) = err {
        let _ = err.await;
    }
    let mut sink = writer.await?;
    let mut frame = vec![STATUS];
    frame.extend(exit_status(code, &command).to_string().into_bytes());
    sink.send(Message::Binary(Bytes::from(frame))).await?;
    let _ = sink.send(normal_close()).await;
    Ok(())
}

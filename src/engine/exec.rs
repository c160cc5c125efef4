//! `exec`: a command in a running container (kube-rs over the exec
//! websocket), its output compared line by line or as values.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::context::Ctx;
use super::{Done, StepError, diagnostics, expect};
use crate::scenario::{Exec, Expect, PodRef};

/// The output of a command run in a pod.
pub struct Ran {
    /// The pod used.
    pub pod: String,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code.
    pub code: i32,
}

/// Picks the first Running pod a reference names, or fails saying what is there.
pub async fn running_pod(ctx: &Ctx, pod: &PodRef) -> Result<Value, StepError> {
    let pods = ctx.pods(pod).await?;
    match pods.iter().find(|p| crate::k8s::conditions::pod_running(p)) {
        Some(p) => Ok(p.clone()),
        None => {
            let found: Vec<String> = pods
                .iter()
                .map(|p| {
                    let troubles = crate::k8s::conditions::pod_troubles(p).join(", ");
                    format!(
                        "{} {}{}",
                        p["metadata"]["name"].as_str().unwrap_or_default(),
                        p["status"]["phase"].as_str().unwrap_or("Unknown"),
                        if troubles.is_empty() { String::new() } else { format!(" ({troubles})") }
                    )
                })
                .collect();
            Err(StepError::Failed {
                expected: format!("a Running {}", ctx.describe_pod(pod)),
                actual: if found.is_empty() { "no such pod".into() } else { found.join("; ") },
                looked_at: ctx.describe_pod(pod),
                output: String::new(),
                diagnostics: diagnostics::for_pods(ctx, &pods).await,
            })
        }
    }
}

/// Runs a command in a pod and collects its output and exit code.
pub async fn run_in_pod(
    ctx: &Ctx,
    pod: &Value,
    container: Option<&str>,
    command: &[String],
    stdin: Option<&str>,
) -> Result<Ran, StepError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace).to_string();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut params = AttachParams::default().stdin(stdin.is_some()).stdout(true).stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let mut attached = api.exec(&name, command.to_vec(), &params).await?;
    if let (Some(text), Some(mut input)) = (stdin, attached.stdin()) {
        input.write_all(text.as_bytes()).await.map_err(StepError::from_source)?;
        input.shutdown().await.map_err(StepError::from_source)?;
    }
    let (mut out, mut err) =
        (attached.stdout().expect("stdout requested"), attached.stderr().expect("stderr requested"));
    let status = attached.take_status().expect("status requested");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let (r1, r2) = tokio::join!(out.read_to_string(&mut stdout), err.read_to_string(&mut stderr));
    r1.and(r2).map_err(|e| StepError::infra(format!("reading exec output: {e}")))?;
    let status = status.await;
    let _ = attached.join().await;
    let code = match status {
        Some(s) if s.status.as_deref() == Some("Success") => 0,
        Some(s) if s.reason.as_deref() == Some("NonZeroExitCode") => s
            .details
            .and_then(|d| d.causes.unwrap_or_default().into_iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message)
            .and_then(|m| m.parse().ok())
            .unwrap_or(1),
        Some(s) => {
            return Err(StepError::failed(
                format!("the command {command:?} to run"),
                s.message.unwrap_or_default(),
                format!("pod {name}"),
            ));
        }
        None => 0,
    };
    Ok(Ran { pod: name, stdout, stderr, code })
}

/// Finds a listener in `netstat -ntl`/`ss -ntl` output: the local address column equals `addr`.
pub fn listening(output: &str, addr: &str) -> bool {
    output.lines().any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let is_listen = cols.contains(&"LISTEN");
        // The local address is the fourth column in both netstat
        // (Proto Recv-Q Send-Q Local …) and ss (State Recv-Q Send-Q Local …).
        is_listen && cols.get(3) == Some(&addr)
    })
}

/// Runs an exec step.
pub async fn run(ctx: &Ctx, exec: &Exec) -> Result<Done, StepError> {
    let pod = running_pod(ctx, &exec.pod).await?;
    let command: Vec<String> = exec.command.iter().map(|c| ctx.render(c)).collect();
    let stdin = exec.stdin.as_ref().map(|s| ctx.render(s));
    let container = exec.container.as_ref().map(|c| ctx.render(c));
    let ran = run_in_pod(ctx, &pod, container.as_deref(), &command, stdin.as_deref()).await?;
    let looked_at = format!("`{}` in pod {}", command.join(" "), ran.pod);
    let output = check_output(ctx, &exec.expect, &ran, None, &looked_at)?;
    Ok(Done { output, looked_at: Some(looked_at), resolved_pod: Some(ran.pod), ..Done::default() })
}

/// Checks a command's exit code and output against `expect` (an exec's or
/// a host command's), and returns the output to show. `value` is what
/// `equals`/`matches`/… compare when not the whole output (a JSON field).
pub fn check_output(
    ctx: &Ctx,
    e: &Expect,
    ran: &Ran,
    value: Option<Option<&Value>>,
    looked_at: &str,
) -> Result<String, StepError> {
    let output = if ran.stderr.is_empty() { ran.stdout.clone() } else { format!("{}{}", ran.stdout, ran.stderr) };
    let fail = |expected: String, actual: String| StepError::Failed {
        expected,
        actual,
        looked_at: looked_at.to_string(),
        output: output.clone(),
        diagnostics: None,
    };
    let want_code = e.exit_code.unwrap_or(0);
    if ran.code != want_code {
        return Err(fail(format!("exit code {want_code}"), format!("exit code {}: {}", ran.code, ran.stderr.trim())));
    }
    let lines: Vec<&str> = ran.stdout.lines().collect();
    if let Some(want) = &e.lines {
        let want: Vec<String> = want.iter().map(|l| ctx.render(l)).collect();
        if lines != want {
            return Err(fail(format!("lines {want:?}"), format!("lines {lines:?}")));
        }
    }
    if let Some(want) = &e.line {
        let want = ctx.render(want);
        if !lines.contains(&want.as_str()) {
            return Err(fail(format!("a line {want:?}"), format!("lines {lines:?}")));
        }
    }
    if let Some(addr) = &e.listening {
        let addr = ctx.render(addr);
        if !listening(&ran.stdout, &addr) {
            let listeners: Vec<&str> = lines.iter().copied().filter(|l| l.contains("LISTEN")).collect();
            return Err(fail(format!("a listener on {addr}"), format!("listeners: {listeners:?}")));
        }
    }
    let whole = Value::String(ran.stdout.trim_end_matches('\n').to_string());
    let value = value.unwrap_or(Some(&whole));
    expect::compare(e, value, &|s| ctx.render(s)).map_err(|m| fail(m.expected, m.actual))?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_by_exact_address() {
        let netstat = "Proto Recv-Q Send-Q Local Address Foreign Address State PID/Program name\n\
                       tcp        0      0 0.0.0.0:6379            0.0.0.0:*               LISTEN      1/redis-server\n\
                       tcp        0      0 127.0.0.1:16379         0.0.0.0:*               LISTEN      1/redis-server\n";
        assert!(listening(netstat, "0.0.0.0:6379"));
        assert!(!listening(netstat, "0.0.0.0:637"));
        assert!(!listening(netstat, "0.0.0.0:16379"));
    }
}

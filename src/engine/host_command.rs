//! `command`: a program run on this machine (helm, redis-benchmark, a
//! script), pointed at the run's cluster and namespace, its exit code and
//! output checked as an `exec`'s are.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::context::Ctx;
use super::exec::{Ran, check_output};
use super::{Done, StepError};
use crate::k8s::jsonpath;
use crate::scenario::{HostCommand, Scenario};

/// How long the output pipes may stay open after the command ended.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Kills a command's whole process group when dropped: a script's
/// background children (a `kubectl port-forward &`) end with it, and so does
/// everything when the run is interrupted mid-step.
struct Group(Option<Pid>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // The group is ours: the command was started as its leader.
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }
}

/// Runs a command step.
pub async fn run(ctx: &Ctx, scenario: &Scenario, spec: &HostCommand, timeout: Duration) -> Result<Done, StepError> {
    let (program, args): (String, Vec<String>) = match (&spec.argv, &spec.script) {
        (Some(argv), None) if !argv.is_empty() => {
            (ctx.render(&argv[0]), argv[1..].iter().map(|a| ctx.render(a)).collect())
        }
        (None, Some(script)) => ("sh".into(), vec!["-ec".into(), ctx.render(script)]),
        _ => return Err(StepError::Invalid("command needs exactly one of argv (not empty), script".into())),
    };
    let kubeconfig = write_kubeconfig(ctx)?;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .env("RUNBOOK_NAMESPACE", &ctx.namespace)
        .env("RUNBOOK_CONTEXT", &ctx.context_name)
        .env("RUNBOOK_RUN_ID", ctx.render("{{ run_id }}"));
    if let Some(file) = &kubeconfig {
        command.env("KUBECONFIG", file.path());
    }
    for (name, value) in &spec.env {
        command.env(name, ctx.render(value));
    }
    if let Some(dir) = scenario.directory() {
        command.current_dir(dir);
    }
    let shown = super::command::host_program(spec, &|s| ctx.render(s));
    let first_line = shown.lines().next().unwrap_or_default();
    let looked_at = format!("`{first_line}` on this machine");
    let mut child = command.spawn().map_err(|e| StepError::Failed {
        expected: format!("{program} to start"),
        actual: e.to_string(),
        looked_at: looked_at.clone(),
        output: String::new(),
        diagnostics: None,
    })?;
    let group = Group(child.id().map(|id| Pid::from_raw(id as i32)));
    if let (Some(text), Some(mut input)) = (&spec.stdin, child.stdin.take()) {
        let text = ctx.render(text);
        tokio::spawn(async move {
            let _ = input.write_all(text.as_bytes()).await;
        });
    }
    let (mut out, mut err) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let stdout = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = out.read_to_end(&mut bytes).await;
        bytes
    });
    let stderr = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = err.read_to_end(&mut bytes).await;
        bytes
    });
    let status = tokio::time::timeout(timeout, child.wait()).await;
    // What the command left running in the background goes now, so its
    // output pipes close.
    drop(group);
    // A process that left the group (setsid, a daemon) may still hold the
    // pipes: what it wrote so far is not waited for longer than this.
    let rest = |reader: tokio::task::JoinHandle<Vec<u8>>| async move {
        let abort = reader.abort_handle();
        match tokio::time::timeout(PIPE_GRACE, reader).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned(),
            Err(_) => {
                abort.abort();
                "(output cut: a process the command started still holds it open)\n".into()
            }
        }
    };
    let (stdout, stderr) = tokio::join!(rest(stdout), rest(stderr));
    let code = match status {
        Err(_) => {
            return Err(StepError::Failed {
                expected: format!("the command to finish within {}s", timeout.as_secs_f64()),
                actual: "still running: killed".into(),
                looked_at,
                output: format!("{stdout}{stderr}"),
                diagnostics: None,
            });
        }
        Ok(status) => {
            let status = status.map_err(StepError::from_source)?;
            // A command ended by a signal reports 128 + the signal, as a shell does.
            status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0))
        }
    };
    let ran = Ran { pod: String::new(), stdout, stderr, code };
    let output = match &spec.path {
        None => check_output(ctx, &spec.expect, &ran, None, &looked_at)?,
        Some(path) => {
            let path = ctx.render(path);
            let looked_at = format!("{looked_at}, {path} of its JSON output");
            let json: Value = serde_json::from_str(&ran.stdout).map_err(|e| {
                StepError::failed("standard output in JSON", format!("not JSON ({e})"), looked_at.clone())
            })?;
            let value = jsonpath::get(&json, &path).map_err(|e| StepError::Invalid(e.to_string()))?;
            check_output(ctx, &spec.expect, &ran, Some(value), &looked_at)?;
            super::expect::show(value)
        }
    };
    Ok(Done { output, looked_at: Some(looked_at), ..Done::default() })
}

/// The run's kubeconfig written for the command (removed when dropped), or
/// none when the run was given a client rather than a kubeconfig.
pub(super) fn write_kubeconfig(ctx: &Ctx) -> Result<Option<tempfile::NamedTempFile>, StepError> {
    let Some(kubeconfig) = &ctx.kubeconfig else { return Ok(None) };
    let mut file = tempfile::Builder::new()
        .prefix("runbook-kubeconfig-")
        .suffix(".json")
        .tempfile()
        .map_err(StepError::from_source)?;
    serde_json::to_writer(&mut file, kubeconfig).map_err(StepError::from_source)?;
    Ok(Some(file))
}

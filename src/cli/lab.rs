//! `runbook lab up | down | status | kubeconfig`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::out::outln;
use crate::exit;
use crate::lab::{Lab, LabConfig, state_dir};

/// The lab subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start the lab: API server on 127.0.0.1, kubeconfig in the state dir.
    ///
    /// Runs in the foreground until Ctrl-C, or in the background with --detach.
    Up(UpArgs),
    /// Stop a detached lab and remove what it made.
    Down(DirArgs),
    /// Say whether a lab is running, and where (exit 1 when none is).
    Status(DirArgs),
    /// Print the running lab's kubeconfig (or its path with --path).
    Kubeconfig(KubeconfigArgs),
}

/// Where the lab keeps its files.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Directory for the lab's kubeconfig, pid file, log and volume data.
    ///
    /// Defaults to $XDG_RUNTIME_DIR/runbook/lab, else $XDG_DATA_HOME/runbook/lab,
    /// else ~/.local/share/runbook/lab. Labs with different state dirs are independent.
    #[arg(long, value_name = "DIR", env = "RUNBOOK_LAB_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl DirArgs {
    fn dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(state_dir::default_state_dir)
    }
}

/// Options of `lab up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Port on 127.0.0.1 to serve the API on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Start in the background and return once the API answers.
    ///
    /// The lab's pid goes to lab.pid and its output to lab.log in the state dir;
    /// `runbook lab down` stops it.
    #[arg(long)]
    pub detach: bool,
    /// Serve the API and controllers only: pods are stored but never run.
    ///
    /// Running pods needs root (Linux namespaces); this mode does not.
    #[arg(long)]
    pub api_only: bool,
    /// One-way network delay (`50ms`): every API request, its answer and
    /// every exec/port-forward message travel it, to rehearse a remote cluster.
    ///
    /// `--lab` runs take the same from RUNBOOK_LAB_LATENCY.
    #[arg(long, value_name = "DURATION", value_parser = parse_latency)]
    pub latency: Option<Duration>,
    /// Store NetworkPolicies without enforcing them, to rehearse a cluster
    /// whose network plugin ignores them (flannel, the CNI bridge): a
    /// partition drill is then skipped, saying why.
    #[arg(long)]
    pub ignore_network_policy: bool,
    /// How many nodes the lab has: `runbook-lab`, then `runbook-lab-m02`, ...
    ///
    /// Pods are spread over them as kube-scheduler spreads them; a scenario's
    /// `nodeDown` step takes one down. `run --lab` takes `--lab-nodes`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub nodes: u32,
    /// How long a node may miss heartbeats before it is marked unreachable
    /// (Ready Unknown, tainted, its pods not ready), as kube-controller-manager's
    /// flag of that name.
    #[arg(long, value_name = "DURATION", default_value = "50s", value_parser = parse_latency)]
    pub node_monitor_grace_period: Duration,
    /// State directory (see `lab down --help`).
    #[command(flatten)]
    pub dir: DirArgs,
}

/// Options of `lab kubeconfig`.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Print the kubeconfig's path instead of its content.
    #[arg(long)]
    pub path: bool,
    /// State directory (see `lab down --help`).
    #[command(flatten)]
    pub dir: DirArgs,
}

/// Runs a lab subcommand.
pub fn run(cmd: LabCommand) -> anyhow::Result<u8> {
    match cmd {
        LabCommand::Up(args) if args.detach => up_detached(&args),
        LabCommand::Up(args) => runtime()?.block_on(up_foreground(&args)),
        LabCommand::Down(args) => down(&args.dir()),
        LabCommand::Status(args) => status(&args.dir()),
        LabCommand::Kubeconfig(args) => {
            let path = state_dir::kubeconfig(&args.dir.dir());
            running_pid(&args.dir.dir()).ok_or_else(|| no_lab(&args.dir.dir()))?;
            if args.path {
                outln!("{}", path.display())?;
            } else {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                outln!("{}", text.trim_end())?;
            }
            Ok(exit::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn no_lab(dir: &Path) -> anyhow::Error {
    exit::check_failed(format!(
        "no lab is running with state dir {} (start one with `runbook lab up --detach`)",
        dir.display()
    ))
}

fn running_pid(dir: &Path) -> Option<i32> {
    state_dir::read_pid(dir).filter(|pid| state_dir::is_lab_process(*pid))
}

fn parse_latency(text: &str) -> Result<Duration, String> {
    crate::lab::latency::Latency::parse(text).map(|l| l.0)
}

async fn up_foreground(args: &UpArgs) -> anyhow::Result<u8> {
    let dir = args.dir.dir();
    if let Some(pid) = running_pid(&dir) {
        return Err(exit::invalid(format!(
            "a lab is already running from {} (pid {pid}); stop it with `runbook lab down` or use another --state-dir",
            dir.display()
        )));
    }
    let config = LabConfig {
        port: args.port,
        run_pods: !args.api_only,
        latency: args.latency,
        ignore_network_policy: args.ignore_network_policy,
        nodes: args.nodes,
        node_monitor_grace: args.node_monitor_grace_period,
        ..crate::lab_host::lab_config(dir.clone())?
    };
    let lab = Lab::start(config).await?;
    std::fs::write(state_dir::pid_file(&dir), std::process::id().to_string())?;
    outln!("runbook lab serving on {} (context {})", lab.server_url(), crate::lab::CONTEXT)?;
    outln!("export KUBECONFIG={}", lab.kubeconfig.display())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("runbook lab stopping");
    let kubeconfig = lab.kubeconfig.clone();
    lab.shutdown().await;
    let _ = std::fs::remove_file(state_dir::pid_file(&dir));
    let _ = std::fs::remove_file(kubeconfig);
    Ok(exit::SUCCESS)
}

fn up_detached(args: &UpArgs) -> anyhow::Result<u8> {
    let dir = args.dir.dir();
    if let Some(pid) = running_pid(&dir) {
        return Err(exit::invalid(format!("a lab is already running from {} (pid {pid})", dir.display())));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_file(state_dir::pid_file(&dir));
    let log = std::fs::File::create(state_dir::log_file(&dir))?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["lab", "up", "--port", &args.port.to_string(), "--state-dir"])
        .arg(&dir)
        .args(args.api_only.then_some("--api-only"))
        .args(args.latency.map(|l| format!("--latency={}ms", l.as_millis())))
        .args(args.ignore_network_policy.then_some("--ignore-network-policy"))
        .arg(format!("--nodes={}", args.nodes))
        .arg(format!("--node-monitor-grace-period={}ms", args.node_monitor_grace_period.as_millis()))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group, so the terminal's Ctrl-C does not reach it.
        .process_group(0)
        .spawn()
        .context("starting the lab process")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(state_dir::log_file(&dir)).unwrap_or_default();
            anyhow::bail!("the lab exited during start-up ({status}):\n{log}");
        }
        if state_dir::read_pid(&dir) == Some(child.id() as i32) && health(&dir).is_ok() {
            outln!("runbook lab running (pid {})", child.id())?;
            outln!("export KUBECONFIG={}", state_dir::kubeconfig(&dir).display())?;
            return Ok(exit::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    anyhow::bail!("the lab did not answer within 15 s; see {}", state_dir::log_file(&dir).display())
}

fn server_of(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(state_dir::kubeconfig(dir))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
        .ok_or_else(|| anyhow::anyhow!("no server in the kubeconfig"))
}

/// GET /readyz, authenticated, on the lab named by the state dir's kubeconfig.
fn health(dir: &Path) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(state_dir::kubeconfig(dir))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let client = kube::Client::try_from(config)?;
        let request = http::Request::get("/readyz").body(Vec::new())?;
        let reply = client.request_text(request).await?;
        anyhow::ensure!(reply.trim() == "ok", "readyz answered {reply:?}");
        Ok(())
    })
}

fn down(dir: &Path) -> anyhow::Result<u8> {
    let Some(pid) = running_pid(dir) else {
        let _ = std::fs::remove_file(state_dir::pid_file(dir));
        outln!("no lab running from {}", dir.display())?;
        return Ok(exit::SUCCESS);
    };
    kill(Pid::from_raw(pid), Signal::SIGTERM).context("signalling the lab")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && state_dir::is_lab_process(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if state_dir::is_lab_process(pid) {
        eprintln!("the lab (pid {pid}) did not stop within 20 s; killing it");
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(state_dir::pid_file(dir));
    outln!("runbook lab stopped (pid {pid})")?;
    Ok(exit::SUCCESS)
}

fn status(dir: &Path) -> anyhow::Result<u8> {
    match running_pid(dir) {
        None => {
            outln!("no lab running from {}", dir.display())?;
            Ok(exit::CHECK_FAILED)
        }
        Some(pid) => {
            let answering = health(dir).is_ok();
            outln!("runbook lab running (pid {pid})")?;
            outln!("server:     {}", server_of(dir).unwrap_or_default())?;
            outln!("kubeconfig: {}", state_dir::kubeconfig(dir).display())?;
            outln!("healthy:    {}", if answering { "yes" } else { "no (not answering /healthz)" })?;
            Ok(if answering { exit::SUCCESS } else { exit::INFRASTRUCTURE })
        }
    }
}

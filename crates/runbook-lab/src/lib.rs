//! The embedded lab: a Kubernetes stand-in of one node or more served on loopback, so
//! scenarios run end to end without a cluster. See docs/lab.md.

pub mod api;
pub mod bootstrap;
pub mod controllers;
pub mod kubelet;
pub mod latency;
pub mod net;
mod start_guard;
pub mod state_dir;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use api::ApiState;
use api::store::Store;

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Where the lab keeps its kubeconfig, pid file and volume data.
    pub state_dir: PathBuf,
    /// Run pods as processes (needs root). Without it the lab is an API server
    /// with controllers only, and pods stay Pending.
    pub run_pods: bool,
    /// The program that runs each pod's sandbox: it is started as
    /// `PROGRAM __sandbox SPEC.json` and must call [`kubelet::sandbox::run`]
    /// (runbook's hidden `__sandbox` command does). Needed when `run_pods`.
    pub sandbox_program: Option<PathBuf>,
    /// Images built from source rather than found on the host, each name
    /// mapped to its binary (bound into its pods at /usr/local/bin/NAME):
    /// runbook ships `counter-service`.
    pub built_images: Vec<(String, PathBuf)>,
    /// Faults to inject, as `RUNBOOK_LAB_FAULTS` writes them (default: that
    /// variable, else none).
    pub faults: Option<String>,
    /// A delay on every API request and stream message (default:
    /// `RUNBOOK_LAB_LATENCY`, else none); see [`latency`].
    pub latency: Option<std::time::Duration>,
    /// Remove the whole state dir when the lab stops (a lab started for one
    /// run); otherwise only pod data goes and the volumes stay.
    pub discard_state: bool,
    /// Store NetworkPolicies without enforcing them, as a cluster whose
    /// network plugin ignores them (flannel, the CNI bridge) does.
    pub ignore_network_policy: bool,
    /// How many nodes the lab has (at least one): pods are spread over them
    /// and each can be taken down on its own.
    pub nodes: u32,
    /// How long a node may miss heartbeats before it is marked unreachable
    /// (kube-controller-manager's `--node-monitor-grace-period`, 50 s).
    pub node_monitor_grace: std::time::Duration,
}

impl LabConfig {
    /// A lab that runs pods, with its state under `state_dir`.
    pub fn new(state_dir: PathBuf) -> Self {
        LabConfig {
            port: 0,
            state_dir,
            run_pods: true,
            sandbox_program: None,
            built_images: Vec::new(),
            faults: None,
            latency: None,
            discard_state: false,
            ignore_network_policy: false,
            nodes: 1,
            node_monitor_grace: std::time::Duration::from_secs(50),
        }
    }
}

/// A running lab. Dropping it stops the server; `shutdown` also waits for it.
pub struct Lab {
    /// The address the API server listens on.
    pub addr: SocketAddr,
    /// The bearer token clients present.
    pub token: String,
    /// Path of the kubeconfig written for this lab.
    pub kubeconfig: PathBuf,
    /// The object store (in-process tests and benchmarks read it directly).
    pub store: Arc<Store>,
    /// The faults being injected (tests read how many were).
    pub faults: Arc<api::faults::Faults>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    network: Option<Arc<kubelet::network::LabNetwork>>,
    kubelet: Option<Arc<kubelet::KubeletCtx>>,
    state_dir: PathBuf,
    discard_state: bool,
    /// The thread building the busybox roots in the state dir.
    prebuild: Option<std::thread::JoinHandle<()>>,
}

/// The kubeconfig context name the lab writes.
pub const CONTEXT: &str = "runbook-lab";

impl Lab {
    /// Starts the API server and controllers and writes the kubeconfig.
    pub async fn start(config: LabConfig) -> anyhow::Result<Lab> {
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("cannot create the lab state dir {}", config.state_dir.display()))?;
        let latency = match config.latency {
            Some(d) => latency::Latency(d),
            None => latency::Latency::from_env().map_err(|e| anyhow::anyhow!(e))?,
        };
        let token = random_token();
        let store = Arc::new(Store::new());
        let shutdown = CancellationToken::new();
        let mut guard = start_guard::StartGuard::new(config.state_dir.clone(), config.discard_state, shutdown.clone());
        let mut tasks = controllers::start(store.clone(), shutdown.clone());
        let certs = tls::generate()?;
        bootstrap::seed(&store, &certs.ca_pem, config.nodes)?;
        let (network, kubelet_ctx) = if config.run_pods {
            kubelet::sandbox::preflight()?;
            let sandbox_program = config
                .sandbox_program
                .clone()
                .context("LabConfig.sandbox_program is not set: a lab that runs pods needs the program that starts their sandboxes")?;
            let network = Arc::new(kubelet::network::LabNetwork::start().await?);
            guard.network = Some(network.clone());
            let ctx = Arc::new(kubelet::KubeletCtx {
                latency,
                store: store.clone(),
                state_dir: config.state_dir.clone(),
                network: network.clone(),
                built_images: config.built_images.clone(),
                sandbox_program,
                shutdown: shutdown.clone(),
                pods: Default::default(),
                cgroups: kubelet::cgroups::Cgroups::create(),
                usage: Default::default(),
                policies: Arc::new(kubelet::policy_enforcer::PolicyEnforcer::new(!config.ignore_network_policy)),
                down_nodes: Default::default(),
            });
            let beat = kubelet::heartbeat::interval(config.node_monitor_grace);
            tasks.push(tokio::spawn(kubelet::heartbeat::run(ctx.clone(), beat)));
            tasks.push(controllers::node_lifecycle::spawn(store.clone(), config.node_monitor_grace, shutdown.clone()));
            tasks.push(tokio::spawn(ctx.usage.clone().run(ctx.clone())));
            tasks.push(tokio::spawn(ctx.policies.clone().run(ctx.clone())));
            tasks.push(tokio::spawn(kubelet::run(ctx.clone())));
            // The busybox roots are built now rather than by the first pod
            // that needs one (a pod starting meanwhile waits for it).
            let userlands = config.state_dir.join("userlands");
            guard.prebuild = Some(std::thread::spawn(move || kubelet::userland::Userland::prebuild(&userlands)));
            let dns_addr = std::net::SocketAddr::from((kubelet::network::GATEWAY, 53));
            tasks.push(net::dns::start(store.clone(), network.holder_pid(), dns_addr, shutdown.clone())?);
            let proxy = net::proxy::ServiceProxy::new(store.clone(), network.holder_pid(), shutdown.clone());
            tasks.push(tokio::spawn(proxy.run()));
            (Some(network), Some(ctx))
        } else {
            (None, None)
        };
        let pods =
            kubelet_ctx.clone().map(|ctx| Arc::new(kubelet::KubeletSubresources(ctx)) as Arc<dyn api::PodSubresources>);
        let metrics = kubelet_ctx.clone().map(|ctx| ctx.usage.clone() as Arc<dyn api::metrics::MetricsSource>);
        tasks.push(controllers::hpa::spawn(store.clone(), metrics.clone(), shutdown.clone()));
        let faults = match &config.faults {
            Some(spec) => api::faults::Faults::parse(spec),
            None => api::faults::Faults::from_env(),
        };
        let faults = Arc::new(faults.map_err(|e| anyhow::anyhow!("RUNBOOK_LAB_FAULTS: {e}"))?);
        let state = Arc::new(ApiState {
            latency,
            store: store.clone(),
            token: token.clone(),
            shutdown: shutdown.clone(),
            pods,
            faults: faults.clone(),
            metrics,
        });
        let (addr, server) = api::serve(state, config.port, certs.server_config.clone()).await?;
        tasks.push(server);
        let kubeconfig = config.state_dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &format!("https://{addr}"), &token, &certs.ca_pem)?;
        Ok(Lab {
            addr,
            token,
            kubeconfig,
            store,
            shutdown,
            tasks,
            network,
            kubelet: kubelet_ctx,
            state_dir: config.state_dir,
            discard_state: config.discard_state,
            faults,
            prebuild: guard.finish(),
        })
    }

    /// The server URL (`https://127.0.0.1:PORT`).
    pub fn server_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Every process the lab started and that still runs: the network holder,
    /// pod sandboxes and container process groups (for leak checks).
    pub fn process_ids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        if let Some(network) = &self.network {
            pids.push(network.holder_pid());
        }
        if let Some(ctx) = &self.kubelet {
            for handle in ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).values() {
                pids.push(handle.sandbox_pid.load(std::sync::atomic::Ordering::SeqCst));
                pids.extend(handle.groups.lock().unwrap_or_else(|e| e.into_inner()).iter().copied());
            }
        }
        pids.retain(|p| *p != 0);
        pids
    }

    /// Stops pods (SIGTERM, then SIGKILL after a short grace), the network,
    /// the server and controllers, waits for them, and removes pod data.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(network) = self.network.take() {
            network.stop().await;
        }
        let prebuild = self.prebuild.take();
        let _ = tokio::task::spawn_blocking(move || start_guard::wait_for_prebuild(&mut { prebuild })).await;
        let _ = std::fs::remove_dir_all(self.state_dir.join("pods"));
        if self.discard_state {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

impl Drop for Lab {
    /// Dropped without `shutdown` (a panic, an early return): kill every
    /// process the lab started at once. Namespaces, veths and mounts belong to
    /// those processes and go with them.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(ctx) = &self.kubelet {
            for handle in ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).values() {
                handle.kill_now();
            }
        }
        if let Some(network) = &self.network {
            network.kill_now();
        }
        start_guard::wait_for_prebuild(&mut self.prebuild);
        if self.discard_state {
            // Pod mounts live in the pods' own mount namespaces, gone with
            // their processes: what remains here is plain files.
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a kubeconfig with one cluster, user and context (`runbook-lab`),
/// readable only by its owner since it holds the token.
pub fn write_kubeconfig(path: &Path, server: &str, token: &str, ca_pem: &str) -> anyhow::Result<()> {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\n\
         users:\n- name: {CONTEXT}\n  user:\n    token: {token}\ncontexts:\n- name: {CONTEXT}\n  context:\n    \
         cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\ncurrent-context: {CONTEXT}\n"
    );
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write the kubeconfig {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(())
}

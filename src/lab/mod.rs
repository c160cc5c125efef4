//! The embedded lab: a single-node Kubernetes stand-in served on loopback, so
//! scenarios run end to end without a cluster. See docs/lab.md.

pub mod api;
pub mod bootstrap;
pub mod controllers;
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
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The kubeconfig context name the lab writes.
pub const CONTEXT: &str = "runbook-lab";

impl Lab {
    /// Starts the API server and controllers and writes the kubeconfig.
    pub async fn start(config: LabConfig) -> anyhow::Result<Lab> {
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("cannot create the lab state dir {}", config.state_dir.display()))?;
        let token = random_token();
        let store = Arc::new(Store::new());
        let shutdown = CancellationToken::new();
        let mut tasks = controllers::start(store.clone(), shutdown.clone());
        bootstrap::seed(&store)?;
        let state =
            Arc::new(ApiState { store: store.clone(), token: token.clone(), shutdown: shutdown.clone(), pods: None });
        let certs = tls::generate()?;
        let (addr, server) = api::serve(state, config.port, certs.server_config.clone()).await?;
        tasks.push(server);
        let kubeconfig = config.state_dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &format!("https://{addr}"), &token, &certs.ca_pem)?;
        Ok(Lab { addr, token, kubeconfig, store, shutdown, tasks })
    }

    /// The server URL (`https://127.0.0.1:PORT`).
    pub fn server_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A kube-rs client for this lab.
    pub async fn client(&self) -> anyhow::Result<::kube::Client> {
        let kubeconfig = ::kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(::kube::Client::try_from(config)?)
    }

    /// Stops the server and controllers and waits for them.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown.cancel();
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

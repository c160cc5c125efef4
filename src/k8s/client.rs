//! Choosing the cluster as kubectl does (`--kubeconfig`, `KUBECONFIG`,
//! `--context`, `-n`), or the embedded lab; and the read-only client that makes
//! `verify` unable to write, enforced here in one place.

use std::path::{Path, PathBuf};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use http::{Method, Request};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::{Layer, Service};

use crate::lab::{Lab, LabConfig};

/// Refuses every request that could change the cluster. Exec and port-forward
/// are GETs upgraded to websockets, so they pass; they reach only the pod.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOnlyLayer;

impl<S> Layer<S> for ReadOnlyLayer {
    type Service = ReadOnly<S>;
    fn layer(&self, inner: S) -> ReadOnly<S> {
        ReadOnly(inner)
    }
}

/// The service [`ReadOnlyLayer`] makes.
#[derive(Debug, Clone)]
pub struct ReadOnly<S>(S);

/// The error a refused write gets.
pub const READ_ONLY_REFUSAL: &str = "runbook verify is read-only";

impl<S, B> Service<Request<B>> for ReadOnly<S>
where
    S: Service<Request<B>, Error = tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<S::Response, tower::BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            let refused = format!("{READ_ONLY_REFUSAL}: refused {} {}", req.method(), req.uri().path());
            return Box::pin(async move { Err(refused.into()) });
        }
        Box::pin(self.0.call(req))
    }
}

/// How the user chose the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterChoice {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `-n/--namespace`.
    pub namespace: Option<String>,
    /// `--lab`: a fresh embedded lab.
    pub lab: bool,
    /// `--lab-nodes`: how many nodes that lab has (default 1).
    pub lab_nodes: Option<u32>,
}

/// A connected cluster.
pub struct Connection {
    /// The client (read-only for verify).
    pub client: kube::Client,
    /// The namespace steps default to.
    pub namespace: String,
    /// Context name (`runbook-lab` for the lab).
    pub context: String,
    /// The API server URL.
    pub server: String,
    /// Whether this is an embedded lab runbook started or a lab kubeconfig.
    pub is_lab: bool,
    /// The embedded lab, when runbook started one; dropped with the connection.
    pub lab: Option<Lab>,
    /// Why runbook chose this cluster, when the user did not say.
    pub note: Option<String>,
    /// The kubeconfig as read, its current context the one chosen and that
    /// context's namespace the run's: what a `command` step's programs get.
    pub kubeconfig: Kubeconfig,
    /// The cluster's answer to `/version`: known when [`connect`] returns,
    /// still on its way after [`connect_unchecked`].
    pub reachable: Reachability,
}

/// The cluster's version (its gitVersion) once it answered `/version`, or
/// why it did not, as a message naming the server and context. Shared: the
/// run that awaits it reports the version without asking again.
pub type Reachability = futures::future::Shared<futures::future::BoxFuture<'static, Result<String, String>>>;

/// Asks the cluster for its version, at most 10 s.
fn ask_version(client: &kube::Client, server: &str, context: &str) -> Reachability {
    use futures::FutureExt;
    let (client, server, context) = (client.clone(), server.to_string(), context.to_string());
    async move {
        match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
            Ok(Ok(info)) => Ok(info.git_version),
            Ok(Err(e)) => Err(format!("cannot reach the cluster at {server} (context {context:?}): {e}")),
            Err(_) => Err(format!("cannot reach the cluster at {server} (context {context:?}): no answer within 10 s")),
        }
    }
    .boxed()
    .shared()
}

/// `kubeconfig` with `context` current and `namespace` as its namespace, so a
/// program given it (kubectl, helm) works where the run works.
pub fn pointed_at(mut kubeconfig: Kubeconfig, context: &str, namespace: &str) -> Kubeconfig {
    kubeconfig.current_context = Some(context.to_string());
    for named in kubeconfig.contexts.iter_mut().filter(|c| c.name == context) {
        if let Some(c) = named.context.as_mut() {
            c.namespace = Some(namespace.to_string());
        }
    }
    kubeconfig
}

fn kubeconfig_paths(choice: &ClusterChoice) -> Vec<PathBuf> {
    if let Some(p) = &choice.kubeconfig {
        return vec![p.clone()];
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&env).collect();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    vec![home.join(".kube/config")]
}

/// A client for the current context of the kubeconfig at `path` (tests and
/// benchmarks reach a lab this way).
pub async fn client_for(path: &Path) -> anyhow::Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Whether any kubeconfig exists where kubectl would look.
pub fn kubeconfig_exists(choice: &ClusterChoice) -> bool {
    kubeconfig_paths(choice).iter().any(|p| p.is_file())
}

/// Connects: the embedded lab when asked (or, with `lab_fallback`, when no
/// kubeconfig exists at all), else the kubeconfig's cluster, which must answer.
pub async fn connect(choice: &ClusterChoice, read_only: bool, lab_fallback: bool) -> anyhow::Result<Connection> {
    let conn = connect_unchecked(choice, read_only, lab_fallback).await?;
    conn.reachable.clone().await.map_err(|e| anyhow::anyhow!(e))?;
    Ok(conn)
}

/// As [`connect`], but returns as soon as the client is made: whether the
/// cluster answers is [`Connection::reachable`], for the caller to await
/// while it asks the cluster other things (on a remote cluster, a round trip
/// saved before a run's first step).
pub async fn connect_unchecked(
    choice: &ClusterChoice,
    read_only: bool,
    lab_fallback: bool,
) -> anyhow::Result<Connection> {
    let use_lab = choice.lab || (lab_fallback && choice.kubeconfig.is_none() && !kubeconfig_exists(choice));
    let mut lab = None;
    let mut note = None;
    let (kubeconfig, path) = if use_lab {
        if !choice.lab {
            note = Some(
                "no kubeconfig found: running on the embedded lab (use --kubeconfig or KUBECONFIG for a real cluster)"
                    .into(),
            );
        }
        let dir = std::env::temp_dir().join(format!("runbook-lab-{}", std::process::id()));
        let nodes = choice.lab_nodes.unwrap_or(1);
        let config = LabConfig { discard_state: true, nodes, ..crate::lab_host::lab_config(dir)? };
        let started = Lab::start(config).await.context("starting the embedded lab")?;
        let path = started.kubeconfig.clone();
        lab = Some(started);
        (Kubeconfig::read_from(&path)?, path)
    } else {
        let paths = kubeconfig_paths(choice);
        let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.is_file()).collect();
        let first = existing.first().ok_or_else(|| {
            anyhow::anyhow!(
                "no kubeconfig found (looked at {paths:?}); pass --kubeconfig, set KUBECONFIG, or use --lab"
            )
        })?;
        let mut merged = Kubeconfig::read_from(first)?;
        for more in existing.iter().skip(1) {
            merged = merged.merge(Kubeconfig::read_from(more)?)?;
        }
        (merged, (*first).clone())
    };
    let options = KubeConfigOptions { context: choice.context.clone(), ..Default::default() };
    let context = choice.context.clone().or(kubeconfig.current_context.clone()).unwrap_or_default();
    let kept = kubeconfig.clone();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(60));
    let server = config.cluster_url.to_string();
    let namespace = choice.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let builder = kube::client::ClientBuilder::try_from(config)?;
    // Retries wrap the transport; the read-only refusal wraps everything, so a
    // refused write is never retried.
    let builder = builder.with_layer(&super::retry::RetryLayer);
    let client = if read_only { builder.with_layer(&ReadOnlyLayer).build() } else { builder.build() };
    let reachable = ask_version(&client, &server, &context);
    // A kubeconfig the lab wrote: its context name and a loopback server (a
    // real cluster's context that happens to share the name is not the lab).
    let loopback = server.starts_with("https://127.0.0.1:") || server.starts_with("https://localhost:");
    let is_lab = lab.is_some() || (context == crate::lab::CONTEXT && loopback);
    let kubeconfig = pointed_at(kept, &context, &namespace);
    Ok(Connection { client, namespace, context, server, is_lab, lab, note, kubeconfig, reachable })
}

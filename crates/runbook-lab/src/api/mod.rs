//! The lab's Kubernetes API server: HTTP on loopback with a bearer token, an
//! in-memory object store with watch, discovery, OpenAPI, Tables, patches and
//! the protobuf bodies kubectl's generators send.

pub mod admission;
pub mod allocate;
pub mod apply_conflicts;
pub mod decode;
pub mod defaults;
pub mod discovery;
pub mod faults;
pub mod handlers;
pub mod immutable;
pub mod metrics;
pub mod names;
pub mod objects;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod route;
pub mod scale;
pub mod selectors;
pub mod status;
pub mod store;
pub mod table;
pub mod trace;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use route::Query;
use status::{ApiError, ApiResult};
use store::Store;

/// Serves the pod subresources that need running containers (`log`, `exec`,
/// `portforward`); provided by the lab's kubelet.
pub trait PodSubresources: Send + Sync {
    /// Serves `sub` for pod `ns/name`.
    fn serve<'a>(
        &'a self,
        sub: &'a str,
        ns: &'a str,
        name: &'a str,
        query: &'a Query,
        req: Request,
    ) -> BoxFuture<'a, ApiResult<Response>>;
}

/// What every request handler shares.
pub struct ApiState {
    /// The object store.
    pub store: Arc<Store>,
    /// The bearer token clients must present.
    pub token: String,
    /// Cancelled when the lab stops; ends watches and streams.
    pub shutdown: CancellationToken,
    /// Pod logs, exec and port-forward, when the lab runs pods.
    pub pods: Option<Arc<dyn PodSubresources>>,
    /// Injected faults (none unless asked for).
    pub faults: Arc<faults::Faults>,
    /// A delay on every request (`--latency`).
    pub latency: crate::latency::Latency,
    /// Pod and node usage for the metrics API, when the lab runs pods.
    pub metrics: Option<Arc<dyn metrics::MetricsSource>>,
}

fn authorized(token: &str, path: &str, headers: &HeaderMap) -> bool {
    // Health endpoints are public, as on a real API server.
    if matches!(path, "/healthz" | "/readyz" | "/livez") {
        return true;
    }
    let presented = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Compare in constant time: the token is the only thing guarding the lab.
    presented.is_some_and(|p| {
        p.len() == token.len() && p.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

/// The API router: authentication, then one dispatcher for every path.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(move |req: Request| {
        let state = state.clone();
        async move {
            if !authorized(&state.token, req.uri().path(), req.headers()) {
                return ApiError::unauthorized().into_response();
            }
            let health = matches!(req.uri().path(), "/healthz" | "/readyz" | "/livez");
            if !health {
                // A network hop away: the request travels the latency before it
                // is served (websocket upgrades too; their messages, see kubelet).
                state.latency.wait().await;
            }
            let exempt = health || req.headers().contains_key("upgrade");
            if !exempt && let Some(code) = state.faults.before(req.method().as_str()).await {
                let error = match code {
                    429 => ApiError::too_many_requests(),
                    503 => ApiError::unavailable("injected fault"),
                    other => ApiError::injected(other),
                };
                return error.into_response();
            }
            let latency = state.latency;
            let traced = trace::start(&req);
            let response = handlers::dispatch(state, req).await;
            trace::end(traced, &response);
            if !health {
                // …and the answer travels it back.
                latency.wait().await;
            }
            response
        }
    })
}

/// Binds `127.0.0.1:port` (0 for any free port) and serves HTTPS until
/// `shutdown`. Returns the bound address and the server task.
pub async fn serve(
    state: Arc<ApiState>,
    port: u16,
    tls: Arc<rustls::ServerConfig>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr()?;
    let shutdown = state.shutdown.clone();
    let app = router(state);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(_) => continue,
                },
            };
            // Port-forward and exec carry small request/reply messages: with
            // Nagle's algorithm a reply written in two parts (websocket frame,
            // TLS record) waits for the client's delayed ACK, ~40 ms each.
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                // A client that fails the handshake (wrong CA, plain HTTP) is simply dropped.
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service);
                let _ = watcher.watch(conn.into_owned()).await;
            });
        }
        // Watches end on the same cancellation; give in-flight requests a moment.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), graceful.shutdown()).await;
    });
    Ok((addr, task))
}

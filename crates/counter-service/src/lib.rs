//! counter-service: the web service of seed 003. `GET /:id` increments the
//! count for `id` in Redis and returns it; `/healthz` says the process lives,
//! `/readyz` says Redis answers. On SIGTERM it reports not-ready, keeps
//! serving for a moment (so endpoints drop it first), then finishes in-flight
//! requests and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use redis::AsyncCommands;

/// How long a Redis reply may take before the request fails.
const REDIS_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `REDIS_ADDR`, host:port (default `redis:6379`).
    pub redis_addr: String,
    /// `REDIS_PASSWORD`, if Redis requires one.
    pub redis_password: Option<String>,
    /// `LISTEN`, the address to serve on (default `0.0.0.0:8080`).
    pub listen: String,
    /// `SHUTDOWN_DELAY_MS`: how long to keep serving after SIGTERM (default 2000).
    pub shutdown_delay: Duration,
}

impl Settings {
    /// Reads the settings from the environment.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Settings {
            redis_addr: var("REDIS_ADDR").unwrap_or_else(|| "redis:6379".into()),
            redis_password: var("REDIS_PASSWORD"),
            listen: var("LISTEN").unwrap_or_else(|| "0.0.0.0:8080".into()),
            shutdown_delay: Duration::from_millis(
                var("SHUTDOWN_DELAY_MS").and_then(|v| v.parse().ok()).unwrap_or(2000),
            ),
        }
    }

    fn redis_url(&self) -> String {
        match &self.redis_password {
            Some(p) => format!("redis://:{}@{}/", urlencode(p), self.redis_addr),
            None => format!("redis://{}/", self.redis_addr),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What the handlers share.
pub struct AppState {
    redis: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    stopping: AtomicBool,
}

impl AppState {
    /// State for a Redis at the settings' address (connects lazily).
    pub fn new(settings: &Settings) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(AppState {
            redis: redis::Client::open(settings.redis_url())?,
            connection: Default::default(),
            stopping: AtomicBool::new(false),
        }))
    }

    async fn conn(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        // The client's default reply timeout (500 ms) turned a busy machine's
        // slow reply into a failed request (HTTP 503 "redis: timed out"); a
        // counter that waits a little is better than one that fails.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(REDIS_REPLY_TIMEOUT));
        let c = self.redis.get_multiplexed_async_connection_with_config(&config).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    /// Marks the service as shutting down (readiness fails from now on).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }
}

async fn count(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> (StatusCode, String) {
    let incr = || async {
        let mut conn = state.conn().await?;
        conn.incr::<_, _, i64>(&id, 1).await
    };
    let mut result = incr().await;
    // A connection Redis dropped (it restarted) failed before the command was
    // sent: reconnect and send it once more. Anything else is not retried, so
    // a count is never incremented twice.
    if let Err(e) = &result
        && (e.is_connection_dropped() || e.is_connection_refusal())
    {
        state.forget_connection().await;
        result = incr().await;
    }
    match result {
        Ok(n) => (StatusCode::OK, format!("{n}\n")),
        Err(e) => {
            state.forget_connection().await;
            (StatusCode::SERVICE_UNAVAILABLE, format!("redis: {e}\n"))
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.stopping.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let ping = async { redis::cmd("PING").query_async::<String>(&mut state.conn().await?).await }.await;
    match ping {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(_) => {
            state.forget_connection().await;
            (StatusCode::SERVICE_UNAVAILABLE, "redis not answering\n")
        }
    }
}

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/{id}", get(count))
        .with_state(state)
}

/// Serves until SIGTERM or Ctrl-C, then drains as described above.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let state = AppState::new(&settings)?;
    let listener = tokio::net::TcpListener::bind(&settings.listen).await?;
    eprintln!("counter-service listening on {} (redis {})", settings.listen, settings.redis_addr);
    let stopper = state.clone();
    let shutdown = async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        stopper.stop();
        eprintln!("stopping: not ready; serving {:?} more, then draining", settings.shutdown_delay);
        tokio::time::sleep(settings.shutdown_delay).await;
    };
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// A throwaway redis-server on a free loopback port.
    struct TestRedis(Child, u16);

    impl TestRedis {
        fn start(password: Option<&str>) -> TestRedis {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null());
            if let Some(p) = password {
                cmd.args(["--requirepass", p]);
            }
            let child = cmd.spawn().expect("redis-server installed (scripts/install-deps)");
            wait_for_redis(port);
            TestRedis(child, port)
        }
    }

    /// Waits until Redis answers a PING on the loopback port. A bare connect is
    /// not proof: the port is in the ephemeral range, and a connect to a port
    /// nobody listens on can connect to itself. Generous: the fuzz tests may
    /// have both cores while redis-server starts.
    fn wait_for_redis(port: u16) {
        use std::io::{Read, Write};
        let pong = || -> std::io::Result<bool> {
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
            conn.set_read_timeout(Some(Duration::from_secs(1)))?;
            conn.write_all(b"PING\r\n")?;
            // +PONG, or -NOAUTH from a server with a password; a socket
            // connected to itself would read its own "P".
            let mut first = [0u8; 1];
            conn.read_exact(&mut first)?;
            Ok(matches!(&first, b"+" | b"-"))
        };
        let started = std::time::Instant::now();
        while !pong().unwrap_or(false) {
            assert!(started.elapsed() < Duration::from_secs(20), "redis-server did not answer on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    impl Drop for TestRedis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn settings(port: u16, password: Option<&str>) -> Settings {
        Settings {
            redis_addr: format!("127.0.0.1:{port}"),
            redis_password: password.map(String::from),
            listen: String::new(),
            shutdown_delay: Duration::ZERO,
        }
    }

    async fn get(app: &Router, path: &str) -> (StatusCode, String) {
        use tower::ServiceExt;
        let response =
            app.clone().oneshot(axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn counts_per_id() {
        let redis = TestRedis::start(Some("s3cret"));
        let app = router(AppState::new(&settings(redis.1, Some("s3cret"))).unwrap());
        for n in 1..=3 {
            assert_eq!(get(&app, "/alice").await, (StatusCode::OK, format!("{n}\n")));
        }
        assert_eq!(get(&app, "/bob").await, (StatusCode::OK, "1\n".into()));
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn not_ready_without_redis_or_when_stopping() {
        let redis = TestRedis::start(Some("s3cret"));
        let wrong = router(AppState::new(&settings(redis.1, Some("wrong"))).unwrap());
        assert_eq!(get(&wrong, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(&wrong, "/x").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(&wrong, "/healthz").await, (StatusCode::OK, "ok\n".into()), "alive all the same");
        let state = AppState::new(&settings(redis.1, Some("s3cret"))).unwrap();
        let app = router(state.clone());
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
        state.stop();
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(&app, "/still-counting").await, (StatusCode::OK, "1\n".into()), "serves while draining");
    }

    #[tokio::test]
    async fn a_restarted_redis_costs_no_request() {
        let mut redis = TestRedis::start(None);
        let port = redis.1;
        let app = router(AppState::new(&settings(port, None)).unwrap());
        assert_eq!(get(&app, "/k").await, (StatusCode::OK, "1\n".into()));
        // Redis goes away and comes back on the same address.
        let _ = redis.0.kill();
        let _ = redis.0.wait();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null());
        redis.0 = cmd.spawn().unwrap();
        wait_for_redis(port);
        assert_eq!(
            get(&app, "/k").await,
            (StatusCode::OK, "1\n".into()),
            "the first request after the restart succeeds"
        );
    }

    #[test]
    fn passwords_are_url_encoded() {
        assert_eq!(urlencode("a b/c@d"), "a%20b%2Fc%40d");
    }
}

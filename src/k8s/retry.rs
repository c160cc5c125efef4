//! Retries for transient API failures with bounded exponential back-off and
//! jitter, on top of kube-rs's own (which covers 429, 503 and 504): this layer
//! adds dropped connections and 500/502. Only requests that are safe to
//! send twice are retried: reads, PUT/PATCH/DELETE (idempotent by their
//! semantics, server-side apply included) and any request the server refused
//! with 429. Websocket upgrades (exec, port-forward) are never retried here.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tokio::sync::Mutex;
use tower::{Layer, Service, ServiceExt};

/// Attempts in all, the first included.
pub const ATTEMPTS: u32 = 5;
const BASE: Duration = Duration::from_millis(50);
const CAP: Duration = Duration::from_secs(2);

/// Adds retries to a client's service stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryLayer;

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry(Arc::new(Mutex::new(inner)))
    }
}

/// The service [`RetryLayer`] makes.
pub struct Retry<S>(Arc<Mutex<S>>);

impl<S> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Retry(self.0.clone())
    }
}

/// Whether an answer says "try again".
pub fn transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// The delay before attempt `n` (1-based retries): doubling from 50 ms, capped
/// at 2 s, with jitter between half and all of it.
pub fn backoff(n: u32) -> Duration {
    let full = BASE.saturating_mul(1 << n.min(10)).min(CAP);
    let jitter: f64 = rand::random_range(0.5..=1.0);
    full.mul_f64(jitter)
}

impl<S, B> Service<Request<Body>> for Retry<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = tower::BoxError> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<Response<B>, tower::BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited per attempt, under the lock.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            let upgrade = req.headers().contains_key(http::header::UPGRADE);
            let idempotent = !matches!(*req.method(), Method::POST | Method::CONNECT);
            let (parts, body) = req.into_parts();
            let mut attempt = 0;
            loop {
                attempt += 1;
                let copy = if attempt < ATTEMPTS && !upgrade { body.try_clone() } else { None };
                let Some(copy) = copy else {
                    // The last attempt, or a body that cannot be sent twice: send the original.
                    return send(&inner, Request::from_parts(parts, body)).await;
                };
                let request = Request::from_parts(parts.clone(), copy);
                match send(&inner, request).await {
                    Ok(response)
                        if transient(response.status())
                            && (idempotent || response.status() == StatusCode::TOO_MANY_REQUESTS) => {}
                    Err(_) if idempotent => {}
                    other => return other,
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        })
    }
}

async fn send<S, B>(inner: &Arc<Mutex<S>>, request: Request<Body>) -> Result<Response<B>, tower::BoxError>
where
    S: Service<Request<Body>, Response = Response<B>, Error = tower::BoxError>,
{
    let future = {
        let mut service = inner.lock().await;
        service.ready().await?;
        service.call(request)
    };
    future.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        for n in 1..12 {
            let d = backoff(n);
            assert!(d <= CAP, "{n}: {d:?}");
            assert!(d >= BASE.saturating_mul(1 << n.min(10)).min(CAP) / 2);
        }
        assert!(transient(StatusCode::SERVICE_UNAVAILABLE) && transient(StatusCode::TOO_MANY_REQUESTS));
        assert!(!transient(StatusCode::CONFLICT) && !transient(StatusCode::NOT_FOUND));
    }
}

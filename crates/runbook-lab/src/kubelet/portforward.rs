//! `pods/portforward` over websocket, as kubectl asks for it (SPDY tunnelled
//! through the websocket: portforward_spdy.rs) or with the v4 channel framing kube-rs uses:
//! port i has data channel 2i and error channel 2i+1; the server first sends
//! the port number (little-endian) on both; the pod side of each port is a TCP
//! connection opened inside the pod's network namespace.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{FromRequestParts, Request};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::exec::{normal_close, upgrade};
use super::netutil::connect_in_netns;
use super::pod::PodHandle;
use crate::api::route::Query;
use crate::api::status::{ApiError, ApiResult};
use crate::latency::Latency;

/// Serves a port-forward session.
pub async fn serve(handle: Arc<PodHandle>, query: &Query, req: Request, latency: Latency) -> ApiResult<Response> {
    let sandbox = handle.sandbox_pid.load(Ordering::SeqCst);
    let offered = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if offered.split(',').any(|p| p.trim() == super::portforward_spdy::PROTOCOL) {
        // kubectl: SPDY tunnelled through the websocket; ports come per stream.
        let (mut parts, _) = req.into_parts();
        let ws = axum::extract::WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("this endpoint needs a websocket upgrade: {e}")))?;
        let ws = ws.protocols([super::portforward_spdy::PROTOCOL]);
        return Ok(ws.on_upgrade(move |socket| async move {
            let _ = super::portforward_spdy::session(socket, sandbox, latency).await;
        }));
    }
    let mut ports = Vec::new();
    for value in query.all("ports") {
        for p in value.split(',') {
            let port: u16 = p.trim().parse().map_err(|_| ApiError::bad_request(format!("invalid port {p:?}")))?;
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request("at least one port must be given (ports=6379)"));
    }
    let ws = upgrade(req).await?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _ = session(socket, sandbox, ports, latency).await;
    }))
}

async fn session(socket: WebSocket, sandbox: u32, ports: Vec<u16>, latency: Latency) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    // Each message with when it was sent, so that the latency delays it
    // without holding back the ones behind it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Message)>(64);
    let mut writers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data = (2 * i) as u8;
        let [lo, hi] = port.to_le_bytes();
        for ch in [data, data + 1] {
            sink.send(Message::Binary(Bytes::from(vec![ch, lo, hi]))).await?;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], *port));
        match connect_in_netns(sandbox, addr, Duration::from_secs(5)).await {
            Ok(conn) => {
                let (read, write) = conn.into_split();
                writers.push(Some(write));
                let tx = tx.clone();
                tokio::spawn(async move {
                    let framed = |bytes: &[u8]| {
                        let mut frame = Vec::with_capacity(bytes.len() + 1);
                        frame.push(data);
                        frame.extend_from_slice(bytes);
                        Message::Binary(Bytes::from(frame))
                    };
                    if copy_from_pod(read, &tx, framed).await {
                        let _ = tx.send((Instant::now(), normal_close())).await;
                    }
                });
            }
            Err(e) => {
                writers.push(None);
                let mut frame = vec![data + 1];
                frame.extend(format!("error forwarding port {port} to pod: {e}").into_bytes());
                sink.send(Message::Binary(Bytes::from(frame))).await?;
            }
        }
    }
    drop(tx);
    // No port could be reached: end the session, as the kubelet does once
    // every port's forwarding is over, so the client's data stream ends
    // instead of waiting for bytes that will never come.
    if writers.iter().all(Option::is_none) {
        let _ = sink.send(normal_close()).await;
        return Ok(());
    }
    let writer = tokio::spawn(async move {
        while let Some((sent, message)) = rx.recv().await {
            latency.hold(sent).await;
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        latency.wait().await;
        match message {
            Message::Binary(data) if data.len() > 1 => {
                let index = (data[0] / 2) as usize;
                if data[0] % 2 == 0
                    && let Some(Some(w)) = writers.get_mut(index)
                    && w.write_all(&data[1..]).await.is_err()
                {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    writer.abort();
    Ok(())
}

/// Sends what the pod side of a forwarded port writes, framed by `frame`,
/// each with when it was read (for the latency); true when the pod side
/// ended, false when the client side went away first. Both port-forward
/// protocols (this file's and portforward_spdy.rs) copy this way.
pub async fn copy_from_pod<T>(
    mut read: tokio::net::tcp::OwnedReadHalf,
    tx: &tokio::sync::mpsc::Sender<(Instant, T)>,
    frame: impl Fn(&[u8]) -> T,
) -> bool {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(n) => {
                if tx.send((Instant::now(), frame(&buf[..n]))).await.is_err() {
                    return false;
                }
            }
        }
    }
}

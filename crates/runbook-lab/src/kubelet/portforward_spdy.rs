//! `kubectl port-forward`: SPDY/3.1 tunnelled through a websocket
//! (subprotocol `SPDY/3.1+portforward.k8s.io`, what kubectl 1.31+ asks for
//! first). For each local connection kubectl opens an error stream and a
//! data stream with the same `requestid` and the pod `port`; the lab
//! connects to that port inside the pod's network namespace, copies bytes
//! both ways, and closes both streams when the pod side ends (kubectl
//! waits for the error stream's end before it finishes a connection). A
//! port nothing listens on gets the error on the error stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use super::netutil::connect_in_netns;
use super::portforward::copy_from_pod;
use super::spdy::{self, Frame};
use crate::latency::Latency;

/// The websocket subprotocol kubectl asks for.
pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Runs one session until the client leaves.
pub async fn session(socket: WebSocket, sandbox: u32, latency: Latency) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(64);
    let writer = tokio::spawn(async move {
        while let Some((sent, bytes)) = rx.recv().await {
            latency.hold(sent).await;
            if sink.send(Message::Binary(Bytes::from(bytes))).await.is_err() {
                break;
            }
        }
    });
    let mut reader = spdy::Reader::default();
    let mut replies = spdy::Writer::default();
    // Error stream of each request id; the pod side of each data stream.
    let mut errors: HashMap<String, u32> = HashMap::new();
    let mut pods: HashMap<u32, OwnedWriteHalf> = HashMap::new();
    'session: while let Some(Ok(message)) = stream.next().await {
        latency.wait().await;
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Close(_) => break,
            _ => continue,
        };
        reader.feed(&bytes);
        while let Some(frame) = reader.next_frame().map_err(anyhow::Error::msg)? {
            match frame {
                Frame::SynStream { id, headers, .. } => {
                    send(&tx, replies.syn_reply(id)).await;
                    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                    let request = header("requestid").unwrap_or_default();
                    match header("streamtype").as_deref() {
                        Some("error") => {
                            errors.insert(request, id);
                        }
                        Some("data") => {
                            let error_stream = errors.remove(&request);
                            let port = header("port").and_then(|p| p.parse::<u16>().ok());
                            if let Some(pod) = open(sandbox, id, error_stream, port, &tx).await {
                                pods.insert(id, pod);
                            }
                        }
                        _ => {}
                    }
                }
                Frame::Data { id, fin, payload } => {
                    if let Some(pod) = pods.get_mut(&id) {
                        if !payload.is_empty() && pod.write_all(&payload).await.is_err() {
                            pods.remove(&id);
                        } else if fin {
                            // The client is done sending: the pod sees the end of input.
                            let _ = pod.shutdown().await;
                            pods.remove(&id);
                        }
                    }
                }
                Frame::RstStream { id } => {
                    pods.remove(&id);
                }
                Frame::Ping { id } => send(&tx, spdy::ping(id)).await,
                Frame::GoAway => break 'session,
                Frame::Other => {}
            }
        }
    }
    drop(tx);
    writer.abort();
    Ok(())
}

async fn send(tx: &Sender<(Instant, Vec<u8>)>, frame: Vec<u8>) {
    let _ = tx.send((Instant::now(), frame)).await;
}

/// Connects data stream `id` to `port` in the pod and copies what the pod
/// sends to the client; the pod's write half, or None when the port refused
/// (the error is written on the error stream, and both streams end).
async fn open(
    sandbox: u32,
    id: u32,
    error_stream: Option<u32>,
    port: Option<u16>,
    tx: &Sender<(Instant, Vec<u8>)>,
) -> Option<OwnedWriteHalf> {
    let end = move |tx: Sender<(Instant, Vec<u8>)>, message: Option<String>| async move {
        if let Some(error_id) = error_stream {
            send(&tx, spdy::data(error_id, true, message.unwrap_or_default().as_bytes())).await;
        }
        send(&tx, spdy::data(id, true, &[])).await;
    };
    let Some(port) = port else {
        end(tx.clone(), Some("invalid port header in the port-forward request".into())).await;
        return None;
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match connect_in_netns(sandbox, addr, Duration::from_secs(5)).await {
        Ok(conn) => {
            let (read, write) = conn.into_split();
            let tx = tx.clone();
            tokio::spawn(async move {
                if copy_from_pod(read, &tx, |bytes| spdy::data(id, false, bytes)).await {
                    end(tx, None).await;
                }
            });
            Some(write)
        }
        Err(e) => {
            end(tx.clone(), Some(format!("error forwarding port {port} to pod: {e}"))).await;
            None
        }
    }
}

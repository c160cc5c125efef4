//! Watch streams: newline-delimited JSON events, resumable from a resource
//! version, with bookmarks, `timeoutSeconds`, 410 Gone for compacted history and
//! the watch-list protocol (`sendInitialEvents` ending in an
//! `initial-events-end` bookmark) that kubectl tries first.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use super::store::{Change, ChangeType, Store};
use super::table;

/// What a watch asks for.
pub struct WatchRequest {
    /// The resource type watched.
    pub rt: &'static ResourceType,
    /// Namespace, or None for all.
    pub ns: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// `resourceVersion` to resume after ("" or "0": start with the current state).
    pub resource_version: String,
    /// How long the stream lasts.
    pub timeout: Duration,
    /// Whether to send periodic BOOKMARK events.
    pub bookmarks: bool,
    /// Watch-list: send the current state, then an `initial-events-end` bookmark.
    pub send_initial_events: bool,
    /// Wrap objects in Tables (kubectl get --watch).
    pub as_table: bool,
}

/// How often bookmarks are sent on quiet streams.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

impl WatchRequest {
    fn selects(&self, object: &Value) -> bool {
        let ns_ok = self.ns.as_deref().is_none_or(|ns| object["metadata"]["namespace"] == ns);
        ns_ok && self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event a change makes on this watch, if any: with a selector, an
    /// update that brings an object into it is ADDED and one that takes it
    /// out is DELETED (with the object as it was), as the API server's watch
    /// cache says it.
    fn event_for(&self, change: &Change) -> Option<Bytes> {
        if change.resource != self.rt.key() {
            return None;
        }
        let now = self.selects(&change.object);
        let before = change.previous.as_deref().map(|p| self.selects(p));
        match (change.kind, before) {
            (ChangeType::Modified, Some(false)) if now => Some(self.event("ADDED", &change.object)),
            (ChangeType::Modified, Some(true)) if !now => {
                Some(self.event("DELETED", change.previous.as_deref().expect("selected before")))
            }
            _ if now => Some(self.event(change.kind.as_str(), &change.object)),
            _ => None,
        }
    }

    fn event(&self, kind: &str, object: &Value) -> Bytes {
        let object = if self.as_table && kind != "BOOKMARK" && kind != "ERROR" {
            table::to_table(self.rt, &[object], json!({"resourceVersion": object["metadata"]["resourceVersion"]}))
        } else {
            object.clone()
        };
        let mut line = json!({"type": kind, "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.event("BOOKMARK", &json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta}))
    }
}

/// Starts a watch and returns the streaming response.
pub fn serve(store: Arc<Store>, req: WatchRequest, shutdown: CancellationToken) -> ApiResult<Response> {
    if req.send_initial_events && !req.bookmarks {
        return Err(ApiError::invalid(
            "ListOptions",
            "",
            vec![("allowWatchBookmarks".into(), "sendInitialEvents requires allowWatchBookmarks=true".into())],
        ));
    }
    let fresh = req.resource_version.is_empty() || req.resource_version == "0" || req.send_initial_events;
    let since: u64 = if fresh {
        0
    } else {
        req.resource_version
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {:?}", req.resource_version)))?
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut first: Vec<Bytes> = Vec::new();
    let mut last_rv;
    let mut receiver;
    if fresh {
        // Read the state and subscribe from the same version, so no change is lost.
        let (items, rv) = store.list(req.rt.key(), req.ns.as_deref());
        let (_, rx) = store.subscribe(rv).ok_or_else(|| ApiError::internal("watch history unavailable"))?;
        receiver = rx;
        last_rv = rv;
        first.extend(items.iter().filter(|o| req.selects(o)).map(|o| req.event("ADDED", o)));
        if req.send_initial_events {
            first.push(req.bookmark(rv, true));
        }
    } else {
        match store.subscribe(since) {
            None => {
                let gone = ApiError::gone(format!("too old resource version: {since} ({})", store.current_rv()));
                first.push(req.event("ERROR", &gone.to_status()));
                let _ = tx.try_send(Ok(first.remove(0)));
                drop(tx);
                return Ok(stream_response(rx));
            }
            Some((backlog, rx)) => {
                receiver = rx;
                last_rv = since;
                for change in &backlog {
                    last_rv = change.rv;
                    first.extend(req.event_for(change));
                }
                last_rv = backlog.last().map(|c| c.rv).unwrap_or(last_rv);
            }
        }
    }
    tokio::spawn(async move {
        for line in first {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(req.timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            let line = tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if req.bookmarks => req.bookmark(last_rv, false),
                change = receiver.recv() => match change {
                    Ok(change) => {
                        if change.rv <= last_rv {
                            continue;
                        }
                        last_rv = change.rv;
                        let Some(event) = req.event_for(&change) else { continue };
                        event
                    }
                    // A slow client that fell behind: end the stream; it resumes
                    // from the last version it saw, as with a real API server.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    Ok(stream_response(rx))
}

fn stream_response(rx: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(stream))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selecting(selector: &str) -> WatchRequest {
        WatchRequest {
            rt: super::super::resources::by_key("configmaps").unwrap(),
            ns: None,
            labels: LabelSelector::parse(selector).unwrap(),
            fields: FieldSelector::parse("").unwrap(),
            resource_version: String::new(),
            timeout: Duration::from_secs(1),
            bookmarks: false,
            send_initial_events: false,
            as_table: false,
        }
    }

    fn update(before: Value, after: Value) -> Change {
        Change {
            rv: 2,
            resource: "configmaps",
            kind: ChangeType::Modified,
            object: Arc::new(after),
            previous: Some(Arc::new(before)),
        }
    }

    fn event_type(line: Option<Bytes>) -> Option<String> {
        line.map(|l| serde_json::from_slice::<Value>(&l).unwrap()["type"].as_str().unwrap().to_string())
    }

    #[test]
    fn an_update_into_or_out_of_a_selection_is_added_or_deleted() {
        let watch = selecting("tier=cache");
        let (plain, labelled) =
            (json!({"metadata": {"name": "a"}}), json!({"metadata": {"name": "a", "labels": {"tier": "cache"}}}));
        assert_eq!(event_type(watch.event_for(&update(plain.clone(), labelled.clone()))).as_deref(), Some("ADDED"));
        assert_eq!(
            event_type(watch.event_for(&update(labelled.clone(), labelled.clone()))).as_deref(),
            Some("MODIFIED")
        );
        assert_eq!(event_type(watch.event_for(&update(labelled.clone(), plain.clone()))).as_deref(), Some("DELETED"));
        assert_eq!(event_type(watch.event_for(&update(plain.clone(), plain))), None);
    }
}

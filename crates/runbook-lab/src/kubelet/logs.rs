//! `pods/log`: a container's output, with `tailLines`, `previous`, `limitBytes`
//! and `follow`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::Value;

use super::KubeletCtx;
use super::container::{current_log_path, previous_log_path};
use super::pod::PodHandle;
use crate::api::route::Query;
use crate::api::status::{ApiError, ApiResult};

/// Picks the container a request names, or the pod's only one.
pub fn choose_container(pod: &Value, requested: Option<&str>) -> ApiResult<String> {
    let names: Vec<String> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| pod["spec"][k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    match requested.filter(|c| !c.is_empty()) {
        Some(name) if names.iter().any(|n| n == name) => Ok(name.to_string()),
        Some(name) => Err(ApiError::bad_request(format!("container {name} is not valid for pod {pod_name}"))),
        None => {
            let mains = pod["spec"]["containers"].as_array().map(Vec::len).unwrap_or(0);
            if mains == 1 {
                Ok(names[0].clone())
            } else {
                Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    names.join(" ")
                )))
            }
        }
    }
}

fn tail(text: &[u8], lines: Option<i64>) -> &[u8] {
    let Some(n) = lines.filter(|n| *n >= 0) else { return text };
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut count = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            count += 1;
            if count == n {
                return &text[i + 1..];
            }
        }
    }
    if n == 0 { &text[text.len()..] } else { text }
}

/// Serves the log of one container of a running pod.
pub async fn serve(ctx: &Arc<KubeletCtx>, handle: Arc<PodHandle>, pod: &Value, query: &Query) -> ApiResult<Response> {
    let container = choose_container(pod, query.get("container"))?;
    let path = if query.flag("previous") {
        previous_log_path(&handle, &container)
    } else {
        current_log_path(&handle, &container)
    };
    let mut content = std::fs::read(&path).map_err(|_| {
        ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{}\" is waiting to start: no log yet",
            handle.name
        ))
    })?;
    let mut offset = content.len() as u64;
    content = tail(&content, query.int("tailLines")?).to_vec();
    if let Some(limit) = query.int("limitBytes")? {
        content.truncate(limit.max(0) as usize);
    }
    let text_response = |body: Body| {
        Response::builder().status(200).header("content-type", "text/plain").body(body).expect("static parts")
    };
    if !query.flag("follow") {
        return Ok(text_response(Body::from(content)));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(64);
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(content))).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = handle.finished() => return,
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if (bytes.len() as u64) < offset {
                offset = 0; // the container restarted into a new log
            }
            if bytes.len() as u64 > offset {
                let new = Bytes::copy_from_slice(&bytes[offset as usize..]);
                offset = bytes.len() as u64;
                if tx.send(Ok(new)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(text_response(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines() {
        assert_eq!(tail(b"a\nb\nc\n", Some(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", Some(5)), b"a\nb\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", Some(0)), b"");
        assert_eq!(tail(b"a\nb\nc", None), b"a\nb\nc");
    }
}

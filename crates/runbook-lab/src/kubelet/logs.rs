//! `pods/log`: a container's output, with `tailLines`, `previous`, `limitBytes`,
//! `timestamps`, `sinceSeconds`, `sinceTime` and `follow`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::Value;

use super::KubeletCtx;
use super::container::{current_log_path, previous_log_path};
use super::logfile;
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

/// Whether container `name` has the log a request asks for, decided from
/// its status as the kubelet does (`validateContainerLogStatus`): the errors
/// are the kubelet's, so `kubectl logs` says what it says on a cluster.
pub fn check_status(pod: &Value, name: &str, previous: bool) -> ApiResult<()> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let status = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][k].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
        .ok_or_else(|| ApiError::bad_request(format!("container \"{name}\" in pod \"{pod_name}\" is not available")))?;
    let (state, last) = (&status["state"], &status["lastState"]["terminated"]);
    let has_id = |v: &Value| v["containerID"].as_str().is_some_and(|id| !id.is_empty());
    let failure =
        |what: String| Err(ApiError::bad_request(format!("container \"{name}\" in pod \"{pod_name}\" {what}")));
    if previous {
        if !has_id(last) {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{name}\" in pod \"{pod_name}\" not found"
            )));
        }
        return Ok(());
    }
    if state["running"].is_object() {
        return Ok(());
    }
    if state["terminated"].is_object() || last.is_object() {
        return if has_id(&state["terminated"]) || has_id(last) { Ok(()) } else { failure("is terminated".into()) };
    }
    match state["waiting"]["reason"].as_str() {
        Some("ErrImagePull") => failure("is waiting to start: image can't be pulled".into()),
        Some("ImagePullBackOff") => failure("is waiting to start: trying and failing to pull image".into()),
        Some(reason) => failure(format!("is waiting to start: {reason}")),
        None => failure("is waiting to start - no logs yet".into()),
    }
}

/// Serves the log of `container` of a running pod.
pub async fn serve(
    ctx: &Arc<KubeletCtx>,
    handle: Arc<PodHandle>,
    container: String,
    query: &Query,
) -> ApiResult<Response> {
    let path = if query.flag("previous") {
        previous_log_path(&handle, &container)
    } else {
        current_log_path(&handle, &container)
    };
    let bytes = std::fs::read(&path).map_err(|_| {
        ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{}\" is waiting to start - no logs yet",
            handle.name
        ))
    })?;
    let view = view_of(query)?;
    // Where the records read so far end (follow goes on from there).
    let mut offset = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) as u64;
    let mut content = view.render(&bytes);
    if let Some(limit) = query.int("limitBytes")? {
        content.truncate(limit.max(0) as usize);
    }
    let text_response = |body: Body| {
        Response::builder().status(200).header("content-type", "text/plain").body(body).expect("static parts")
    };
    if !query.flag("follow") {
        return Ok(text_response(Body::from(content)));
    }
    let later = logfile::View { tail_lines: None, ..view };
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
            let new = &bytes[offset as usize..];
            let Some(end) = new.iter().rposition(|b| *b == b'\n') else { continue };
            offset += end as u64 + 1;
            if tx.send(Ok(Bytes::from(later.render(&new[..=end])))).await.is_err() {
                return;
            }
        }
    });
    Ok(text_response(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))))
}

/// The part of the log a request asks for: `timestamps`, `tailLines`,
/// `sinceSeconds` or `sinceTime`.
fn view_of(query: &Query) -> ApiResult<logfile::View> {
    let since = match (query.int("sinceSeconds")?, query.get("sinceTime")) {
        (Some(seconds), _) => Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds)),
        (None, Some(time)) => Some(
            time.parse::<jiff::Timestamp>().map_err(|e| ApiError::bad_request(format!("sinceTime {time:?}: {e}")))?,
        ),
        (None, None) => None,
    };
    Ok(logfile::View {
        timestamps: query.flag("timestamps"),
        since,
        tail_lines: query.int("tailLines")?.map(|n| n.max(0) as usize),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(state: Value, last: Value) -> Value {
        json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [
            {"name": "c", "state": state, "lastState": last}]}})
    }

    fn error(pod: &Value, previous: bool) -> String {
        check_status(pod, "c", previous).unwrap_err().message
    }

    #[test]
    fn answers_from_the_container_status_as_the_kubelet_does() {
        let pulling = pod(json!({"waiting": {"reason": "ImagePullBackOff"}}), json!({}));
        assert_eq!(
            error(&pulling, false),
            "container \"c\" in pod \"p\" is waiting to start: trying and failing to pull image"
        );
        let creating = pod(json!({"waiting": {"reason": "ContainerCreating"}}), json!({}));
        assert_eq!(error(&creating, false), "container \"c\" in pod \"p\" is waiting to start: ContainerCreating");
        assert_eq!(error(&creating, true), "previous terminated container \"c\" in pod \"p\" not found");
        let restarted = pod(json!({"running": {}}), json!({"terminated": {"containerID": "runbook://7"}}));
        assert!(check_status(&restarted, "c", true).is_ok() && check_status(&restarted, "c", false).is_ok());
        assert_eq!(
            error(&pod(json!({}), json!({})), false),
            "container \"c\" in pod \"p\" is waiting to start - no logs yet"
        );
    }
}

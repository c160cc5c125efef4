//! The `/scale` subresource: an `autoscaling/v1 Scale` view of a workload's
//! replicas, as `kubectl scale` and HPAs read and write it.

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiState;
use super::handlers::json_response;
use super::objects::{self, Part};
use super::patch::{self, PatchKind};
use super::resources::ResourceType;
use super::status::{ApiError, ApiResult};

fn selector_string(object: &Value) -> String {
    let mut parts: Vec<String> = object["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    parts.sort();
    parts.join(",")
}

fn scale_of(object: &Value) -> Value {
    let meta = &object["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                     "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": object["spec"]["replicas"]},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector_string(object)},
    })
}

/// Serves GET, PUT and PATCH on `/scale`.
pub async fn serve(
    state: &ApiState,
    req: Request,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    method: Method,
) -> ApiResult<Response> {
    let store = &state.store;
    let current =
        store.get(rt.key(), ns, name).ok_or_else(|| ApiError::not_found(&objects::resource_name(rt), name))?;
    if method == Method::GET {
        return Ok(json_response(200, &scale_of(&current)));
    }
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body =
        axum::body::to_bytes(req.into_body(), 1 << 20).await.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut scale = scale_of(&current);
    match method {
        Method::PUT => scale = patch::parse_json(&body)?,
        Method::PATCH => {
            let kind = PatchKind::from_content_type(&content_type)
                .ok_or_else(|| ApiError::unsupported_media(&content_type))?;
            if kind == PatchKind::Apply {
                return Err(ApiError::unsupported_media("apply patches on /scale"));
            }
            patch::apply_patch(kind, &mut scale, &body)?;
        }
        _ => return Err(ApiError::method_not_allowed(format!("{method} on /scale"))),
    }
    let replicas = scale["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::invalid("Scale", name, vec![("spec.replicas".into(), "Required value".into())]))?;
    let mut next = (*current).clone();
    next["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = scale["metadata"]["resourceVersion"].as_str() {
        next["metadata"]["resourceVersion"] = json!(rv);
    }
    let updated = objects::update(store, rt, ns, name, next, Part::Main)?;
    Ok(json_response(200, &scale_of(&updated)))
}

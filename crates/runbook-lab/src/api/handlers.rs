//! The HTTP side of the API: one dispatcher reads the route, the verb and the
//! body, calls the object operations, and renders JSON, Tables or watches.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::ApiState;
use super::decode::{self, FieldValidation};
use super::discovery;
use super::metrics;
use super::objects::{self, Part, Propagation};
use super::patch::{self, PatchKind};
use super::protobuf;
use super::resources::ResourceType;
use super::route::{self, Query, Route};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use super::table;
use super::watch::{self, WatchRequest};

/// Largest request body the lab reads (the API server's own limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Serves one authenticated request.
pub async fn dispatch(state: Arc<ApiState>, req: Request) -> Response {
    match dispatch_inner(state, req).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn dispatch_inner(state: Arc<ApiState>, req: Request) -> ApiResult<Response> {
    let route = route::parse(req.uri().path())?;
    if let Some(warning) = route.deprecation() {
        let response = dispatch_routed(state, req, route).await?;
        return Ok(with_warnings(response, &[warning.to_string()]));
    }
    dispatch_routed(state, req, route).await
}

async fn dispatch_routed(state: Arc<ApiState>, req: Request, route: Route) -> ApiResult<Response> {
    let query = Query::parse(req.uri().query())?;
    let accept = header(req.headers(), "accept");
    match route {
        Route::Version => Ok(json_response(200, &discovery::version())),
        Route::Health => Ok((axum::http::StatusCode::OK, "ok").into_response()),
        Route::CoreVersions | Route::Groups => {
            let core = route == Route::CoreVersions;
            if discovery::wants_aggregated(&accept) {
                let body = discovery::aggregated(core).to_string();
                Ok(([("content-type", discovery::AGGREGATED_CONTENT_TYPE)], body).into_response())
            } else if core {
                Ok(json_response(200, &discovery::core_versions()))
            } else {
                Ok(json_response(200, &discovery::group_list()))
            }
        }
        Route::Group(g) => Ok(json_response(200, &discovery::group(&g))),
        Route::ResourceList(g, v) => Ok(json_response(200, &discovery::resource_list(&g, &v))),
        Route::OpenApiIndex => Ok(json_response(200, &discovery::openapi_index())),
        Route::OpenApiV2 if accept.contains("protobuf") => {
            // An empty message is a valid (empty) gnostic OpenAPI v2 Document.
            Ok(([("content-type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")], Vec::<u8>::new())
                .into_response())
        }
        Route::OpenApiV2 => Ok(json_response(200, &discovery::openapi_v2())),
        Route::OpenApiGroup(path) => discovery::openapi_group(&path)
            .map(|doc| json_response(200, &doc))
            .ok_or_else(|| ApiError::no_route(req.uri().path())),
        Route::Metrics(route) => {
            let selector = query.get("labelSelector").unwrap_or_default();
            metrics::serve(&state.store, state.metrics.as_deref(), &route, req.method().as_str(), selector)
        }
        Route::Collection { rt, ns } => collection(state, req, rt, ns, &query, &accept).await,
        Route::Object { rt, ns, name, sub: None } => object(state, req, rt, &ns, &name, &query, &accept).await,
        Route::Object { rt, ns, name, sub: Some(sub) } => subresource(state, req, rt, &ns, &name, &sub, &query).await,
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// A JSON reply.
pub fn json_response(code: u16, value: &Value) -> Response {
    let status = axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::OK);
    (status, [("content-type", "application/json")], value.to_string()).into_response()
}

async fn read_body(req: Request) -> ApiResult<(String, Bytes)> {
    let content_type = header(req.headers(), "content-type");
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
    Ok((content_type, body))
}

/// Decodes a create/update body: JSON, YAML or (for kubectl's generators) protobuf.
fn decode_object(content_type: &str, body: &[u8]) -> ApiResult<Value> {
    let base = content_type.split(';').next().unwrap_or_default().trim();
    match base {
        protobuf::PROTOBUF_CONTENT_TYPE => protobuf::decode(body),
        "application/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}"))),
        "" | "application/json" | "*/*" => patch::parse_json(body),
        other => Err(ApiError::unsupported_media(other)),
    }
}

fn selectors(query: &Query) -> ApiResult<(LabelSelector, FieldSelector)> {
    Ok((
        LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?,
        FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())?,
    ))
}

fn dry_run(query: &Query) -> bool {
    query.get("dryRun") == Some("All")
}

async fn collection(
    state: Arc<ApiState>,
    req: Request,
    rt: &'static ResourceType,
    ns: Option<String>,
    query: &Query,
    accept: &str,
) -> ApiResult<Response> {
    let ns = if rt.namespaced { ns } else { None };
    match *req.method() {
        Method::GET if query.flag("watch") => {
            let (labels, fields) = selectors(query)?;
            let timeout = query.int("timeoutSeconds")?.unwrap_or(1800).clamp(1, 3600) as u64;
            watch::serve(
                state.store.clone(),
                WatchRequest {
                    rt,
                    ns,
                    labels,
                    fields,
                    resource_version: query.get("resourceVersion").unwrap_or_default().to_string(),
                    timeout: state.faults.watch_limit(Duration::from_secs(timeout)),
                    bookmarks: query.flag("allowWatchBookmarks"),
                    send_initial_events: query.flag("sendInitialEvents"),
                    as_table: table::wants_table(accept),
                },
                state.shutdown.clone(),
            )
        }
        Method::GET => list(&state, rt, ns.as_deref(), query, accept),
        Method::POST => {
            let ns = match (rt.namespaced, ns) {
                (true, Some(ns)) => ns,
                (true, None) => return Err(ApiError::method_not_allowed("create needs a namespace in the path")),
                (false, _) => String::new(),
            };
            let (content_type, body) = read_body(req).await?;
            let object = decode_object(&content_type, &body)?;
            let warnings = decode::check(rt, &object, FieldValidation::of(query)?)?;
            let created = objects::create(&state.store, rt, &ns, object, dry_run(query))?;
            Ok(with_warnings(json_response(201, &created), &warnings))
        }
        Method::DELETE => {
            let (labels, fields) = selectors(query)?;
            let (items, _) = state.store.list(rt.key(), ns.as_deref());
            let mut deleted = Vec::new();
            for item in items.iter().filter(|o| labels.matches(o) && fields.matches(o)) {
                let (ons, oname) = objects::ns_name(item);
                if let Ok(d) = objects::delete(&state.store, rt, &ons, &oname, Propagation::Background, None) {
                    deleted.push((*d).clone());
                }
            }
            Ok(json_response(
                200,
                &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                "metadata": {}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!("{} is not supported on a collection", req.method()))),
    }
}

fn list(
    state: &ApiState,
    rt: &'static ResourceType,
    ns: Option<&str>,
    query: &Query,
    accept: &str,
) -> ApiResult<Response> {
    let (labels, fields) = selectors(query)?;
    let (items, rv) = state.store.list(rt.key(), ns);
    let start_after = match query.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => Some(decode_continue(token)?),
    };
    let limit = query.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let mut selected: Vec<&Value> = Vec::new();
    let mut remaining = 0usize;
    for item in items.iter().map(|a| a.as_ref()) {
        if let Some((sns, sname)) = &start_after
            && objects::ns_name(item) <= (sns.clone(), sname.clone())
        {
            continue;
        }
        if !(labels.matches(item) && fields.matches(item)) {
            continue;
        }
        if limit.is_some_and(|l| selected.len() >= l) {
            remaining += 1;
        } else {
            selected.push(item);
        }
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if remaining > 0
        && let Some(last) = selected.last()
    {
        let (lns, lname) = objects::ns_name(last);
        meta["continue"] = json!(encode_continue(&lns, &lname));
        meta["remainingItemCount"] = json!(remaining);
    }
    if table::wants_table(accept) {
        return Ok(json_response(200, &table::to_table(rt, &selected, meta)));
    }
    // Written out directly: cloning a thousand objects into one Value costs more.
    let mut body = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        rt.kind,
        rt.api_version(),
        meta
    )
    .into_bytes();
    for (i, item) in selected.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, item).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    body.extend_from_slice(b"]}");
    Ok(([("content-type", "application/json")], body).into_response())
}

fn encode_continue(ns: &str, name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([ns, name]).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || ApiError::bad_request("invalid continue token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let pair: (String, String) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(pair)
}

fn delete_options(query: &Query, body: &[u8]) -> ApiResult<(Propagation, Option<i64>, Value)> {
    let options: Value = if body.is_empty() { json!({}) } else { patch::parse_json(body)? };
    let propagation = Propagation::parse(options["propagationPolicy"].as_str().or(query.get("propagationPolicy")))?;
    let grace = options["gracePeriodSeconds"].as_i64().or(query.int("gracePeriodSeconds")?);
    Ok((propagation, grace, options["preconditions"].clone()))
}

async fn object(
    state: Arc<ApiState>,
    req: Request,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    query: &Query,
    accept: &str,
) -> ApiResult<Response> {
    let store = &state.store;
    let method = req.method().clone();
    match method {
        Method::GET => {
            let object =
                store.get(rt.key(), ns, name).ok_or_else(|| ApiError::not_found(&objects::resource_name(rt), name))?;
            if table::wants_table(accept) {
                let meta = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
                return Ok(json_response(200, &table::to_table(rt, &[&object], meta)));
            }
            Ok(json_response(200, &object))
        }
        Method::PUT => {
            let (content_type, body) = read_body(req).await?;
            let object = decode_object(&content_type, &body)?;
            let warnings = decode::check(rt, &object, FieldValidation::of(query)?)?;
            let updated = objects::update(store, rt, ns, name, object, Part::Main)?;
            Ok(with_warnings(json_response(200, &updated), &warnings))
        }
        Method::PATCH => patch_object(&state, req, rt, ns, name, query, Part::Main).await,
        Method::DELETE => {
            let (_, body) = read_body(req).await?;
            let (propagation, grace, preconditions) = delete_options(query, &body)?;
            if let Some(current) = store.get(rt.key(), ns, name) {
                for field in ["uid", "resourceVersion"] {
                    if let Some(want) = preconditions[field].as_str()
                        && current["metadata"][field].as_str() != Some(want)
                    {
                        return Err(ApiError::conflict(&objects::resource_name(rt), name));
                    }
                }
            }
            let deleted = objects::delete(store, rt, ns, name, propagation, grace)?;
            Ok(json_response(200, &deleted))
        }
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported on {}", rt.plural))),
    }
}

async fn patch_object(
    state: &ApiState,
    req: Request,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    query: &Query,
    part: Part,
) -> ApiResult<Response> {
    let (content_type, body) = read_body(req).await?;
    let kind = PatchKind::from_content_type(&content_type).ok_or_else(|| ApiError::unsupported_media(&content_type))?;
    let manager = query.get("fieldManager").unwrap_or("unknown");
    if kind == PatchKind::Apply && query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request("fieldManager is required for apply requests"));
    }
    let warnings = patch_warnings(rt, kind, &body);
    let writer = objects::Writer { manager, force: query.flag("force") };
    let patched = objects::patch(&state.store, rt, ns, name, kind, &body, part, writer)?;
    Ok(with_warnings(json_response(200, &patched), &warnings))
}

/// A merge or strategic patch names fields the type may not have: the API
/// server drops them with a warning (type errors are found on the result).
fn patch_warnings(rt: &'static ResourceType, kind: PatchKind, body: &[u8]) -> Vec<String> {
    if !matches!(kind, PatchKind::Merge | PatchKind::Strategic) {
        return Vec::new();
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let partial = patch::strip_directives(&body);
    decode::check(rt, &partial, FieldValidation::Warn).unwrap_or_default()
}

/// Adds one `Warning` header per message, as the API server sends them
/// (kubectl prints each as `Warning: ...`).
pub fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let quoted = format!("299 - \"{}\"", warning.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(value) = axum::http::HeaderValue::from_str(&quoted) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

async fn subresource(
    state: Arc<ApiState>,
    req: Request,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    sub: &str,
    query: &Query,
) -> ApiResult<Response> {
    let store = &state.store;
    let method = req.method().clone();
    match (sub, method) {
        ("status", Method::GET) => {
            let object =
                store.get(rt.key(), ns, name).ok_or_else(|| ApiError::not_found(&objects::resource_name(rt), name))?;
            Ok(json_response(200, &object))
        }
        ("status", Method::PUT) => {
            let (content_type, body) = read_body(req).await?;
            let object = decode_object(&content_type, &body)?;
            let updated = objects::update(store, rt, ns, name, object, Part::Status)?;
            Ok(json_response(200, &updated))
        }
        ("status", Method::PATCH) => patch_object(&state, req, rt, ns, name, query, Part::Status).await,
        ("scale", method) => super::scale::serve(&state, req, rt, ns, name, method).await,
        (other, _) => match &state.pods {
            Some(pods) if rt.kind == "Pod" => pods.serve(other, ns, name, query, req).await,
            _ => Err(ApiError::no_route(&format!("{}/{name}/{other}", rt.plural))),
        },
    }
}

//! Kubernetes `Status` errors: every failure the lab API returns is one of these,
//! so clients see the same reasons and codes as from a real API server.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API error, rendered as a `meta/v1 Status` body with its HTTP code.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `AlreadyExists`, …).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Optional `details` (name, kind, causes).
    pub details: Option<Value>,
}

/// Result type of the lab API handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None }
    }

    /// 404 for a named object.
    pub fn not_found(resource: &str, name: &str) -> Self {
        let mut e = Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"));
        e.details = Some(json!({"name": name, "kind": resource}));
        e
    }

    /// 404 for a path the lab does not serve.
    pub fn no_route(path: &str) -> Self {
        Self::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
    }

    /// 409 when creating an object that exists.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        let mut e = Self::new(409, "AlreadyExists", format!("{resource} \"{name}\" already exists"));
        e.details = Some(json!({"name": name, "kind": resource}));
        e
    }

    /// 409 when an update carries a stale resourceVersion.
    pub fn conflict(resource: &str, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        );
        e.details = Some(json!({"name": name, "kind": resource}));
        e
    }

    /// 409 with a message of its own (server-side apply conflicts).
    pub fn conflict_with_message(message: impl Into<String>) -> Self {
        Self::new(409, "Conflict", message)
    }

    /// 422 with one cause per invalid field. `kind` is qualified by its group
    /// as Kubernetes writes it (`Deployment.apps`; just `Pod` in core).
    pub fn invalid(kind: &str, name: &str, causes: Vec<(String, String)>) -> Self {
        let summary: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let summary = match summary.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut e = Self::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {summary}"));
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(field, message)| json!({"reason": cause_reason(&message), "message": message, "field": field}))
            .collect();
        let (bare_kind, group) = kind.split_once('.').unwrap_or((kind, ""));
        let mut details = json!({"name": name, "kind": bare_kind, "causes": causes});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        e.details = Some(details);
        e
    }

    /// 422 without details, as Kubernetes answers a JSON patch whose `test`
    /// operation fails (kubectl: "The request is invalid: ...").
    pub fn request_invalid() -> Self {
        let mut e = Self::new(422, "Invalid", "the server rejected our request due to an error in our request");
        e.details = Some(json!({}));
        e
    }

    /// 400 for a body or query the lab cannot understand.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 for a missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 for a write the server refuses on principle.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 405 for a verb a resource does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 410 when a watch asks for history the lab no longer keeps.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 for a body encoding the lab does not read.
    pub fn unsupported_media(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }

    /// 500 without a reason: how Kubernetes refuses a server-side apply whose
    /// body does not fit the type (kubectl prints `Error from server: ...`).
    pub fn apply_failed(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// 500 for a fault inside the lab.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// A 5xx injected on purpose (`RUNBOOK_LAB_FAULTS`).
    pub fn injected(code: u16) -> Self {
        Self::new(code, if code == 500 { "InternalError" } else { "BadGateway" }, format!("injected fault ({code})"))
    }

    /// 429, asking the client to come back later.
    pub fn too_many_requests() -> Self {
        Self::new(429, "TooManyRequests", "injected fault: too many requests, please try again later")
    }

    /// 503, as returned while a fault is injected or the lab shuts down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// The `reason` of a cause, from how its message starts (field.ErrorType).
fn cause_reason(message: &str) -> &'static str {
    const REASONS: &[(&str, &str)] = &[
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
    ];
    REASONS.iter().find(|(prefix, _)| message.starts_with(prefix)).map_or("FieldValueInvalid", |(_, reason)| reason)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, [("content-type", "application/json")], self.to_status().to_string()).into_response()
    }
}

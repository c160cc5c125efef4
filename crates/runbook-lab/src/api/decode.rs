//! What Kubernetes' decoder refuses before anything else looks at an object:
//! a value of the wrong JSON type (`replicas: "two"`, `command: [true]`),
//! bad base64 in a Secret, a malformed quantity, and (under strict field
//! validation) fields the type does not have. The field types come from a
//! real API server's OpenAPI documents (`schema.json`, written by
//! `scripts/lab-schema`); the messages are the ones its Go decoder gives, so
//! kubectl prints the same error on the lab as on a cluster.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use super::resources::ResourceType;
use super::route::Query;
use super::status::{ApiError, ApiResult};
use runbook_units::Quantity;

/// The field types of the lab's kinds, from Kubernetes' OpenAPI v3 documents.
#[derive(Deserialize)]
struct Schema {
    /// `group/version/Kind` (`v1/Kind` for core) → the kind's type name.
    kinds: HashMap<String, String>,
    types: HashMap<String, TypeDef>,
}

#[derive(Deserialize)]
struct TypeDef {
    /// The Go type, as the decoder's messages name it (`v1.PodSpec`).
    go: String,
    /// Field name → type (see `scripts/lab-schema` for the grammar).
    fields: HashMap<String, String>,
}

static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| serde_json::from_str(include_str!("schema.json")).expect("schema.json is valid"));

const QUANTITY_PATTERN: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// How a request wants unknown fields treated (`?fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, with a warning per field (the API server's default).
    Warn,
    /// The request fails (kubectl's default, `--validate=strict`).
    Strict,
}

impl FieldValidation {
    /// The request's choice; Kubernetes defaults to `Warn`.
    pub fn of(query: &Query) -> ApiResult<Self> {
        match query.get("fieldValidation").unwrap_or("Warn") {
            "Ignore" => Ok(Self::Ignore),
            "Warn" | "" => Ok(Self::Warn),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}; valid values are Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Decodes `object` as a `rt` the way Kubernetes would: Err on a type error
/// (always) or on unknown fields (under `Strict`); otherwise the warnings to
/// send (one per unknown field under `Warn`).
pub fn check(rt: &ResourceType, object: &Value, validation: FieldValidation) -> ApiResult<Vec<String>> {
    let Some(findings) = findings(rt, object) else { return Ok(Vec::new()) };
    let refuse = |why: String| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {why}",
            kind = rt.kind,
            version = rt.version
        ))
    };
    if let Some(error) = findings.error {
        return Err(refuse(error));
    }
    let unknown: Vec<String> = findings.unknown.iter().map(|path| format!("unknown field \"{path}\"")).collect();
    match validation {
        FieldValidation::Strict if !unknown.is_empty() => {
            Err(refuse(format!("strict decoding error: {}", unknown.join(", "))))
        }
        FieldValidation::Warn => Ok(unknown),
        _ => Ok(Vec::new()),
    }
}

/// A type error only (unknown fields are a patch's business to warn about).
pub fn check_types(rt: &ResourceType, object: &Value) -> ApiResult<()> {
    check(rt, object, FieldValidation::Ignore).map(|_| ())
}

/// Checks a server-side apply body: unknown fields and wrong types fail
/// the apply whatever `fieldValidation` says, with structured-merge-diff's
/// messages and a 500, as Kubernetes answers.
pub fn check_apply(rt: &ResourceType, applied: &Value, ns: &str, name: &str) -> ApiResult<()> {
    let Some(findings) = findings(rt, applied) else { return Ok(()) };
    let gv = format!("{}/{}", rt.group, rt.version);
    let object = if ns.is_empty() { name.to_string() } else { format!("{ns}/{name}") };
    let message = match findings.apply.as_slice() {
        [] => match findings.error {
            None => return Ok(()),
            Some(error) => format!(
                "failed to convert new object ({object}; {gv}, Kind={kind}) to proper version: unable to convert \
                 unstructured object to {gv}, Kind={kind}: {error}",
                kind = rt.kind
            ),
        },
        [one] => format!("failed to create typed patch object ({object}; {gv}, Kind={}): {one}", rt.kind),
        many => format!(
            "failed to create typed patch object ({object}; {gv}, Kind={}): errors:\n  {}",
            rt.kind,
            many.join("\n  ")
        ),
    };
    Err(ApiError::apply_failed(message))
}

#[derive(Default)]
struct Findings {
    /// The first error in document order, as the Go decoder keeps it.
    error: Option<String>,
    /// Paths of unknown fields, with list indices (`spec.containers[0].x`).
    unknown: Vec<String>,
    /// Every problem as server-side apply reports it (`.spec.x: field not
    /// declared in schema`).
    apply: Vec<String>,
}

/// Where a value sits: the nearest Go struct and the JSON path to it.
#[derive(Clone)]
struct Place<'a> {
    /// The Go struct whose field holds the value (`DeploymentSpec`).
    owner: &'a str,
    /// Path without list indices, as type errors name it.
    field: String,
    /// Path with list indices, as unknown-field errors name it.
    full: String,
    /// Path as server-side apply names it (`.spec.containers[name="c"]`).
    apply: String,
}

impl<'a> Place<'a> {
    fn child(&self, owner: &'a str, name: &str) -> Place<'a> {
        let join = |base: &str| if base.is_empty() { name.to_string() } else { format!("{base}.{name}") };
        Place { owner, field: join(&self.field), full: join(&self.full), apply: format!("{}.{name}", self.apply) }
    }
}

fn findings(rt: &ResourceType, object: &Value) -> Option<Findings> {
    let key = if rt.group.is_empty() {
        format!("{}/{}", rt.version, rt.kind)
    } else {
        format!("{}/{}/{}", rt.group, rt.version, rt.kind)
    };
    let root = SCHEMA.kinds.get(&key)?;
    let mut found = Findings::default();
    let place = Place {
        owner: short_name(&SCHEMA.types[root].go),
        field: String::new(),
        full: String::new(),
        apply: String::new(),
    };
    walk(root, object, &place, &mut found);
    Some(found)
}

fn short_name(go: &str) -> &str {
    go.rsplit('.').next().unwrap_or(go)
}

fn walk(ty: &str, value: &Value, at: &Place, found: &mut Findings) {
    if value.is_null() {
        return; // null leaves a Go field at its zero value
    }
    let mismatch = |found: &mut Findings, what: String| {
        let message = format!(
            "json: cannot unmarshal {what} into Go struct field {}.{} of type {}",
            at.owner,
            at.field,
            go_type(ty)
        );
        found.error.get_or_insert(message);
        if let Some(expected) = apply_expectation(ty, value) {
            found.apply.push(format!("{}: {expected}", at.apply));
        }
    };
    match ty {
        "any" => {}
        "string" if !value.is_string() => mismatch(found, json_kind(value)),
        "bool" if !value.is_boolean() => mismatch(found, json_kind(value)),
        "float64" if !value.is_number() => mismatch(found, json_kind(value)),
        "int32" | "int64" | "intorstring" => {
            if ty == "intorstring" && value.is_string() {
                return;
            }
            match value.as_number() {
                Some(n)
                    if fits(n, if ty == "int64" { i64::MIN..=i64::MAX } else { i32::MIN as i64..=i32::MAX as i64 }) => {
                }
                Some(n) => mismatch(found, format!("number {n}")),
                None => mismatch(found, json_kind(value)),
            }
        }
        "bytes" => match value.as_str() {
            None => mismatch(found, json_kind(value)),
            Some(text) => {
                if let Err(offset) = go_base64_check(text.as_bytes()) {
                    found.error.get_or_insert(format!("illegal base64 data at input byte {offset}"));
                }
            }
        },
        "quantity" => {
            let valid = value.is_number() || value.as_str().is_some_and(|q| Quantity::parse(q).is_ok());
            if !valid {
                found.error.get_or_insert(QUANTITY_PATTERN.to_string());
            }
        }
        "string" | "bool" | "float64" => {}
        list if list.starts_with('[') => match value.as_array() {
            None => mismatch(found, json_kind(value)),
            Some(items) => {
                let (keys, element) = list_parts(list);
                for (i, item) in items.iter().enumerate() {
                    let place = Place {
                        full: format!("{}[{i}]", at.full),
                        apply: format!("{}{}", at.apply, apply_element(&keys, i, item)),
                        ..at.clone()
                    };
                    walk(element, item, &place, found);
                }
            }
        },
        map if map.starts_with('{') => match value.as_object() {
            None => mismatch(found, json_kind(value)),
            Some(entries) => {
                for (key, item) in entries {
                    let place = Place {
                        full: format!("{}[{key}]", at.full),
                        apply: format!("{}.{key}", at.apply),
                        ..at.clone()
                    };
                    walk(&map[1..map.len() - 1], item, &place, found);
                }
            }
        },
        name => {
            let Some(def) = SCHEMA.types.get(name) else { return };
            let Some(fields) = value.as_object() else {
                mismatch(found, json_kind(value));
                return;
            };
            for (key, item) in fields {
                let place = at.child(short_name(&def.go), key);
                match def.fields.get(key) {
                    Some(field_ty) => walk(field_ty, item, &place, found),
                    None => {
                        found.apply.push(format!("{}: field not declared in schema", place.apply));
                        found.unknown.push(place.full);
                    }
                }
            }
        }
    }
}

fn fits(n: &serde_json::Number, range: std::ops::RangeInclusive<i64>) -> bool {
    n.as_i64().is_some_and(|v| range.contains(&v))
}

/// How Go's decoder names a JSON value it could not store.
fn json_kind(value: &Value) -> String {
    match value {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
    .to_string()
}

/// The Go type behind a schema type, as the decoder's messages print it.
fn go_type(ty: &str) -> String {
    match ty {
        "string" | "bool" | "int32" | "int64" | "float64" => ty.to_string(),
        "intorstring" => "int32".into(), // IntOrString decodes a non-string as its int32
        "bytes" => "[]uint8".into(),
        "quantity" => "resource.Quantity".into(),
        "any" => "interface {}".into(),
        "{quantity}" => "v1.ResourceList".into(),
        list if list.starts_with('[') => format!("[]{}", go_type(list_parts(list).1)),
        map if map.starts_with('{') => format!("map[string]{}", go_type(&map[1..map.len() - 1])),
        name => SCHEMA.types.get(name).map_or_else(|| name.to_string(), |def| def.go.clone()),
    }
}

/// `[k1,k2]T` → (["k1", "k2"], T); `[]T` → ([], T).
fn list_parts(list: &str) -> (Vec<&str>, &str) {
    let close = list.find(']').unwrap_or(1);
    let keys = list[1..close].split(',').filter(|k| !k.is_empty()).collect();
    (keys, &list[close + 1..])
}

/// A list element in a server-side apply path: `[name="c"]` in a keyed
/// list, `[0]` otherwise.
fn apply_element(keys: &[&str], index: usize, item: &Value) -> String {
    if keys.is_empty() {
        return format!("[{index}]");
    }
    let parts: Vec<String> = keys.iter().map(|k| format!("{k}={}", item[*k])).collect();
    format!("[{}]", parts.join(","))
}

/// Server-side apply's complaint about `value` where `ty` belongs (None
/// where it takes the value: a float where an integer goes is refused
/// later, by the conversion).
fn apply_expectation(ty: &str, value: &Value) -> Option<String> {
    let shown = go_value(value);
    match ty {
        "int32" | "int64" | "float64" | "intorstring" if value.is_number() => None,
        "int32" | "int64" | "float64" => Some(format!("expected numeric (int or float), got {}", json_kind(value))),
        "string" | "bytes" => Some(format!("expected string, got &value.valueUnstructured{{Value:{shown}}}")),
        "bool" => Some(format!("expected boolean, got &{{{shown}}}")),
        list if list.starts_with('[') => Some(format!("expected list, got &{{{shown}}}")),
        _ => Some(format!("expected map, got &{{{shown}}}")),
    }
}

/// A JSON value as Go's `%v` prints the decoded form (`map[name:c]`).
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{}", go_value(v))).collect();
            pairs.sort();
            format!("map[{}]", pairs.join(" "))
        }
        other => other.to_string(),
    }
}

/// Go's `base64.StdEncoding.Decode` validation: Err(offset) exactly where
/// Go reports `illegal base64 data at input byte N` (newlines are skipped,
/// padding is required).
fn go_base64_check(src: &[u8]) -> Result<(), usize> {
    let valid = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let skip_newlines = |mut si: usize| {
        while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
            si += 1;
        }
        si
    };
    let mut si = 0;
    while si < src.len() {
        // One quantum of four characters, as Go's decodeQuantum reads it.
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(());
                }
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if valid(c) {
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' || j < 2 {
                return Err(si - 1);
            }
            if j == 2 {
                si = skip_newlines(si);
                if si == src.len() {
                    return Err(src.len());
                }
                if src[si] != b'=' {
                    return Err(si - 1);
                }
                si += 1;
            }
            si = skip_newlines(si);
            return if si < src.len() { Err(si) } else { Ok(()) };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::resources::by_kind;

    fn error(api_version: &str, object: Value) -> String {
        let rt = by_kind(api_version, object["kind"].as_str().unwrap()).unwrap();
        check(rt, &object, FieldValidation::Strict).unwrap_err().message
    }

    fn deployment(replicas: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "w"}},
                        "template": {"metadata": {"labels": {"app": "w"}},
                                     "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    }

    // The expected messages were copied from kube-apiserver v1.34.4's answers.
    #[test]
    fn wrong_json_types_are_refused_as_go_refuses_them() {
        let prefix = "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal";
        let field = "into Go struct field DeploymentSpec.spec.replicas of type int32";
        assert_eq!(error("apps/v1", deployment(json!("two"))), format!("{prefix} string {field}"));
        assert_eq!(error("apps/v1", deployment(json!(2.5))), format!("{prefix} number 2.5 {field}"));
        assert_eq!(error("apps/v1", deployment(json!(true))), format!("{prefix} bool {field}"));
        assert_eq!(error("apps/v1", deployment(json!(3000000000u64))), format!("{prefix} number 3000000000 {field}"));
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        assert!(check(rt, &deployment(json!(2)), FieldValidation::Strict).unwrap().is_empty());
        assert!(check(rt, &deployment(Value::Null), FieldValidation::Strict).is_ok());
    }

    #[test]
    fn nested_lists_maps_and_structs_name_the_field_and_go_type() {
        let pod = |spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
        let prefix = "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal";
        let cases = [
            (
                json!({"containers": [{"name": "c", "command": [true]}]}),
                "bool into Go struct field Container.spec.containers.command of type string",
            ),
            (
                json!({"containers": {"name": "c"}}),
                "object into Go struct field PodSpec.spec.containers of type []v1.Container",
            ),
            (json!({"containers": ["c"]}), "string into Go struct field PodSpec.spec.containers of type v1.Container"),
            (
                json!({"containers": [{"name": "c", "resources": {"limits": [1]}}]}),
                "array into Go struct field ResourceRequirements.spec.containers.resources.limits of type v1.ResourceList",
            ),
            (
                json!({"terminationGracePeriodSeconds": "x", "containers": []}),
                "string into Go struct field PodSpec.spec.terminationGracePeriodSeconds of type int64",
            ),
        ];
        for (spec, message) in cases {
            assert_eq!(error("v1", pod(spec)), format!("{prefix} {message}"));
        }
        assert_eq!(
            error("v1", pod(json!("x"))),
            format!("{prefix} string into Go struct field Pod.spec of type v1.PodSpec")
        );
        let quantity = pod(json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}));
        assert!(error("v1", quantity).ends_with(QUANTITY_PATTERN));
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                             "spec": {"ports": [{"port": 80, "targetPort": true}]}});
        assert!(
            error("v1", service).ends_with("bool into Go struct field ServicePort.spec.ports.targetPort of type int32")
        );
    }

    #[test]
    fn unknown_fields_fail_strict_and_warn_otherwise() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "bar": 2,
                         "spec": {"containers": [{"name": "c", "bogus": 1, "ports": [{"containerPort": 80, "nope": 2}]}]}});
        assert_eq!(
            error("v1", pod.clone()),
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"bar\", \
             unknown field \"spec.containers[0].bogus\", unknown field \"spec.containers[0].ports[0].nope\""
        );
        let rt = by_kind("v1", "Pod").unwrap();
        assert_eq!(check(rt, &pod, FieldValidation::Warn).unwrap().len(), 3);
        assert!(check(rt, &pod, FieldValidation::Ignore).unwrap().is_empty());
        // A type error wins over unknown fields, as in Go.
        let both =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "foo": 1}, "data": {"a": 1}});
        assert!(
            error("v1", both).ends_with("cannot unmarshal number into Go struct field ConfigMap.data of type string")
        );
    }

    #[test]
    fn base64_errors_point_where_go_points() {
        assert_eq!(go_base64_check(b"YWJj"), Ok(()));
        assert_eq!(go_base64_check(b"YWJj\nZA=="), Ok(()));
        assert_eq!(go_base64_check(b"YQ=="), Ok(()));
        assert_eq!(go_base64_check(b""), Ok(()));
        assert_eq!(go_base64_check(b"ab!c"), Err(2));
        assert_eq!(go_base64_check(b"abc"), Err(0));
        assert_eq!(go_base64_check(b"YQ="), Err(3));
        assert_eq!(go_base64_check(b"YQ==YQ=="), Err(4));
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "ab!c"}});
        assert_eq!(
            error("v1", secret),
            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 2"
        );
    }

    #[test]
    fn server_side_apply_reports_every_problem_with_keyed_paths() {
        let rt = by_kind("v1", "Pod").unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
                         "spec": {"containers": [{"name": "c", "image": "x", "bogus": 1}]}});
        let refused = check_apply(rt, &pod, "fx", "p1").unwrap_err();
        assert_eq!((refused.code, refused.reason), (500, ""));
        assert_eq!(
            refused.message,
            "failed to create typed patch object (fx/p1; /v1, Kind=Pod): .spec.containers[name=\"c\"].bogus: \
             field not declared in schema"
        );
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let mut two = deployment(json!("x"));
        two["spec"]["paused"] = json!("y");
        let message = check_apply(rt, &two, "fx", "w9").unwrap_err().message;
        assert!(message.contains(": errors:\n  "), "{message}");
        assert!(message.contains("\n  .spec.replicas: expected numeric (int or float), got string"), "{message}");
        assert!(message.contains("\n  .spec.paused: expected boolean, got &{y}"), "{message}");
        assert!(check_apply(rt, &deployment(json!(3)), "fx", "w9").is_ok());
    }
}

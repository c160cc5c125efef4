//! Object writes with the API server's rules: metadata the server owns, the
//! status subresource, generation, optimistic concurrency, deletion with
//! propagation. HTTP handlers and the lab's controllers both write through here.

use std::sync::Arc;

use serde_json::{Value, json};

use super::patch::{self, PatchKind};
use super::resources::{RESOURCES, ResourceType, by_kind};
use super::status::{ApiError, ApiResult};
use super::store::{Store, WriteError, rv_of};
use super::{admission, defaults};

/// How a delete treats the object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the object now; the garbage collector deletes dependents after.
    Background,
    /// Delete the dependents first, then the object.
    Foreground,
    /// Delete the object and leave the dependents, without the owner reference.
    Orphan,
}

impl Propagation {
    /// Parses `propagationPolicy`; unknown values are a 400.
    pub fn parse(text: Option<&str>) -> ApiResult<Self> {
        match text {
            None | Some("") | Some("Background") => Ok(Propagation::Background),
            Some("Foreground") => Ok(Propagation::Foreground),
            Some("Orphan") => Ok(Propagation::Orphan),
            Some(other) => Err(ApiError::bad_request(format!("unknown propagationPolicy {other:?}"))),
        }
    }
}

/// Now, as a Kubernetes timestamp (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random UUID v4 for `metadata.uid`.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-4{:x}{:02x}-{:x}{:x}{:02x}-{}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6] & 0x0f,
        b[7],
        8 | (b[8] & 0x3),
        b[8] >> 4,
        b[9],
        b[10..16].iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Five random characters, as `generateName` appends.
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

fn write_error(rt: &ResourceType, name: &str, e: WriteError) -> ApiError {
    let resource = resource_name(rt);
    match e {
        WriteError::Exists => ApiError::already_exists(&resource, name),
        WriteError::Missing => ApiError::not_found(&resource, name),
        WriteError::Stale => ApiError::conflict(&resource, name),
    }
}

/// The `plural.group` name errors use (`deployments.apps`).
pub fn resource_name(rt: &ResourceType) -> String {
    if rt.group.is_empty() { rt.plural.to_string() } else { format!("{}.{}", rt.plural, rt.group) }
}

fn check_type_and_namespace(rt: &ResourceType, ns: &str, object: &mut Value) -> ApiResult<()> {
    if !object.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    if (!kind.is_empty() && kind != rt.kind) || (!api_version.is_empty() && api_version != rt.api_version()) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) and kind ({kind}) do not match the path ({} {})",
            rt.api_version(),
            rt.kind
        )));
    }
    object["apiVersion"] = json!(rt.api_version());
    object["kind"] = json!(rt.kind);
    if rt.namespaced {
        match object["metadata"]["namespace"].as_str() {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                )));
            }
            _ => object["metadata"]["namespace"] = json!(ns),
        }
    } else if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    Ok(())
}

/// Creates an object in namespace `ns` ("" for cluster-scoped types).
pub fn create(
    store: &Store,
    rt: &'static ResourceType,
    ns: &str,
    mut object: Value,
    dry_run: bool,
) -> ApiResult<Arc<Value>> {
    check_type_and_namespace(rt, ns, &mut object)?;
    if rt.namespaced && rt.kind != "Event" {
        let namespace = store.get("namespaces", "", ns);
        match namespace {
            None => return Err(ApiError::not_found("namespaces", ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                return Err(ApiError::forbidden(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                )));
            }
            Some(_) => {}
        }
    }
    let meta = &mut object["metadata"];
    if meta["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = meta["generateName"].as_str()
    {
        meta["name"] = json!(format!("{prefix}{}", random_suffix(5)));
    }
    for owned in ["uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"] {
        if let Some(m) = meta.as_object_mut() {
            m.remove(owned);
        }
    }
    defaults::apply(rt, &mut object);
    super::allocate::on_create(store, rt, &mut object)?;
    admission::validate(rt, &object)?;
    object["metadata"]["uid"] = json!(new_uid());
    object["metadata"]["creationTimestamp"] = json!(now());
    if rt.has_generation() {
        object["metadata"]["generation"] = json!(1);
    }
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if dry_run {
        return Ok(Arc::new(object));
    }
    store.create(rt.key(), object).map_err(|e| write_error(rt, &name, e))
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object without its status (the main resource).
    Main,
    /// Only the status (the `/status` subresource).
    Status,
}

/// Replaces an object, keeping what the server owns. `object` carries the
/// resourceVersion the writer read (or none, for an unconditional write).
pub fn update(
    store: &Store,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    mut object: Value,
    part: Part,
) -> ApiResult<Arc<Value>> {
    check_type_and_namespace(rt, ns, &mut object)?;
    if object["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    object["metadata"]["name"] = json!(name);
    let current = store.get(rt.key(), ns, name).ok_or_else(|| ApiError::not_found(&resource_name(rt), name))?;
    let expected_rv = object["metadata"]["resourceVersion"].as_str().map(String::from);
    let mut next = match part {
        Part::Status => {
            let mut next = (*current).clone();
            next["status"] = object["status"].take();
            next
        }
        Part::Main => {
            if rt.has_status {
                object["status"] = current["status"].clone();
            }
            if rt.kind == "Secret" {
                defaults::fold_string_data(&mut object);
            }
            super::allocate::on_update(rt, &current, &mut object);
            object
        }
    };
    for owned in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        next["metadata"][owned] = current["metadata"][owned].clone();
    }
    if let Some(meta) = next["metadata"].as_object_mut() {
        meta.retain(|_, v| !v.is_null());
    }
    if rt.kind == "Pod" && part == Part::Main {
        next["status"]["qosClass"] = current["status"]["qosClass"].clone();
    }
    if rt.has_generation() && spec_of(&next) != spec_of(&current) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        next["metadata"]["generation"] = json!(generation);
    }
    admission::validate_update(rt, &current, &next)?;
    let stored = store.update(rt.key(), next, expected_rv.as_deref()).map_err(|e| write_error(rt, name, e))?;
    // An object marked for deletion goes once its last finalizer is removed,
    // as the API server's store does (pods are finished by their kubelet,
    // namespaces by their controller).
    let finalized = !stored["metadata"]["deletionTimestamp"].is_null()
        && stored["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty)
        && !matches!(rt.kind, "Pod" | "Namespace");
    if finalized {
        return store.delete(rt.key(), ns, name).map_err(|e| write_error(rt, name, e));
    }
    Ok(stored)
}

fn spec_of(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// Who writes a patch: the field manager and, for server-side apply,
/// whether it takes fields other managers own (`force=true`).
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// The field manager (`?fieldManager=`).
    pub manager: &'a str,
    /// Server-side apply overrides conflicts.
    pub force: bool,
}

/// Patches an object; server-side apply creates it when it does not exist.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    store: &Store,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    part: Part,
    writer: Writer<'_>,
) -> ApiResult<Arc<Value>> {
    let manager = writer.manager;
    // A patch is not conditional unless it says so: retry on races with controllers.
    for _ in 0..10 {
        let current = store.get(rt.key(), ns, name);
        let result = if kind == PatchKind::Apply {
            let applied = patch::parse_apply_body(body)?;
            super::decode::check_apply(rt, &applied, ns, name)?;
            if applied["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                return Err(ApiError::bad_request("the name in the apply body does not match the URL"));
            }
            if let Some(live) = current.as_deref()
                && !writer.force
            {
                super::apply_conflicts::check(live, &applied, &patch::field_set(&applied, ""), manager)?;
            }
            let next = patch::server_side_apply(current.as_deref(), &applied, manager, &now());
            match current {
                None => create(store, rt, ns, next, false),
                Some(cur) => update(store, rt, ns, name, with_rv(next, rv_of(&cur)), part),
            }
        } else {
            let current = current.ok_or_else(|| ApiError::not_found(&resource_name(rt), name))?;
            let mut next = (*current).clone();
            patch::apply_patch(kind, &mut next, body)?;
            super::decode::check_types(rt, &next)?;
            if next["metadata"]["resourceVersion"].is_null() {
                next = with_rv(next, rv_of(&current));
            }
            update(store, rt, ns, name, next, part)
        };
        match result {
            Err(e) if e.reason == "Conflict" && !body_pins_version(body) => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(&resource_name(rt), name))
}

fn with_rv(mut object: Value, rv: &str) -> Value {
    object["metadata"]["resourceVersion"] = json!(rv);
    object
}

fn body_pins_version(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| !v["metadata"]["resourceVersion"].is_null())
}

/// Deletes an object. Objects with finalizers, namespaces and scheduled pods
/// are marked for deletion and finished later by their controller or kubelet.
pub fn delete(
    store: &Store,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    propagation: Propagation,
    grace_seconds: Option<i64>,
) -> ApiResult<Arc<Value>> {
    let current = store.get(rt.key(), ns, name).ok_or_else(|| ApiError::not_found(&resource_name(rt), name))?;
    let uid = current["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    match propagation {
        Propagation::Orphan => orphan_dependents(store, &uid),
        Propagation::Foreground => {
            for (dep_rt, dep) in dependents(store, &uid) {
                let (dns, dname) = ns_name(&dep);
                let _ = delete(store, dep_rt, &dns, &dname, Propagation::Foreground, grace_seconds);
            }
        }
        Propagation::Background => {}
    }
    let graceful_pod = rt.kind == "Pod"
        && !current["spec"]["nodeName"].is_null()
        && grace_seconds.or(current["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30) > 0;
    let has_finalizers = current["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if rt.kind == "Namespace" || has_finalizers || graceful_pod {
        if !current["metadata"]["deletionTimestamp"].is_null() {
            return Ok(current);
        }
        let mut marked = (*current).clone();
        marked["metadata"]["deletionTimestamp"] = json!(now());
        if rt.kind == "Pod" {
            let grace = grace_seconds.or(current["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30);
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        } else if rt.kind != "Namespace" {
            // The generic store's markAsDeleting: no grace period, and the
            // generation moves on so controllers see the change.
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if let Some(generation) = current["metadata"]["generation"].as_i64() {
                marked["metadata"]["generation"] = json!(generation + 1);
            }
        }
        if rt.kind == "Namespace" {
            marked["status"]["phase"] = json!("Terminating");
        }
        return store.update(rt.key(), marked, None).map_err(|e| write_error(rt, name, e));
    }
    store.delete(rt.key(), ns, name).map_err(|e| write_error(rt, name, e))
}

/// Removes an object now, whatever its grace period (the kubelet's last word).
pub fn finalize_delete(store: &Store, rt: &'static ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
    store.delete(rt.key(), ns, name).map_err(|e| write_error(rt, name, e))
}

/// Namespace and name of an object.
pub fn ns_name(object: &Value) -> (String, String) {
    (
        object["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
        object["metadata"]["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// Every object that names `uid` among its owners.
pub fn dependents(store: &Store, uid: &str) -> Vec<(&'static ResourceType, Arc<Value>)> {
    let mut out = Vec::new();
    for rt in RESOURCES {
        for object in store.list(rt.key(), None).0 {
            let owned = object["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid));
            if owned {
                out.push((rt, object));
            }
        }
    }
    out
}

fn orphan_dependents(store: &Store, uid: &str) {
    for (rt, dep) in dependents(store, uid) {
        let mut next = (*dep).clone();
        if let Some(refs) = next["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|r| r["uid"] != uid);
        }
        let _ = store.update(rt.key(), next, None);
    }
}

/// Records an Event about `object`, as controllers and the kubelet do.
pub fn record_event(store: &Store, object: &Value, event_type: &str, reason: &str, message: &str, component: &str) {
    record_event_at(store, object, "", event_type, reason, message, component);
}

/// Records an Event about a part of `object` (`field_path`, e.g. the
/// kubelet's `spec.containers{redis}`; empty for the whole object).
pub fn record_event_at(
    store: &Store,
    object: &Value,
    field_path: &str,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let Some(rt) =
        by_kind(object["apiVersion"].as_str().unwrap_or_default(), object["kind"].as_str().unwrap_or_default())
    else {
        return;
    };
    let (ns, name) = ns_name(object);
    let ns = if ns.is_empty() { "default".to_string() } else { ns };
    let stamp = now();
    let Some(events) = super::resources::by_key("events") else { return };
    // The same event again is counted on the first one, as client-go's
    // event correlator does: count + 1, a new lastTimestamp.
    let same = |e: &Value| {
        e["involvedObject"]["uid"] == object["metadata"]["uid"]
            && e["involvedObject"]["name"] == name.as_str()
            && e["reason"] == reason
            && e["message"] == message
            && e["type"] == event_type
            && e["source"]["component"] == component
            && e["involvedObject"]["fieldPath"].as_str().unwrap_or_default() == field_path
    };
    let (existing, _) = store.list(events.key(), Some(&ns));
    if let Some(seen) = existing.iter().find(|e| same(e)) {
        let mut next = (**seen).clone();
        next["count"] = json!(seen["count"].as_i64().unwrap_or(1) + 1);
        next["lastTimestamp"] = json!(stamp);
        let _ = store.update(events.key(), next, None);
        return;
    }
    let mut event = json!({
        "apiVersion": "v1", "kind": "Event",
        // As client-go names events: the time in nanoseconds, in hex, so
        // names sort in the order the events happened.
        "metadata": {"name": format!("{name}.{:x}", jiff::Timestamp::now().as_nanosecond()), "namespace": ns},
        "involvedObject": {
            "apiVersion": rt.api_version(), "kind": rt.kind, "name": name, "namespace": object["metadata"]["namespace"],
            "uid": object["metadata"]["uid"], "resourceVersion": object["metadata"]["resourceVersion"],
        },
        "reason": reason, "message": message, "type": event_type,
        "source": {"component": component}, "reportingComponent": component,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "eventTime": null,
    });
    if !field_path.is_empty() {
        event["involvedObject"]["fieldPath"] = json!(field_path);
    }
    match component {
        // The kubelet names its node, as source and as reporting instance.
        "kubelet" => {
            let node = object["spec"]["nodeName"].as_str().unwrap_or(crate::bootstrap::NODE_NAME);
            event["source"]["host"] = json!(node);
            event["reportingInstance"] = json!(node);
        }
        // The scheduler records through events.k8s.io/v1: an event time, no
        // count or first/last timestamps, an action, no source.
        "default-scheduler" => {
            let micros = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string();
            event["firstTimestamp"] = Value::Null;
            event["lastTimestamp"] = Value::Null;
            event.as_object_mut().expect("an object").remove("count");
            event["eventTime"] = json!(micros);
            event["action"] = json!("Binding");
            event["source"] = json!({});
            let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
            event["reportingInstance"] = json!(format!("default-scheduler-{host}"));
        }
        _ => {}
    }
    let _ = create(store, events, &ns, event, false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::by_key;

    fn store_with_default_ns() -> Store {
        let store = Store::new();
        create(&store, by_key("namespaces").unwrap(), "", json!({"metadata": {"name": "default"}}), false).unwrap();
        store
    }

    #[test]
    fn create_sets_server_fields_and_refuses_duplicates() {
        let store = store_with_default_ns();
        let cms = by_key("configmaps").unwrap();
        let cm = create(&store, cms, "default", json!({"metadata": {"name": "c"}, "data": {"k": "v"}}), false).unwrap();
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(cm["metadata"]["namespace"], "default");
        assert_eq!(cm["metadata"]["uid"].as_str().unwrap().len(), 36);
        let err = create(&store, cms, "default", json!({"metadata": {"name": "c"}}), false).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
        let err = create(&store, cms, "nope", json!({"metadata": {"name": "c"}}), false).unwrap_err();
        assert_eq!(err.code, 404);
    }

    #[test]
    fn main_resource_writes_keep_status_and_bump_generation() {
        let store = store_with_default_ns();
        let deploys = by_key("deployments").unwrap();
        let d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "redis"}]}}}});
        let created = create(&store, deploys, "default", d, false).unwrap();
        let mut with_status = (*created).clone();
        with_status["status"] = json!({"replicas": 1});
        update(&store, deploys, "default", "d", with_status, Part::Status).unwrap();
        let mut scaled = (*store.get("deployments", "default", "d").unwrap()).clone();
        scaled["spec"]["replicas"] = json!(3);
        scaled["status"] = json!({"replicas": 99});
        let after = update(&store, deploys, "default", "d", scaled, Part::Main).unwrap();
        assert_eq!(after["status"]["replicas"], 1, "main writes must not change status");
        assert_eq!(after["metadata"]["generation"], 2);
    }

    #[test]
    fn orphan_delete_drops_owner_references() {
        let store = store_with_default_ns();
        let cms = by_key("configmaps").unwrap();
        let owner = create(&store, cms, "default", json!({"metadata": {"name": "owner"}}), false).unwrap();
        let uid = owner["metadata"]["uid"].clone();
        create(
            &store,
            cms,
            "default",
            json!({"metadata": {"name": "dep", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}),
            false,
        )
        .unwrap();
        delete(&store, cms, "default", "owner", Propagation::Orphan, None).unwrap();
        let dep = store.get("configmaps", "default", "dep").unwrap();
        assert_eq!(dep["metadata"]["ownerReferences"], json!([]));
    }
}

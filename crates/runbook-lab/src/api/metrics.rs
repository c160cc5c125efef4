//! The resource metrics API (`metrics.k8s.io/v1beta1`), as metrics-server
//! serves it: PodMetrics and NodeMetrics, read-only, from the usage the
//! lab's kubelet measures in its cgroups. `kubectl top pod|node` and the HPA
//! controller read it.

use serde_json::{Value, json};

use super::handlers::json_response;
use super::selectors::LabelSelector;
use super::status::{ApiError, ApiResult};
use super::store::Store;

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its only version.
pub const VERSION: &str = "v1beta1";

/// What a pod's containers use, averaged over `window_secs`.
#[derive(Debug, Clone)]
pub struct PodUsage {
    /// The pod's uid.
    pub uid: String,
    /// When the newest sample was taken (RFC 3339).
    pub timestamp: String,
    /// The span the CPU rate is averaged over.
    pub window_secs: f64,
    /// Per container: name, CPU in nanocores, memory working set in bytes.
    pub containers: Vec<ContainerUsage>,
}

/// One container's usage.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    /// Container name.
    pub name: String,
    /// CPU in nanocores (billionths of a core).
    pub cpu_nanocores: u64,
    /// Memory working set in bytes.
    pub memory_bytes: u64,
}

/// What the node uses (the whole host).
#[derive(Debug, Clone)]
pub struct NodeUsage {
    /// When the newest sample was taken (RFC 3339).
    pub timestamp: String,
    /// The span the CPU rate is averaged over.
    pub window_secs: f64,
    /// CPU in nanocores.
    pub cpu_nanocores: u64,
    /// Memory in use in bytes.
    pub memory_bytes: u64,
}

/// Where usage comes from: the lab's kubelet.
pub trait MetricsSource: Send + Sync {
    /// The usage of every pod measured long enough to have a rate.
    fn pods(&self) -> Vec<PodUsage>;
    /// The node's usage, once measured.
    fn node(&self) -> Option<NodeUsage>;
}

/// Which metrics a request names.
#[derive(Debug, PartialEq)]
pub struct MetricsRoute {
    /// `pods` or `nodes`.
    pub resource: String,
    /// The namespace (pods only; None: all).
    pub ns: Option<String>,
    /// One object, or the list.
    pub name: Option<String>,
}

/// Parses the part of a path after `/apis/metrics.k8s.io/v1beta1`.
pub fn route(rest: &[&str]) -> Option<MetricsRoute> {
    let route = |resource: &str, ns: Option<&str>, name: Option<&str>| {
        Some(MetricsRoute { resource: resource.into(), ns: ns.map(String::from), name: name.map(String::from) })
    };
    match rest {
        ["namespaces", ns, "pods"] => route("pods", Some(ns), None),
        ["namespaces", ns, "pods", name] => route("pods", Some(ns), Some(name)),
        ["pods"] => route("pods", None, None),
        ["nodes"] => route("nodes", None, None),
        ["nodes", name] => route("nodes", None, Some(name)),
        _ => None,
    }
}

/// Serves a GET of pod or node metrics.
pub fn serve(
    store: &Store,
    source: Option<&dyn MetricsSource>,
    route: &MetricsRoute,
    method: &str,
    label_selector: &str,
) -> ApiResult<axum::response::Response> {
    if method != "GET" {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} is read-only)",
            route.resource
        )));
    }
    let selector = LabelSelector::parse(label_selector)?;
    let items = if route.resource == "pods" { pod_items(store, source, route) } else { node_items(store, source) };
    let items: Vec<Value> = items
        .into_iter()
        .filter(|m| selector.matches_labels(&m["metadata"]["labels"]))
        .filter(|m| route.name.as_deref().is_none_or(|n| m["metadata"]["name"] == n))
        .collect();
    let kind = if route.resource == "pods" { "PodMetrics" } else { "NodeMetrics" };
    match &route.name {
        Some(name) => match items.into_iter().next() {
            Some(item) => Ok(json_response(200, &item)),
            None => Err(ApiError::not_found(&format!("{}.{GROUP}", route.resource), name)),
        },
        None => Ok(json_response(
            200,
            &json!({"kind": format!("{kind}List"), "apiVersion": format!("{GROUP}/{VERSION}"),
                    "metadata": {}, "items": items}),
        )),
    }
}

fn pod_items(store: &Store, source: Option<&dyn MetricsSource>, route: &MetricsRoute) -> Vec<Value> {
    let usage = source.map(|s| s.pods()).unwrap_or_default();
    let pods = store.list("pods", route.ns.as_deref()).0;
    pods.iter()
        .filter_map(|pod| {
            let uid = pod["metadata"]["uid"].as_str()?;
            let used = usage.iter().find(|u| u.uid == uid)?;
            let containers: Vec<Value> = used
                .containers
                .iter()
                .map(|c| {
                    json!({"name": c.name, "usage": {"cpu": nanocores(c.cpu_nanocores), "memory": kibibytes(c.memory_bytes)}})
                })
                .collect();
            Some(json!({
                "kind": "PodMetrics", "apiVersion": format!("{GROUP}/{VERSION}"),
                "metadata": metadata(pod, &used.timestamp),
                "timestamp": used.timestamp, "window": window(used.window_secs), "containers": containers,
            }))
        })
        .collect()
}

fn node_items(store: &Store, source: Option<&dyn MetricsSource>) -> Vec<Value> {
    let Some(used) = source.and_then(|s| s.node()) else { return vec![] };
    store
        .list("nodes", None)
        .0
        .iter()
        .map(|node| {
            json!({
                "kind": "NodeMetrics", "apiVersion": format!("{GROUP}/{VERSION}"),
                "metadata": metadata(node, &used.timestamp),
                "timestamp": used.timestamp, "window": window(used.window_secs),
                "usage": {"cpu": nanocores(used.cpu_nanocores), "memory": kibibytes(used.memory_bytes)},
            })
        })
        .collect()
}

/// Name, namespace and labels of the object measured; created "now", as
/// metrics-server's objects are.
fn metadata(object: &Value, now: &str) -> Value {
    let mut meta = json!({"name": object["metadata"]["name"], "creationTimestamp": now});
    if let Some(ns) = object["metadata"]["namespace"].as_str() {
        meta["namespace"] = json!(ns);
    }
    if object["metadata"]["labels"].is_object() {
        meta["labels"] = object["metadata"]["labels"].clone();
    }
    meta
}

fn nanocores(n: u64) -> String {
    format!("{n}n")
}

fn kibibytes(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

fn window(secs: f64) -> String {
    // As a Go duration prints: "10s", "10.5s".
    let rounded = (secs * 1000.0).round() / 1000.0;
    format!("{rounded}s")
}

/// The group in `/apis` (APIGroup).
pub fn group() -> Value {
    let version = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [version],
           "preferredVersion": version})
}

/// `/apis/metrics.k8s.io/v1beta1` (APIResourceList).
pub fn resource_list() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"),
    "resources": [
        {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ]})
}

/// The group's entry in aggregated discovery.
pub fn aggregated() -> Value {
    let resource = |name: &str, kind: &str, scope: &str| {
        json!({"resource": name, "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
               "scope": scope, "singularResource": "", "verbs": ["get", "list"]})
    };
    json!({"metadata": {"name": GROUP, "creationTimestamp": null}, "versions": [{"version": VERSION,
        "resources": [resource("nodes", "NodeMetrics", "Cluster"), resource("pods", "PodMetrics", "Namespaced")],
        "freshness": "Current"}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_pods_and_nodes() {
        assert_eq!(route(&["namespaces", "d", "pods", "p"]).unwrap().name.as_deref(), Some("p"));
        assert_eq!(route(&["pods"]).unwrap().ns, None);
        assert_eq!(route(&["nodes", "n"]).unwrap().resource, "nodes");
        assert!(route(&["services"]).is_none());
    }

    #[test]
    fn quantities_are_written_as_metrics_server_writes_them() {
        assert_eq!(nanocores(1_500_000), "1500000n");
        assert_eq!(kibibytes(3 * 1024 * 1024 + 5), "3072Ki");
        assert_eq!(window(10.0), "10s");
        assert_eq!(window(10.5), "10.5s");
    }
}

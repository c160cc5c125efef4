//! Discovery (`/api`, `/apis`, legacy and aggregated v2), `/version` and the
//! minimal OpenAPI v3 documents `kubectl apply` needs before it writes.

use serde_json::{Value, json};

use super::metrics;
use super::resources::{GROUPS, RESOURCES, ResourceType, versions_of};

/// Content type of an aggregated discovery reply.
pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client accepts aggregated discovery (kubectl and kube-rs do).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.contains("as=APIGroupDiscoveryList") && accept.contains("v=v2")
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

fn verbs_of(rt: &ResourceType) -> Vec<&'static str> {
    ALL_VERBS.iter().copied().filter(|v| !(rt.kind == "Event" && *v == "deletecollection")).collect()
}

fn categories_of(rt: &ResourceType) -> Vec<&'static str> {
    match rt.kind {
        "Pod" | "Service" | "Deployment" | "ReplicaSet" | "StatefulSet" | "HorizontalPodAutoscaler" => vec!["all"],
        _ => vec![],
    }
}

fn subresource_kind<'a>(rt: &'a ResourceType, sub: &str) -> (&'a str, &'a str, &'a str) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "exec" | "portforward" | "proxy" => ("", "v1", "Status"),
        "log" => ("", "v1", "Pod"),
        _ => (rt.group, rt.version, rt.kind),
    }
}

fn subresource_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "exec" | "portforward" => vec!["create", "get"],
        "log" => vec!["get"],
        "proxy" => vec!["create", "delete", "get", "patch", "update"],
        _ => vec!["get", "patch", "update"],
    }
}

/// `/version`: a recent Kubernetes, as the lab behaves like one.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-runbook-lab",
        "gitCommit": "runbook", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a", "compiler": "rustc", "platform": "linux/amd64",
        "emulationMajor": "1", "emulationMinor": "33"
    })
}

/// `/api` (APIVersions).
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
    ]})
}

/// `/apis` (APIGroupList).
pub fn group_list() -> Value {
    let mut groups: Vec<Value> = GROUPS.iter().map(|g| group(g)).collect();
    groups.push(metrics::group());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>` (APIGroup).
pub fn group(name: &str) -> Value {
    if name == metrics::GROUP {
        return metrics::group();
    }
    let versions: Vec<Value> =
        versions_of(name).iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": versions,
           "preferredVersion": versions[0]})
}

/// `/api/v1` or `/apis/<group>/<version>` (APIResourceList).
pub fn resource_list(group: &str, version: &str) -> Value {
    if group == metrics::GROUP {
        return metrics::resource_list();
    }
    let mut resources = Vec::new();
    for rt in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        resources.push(json!({
            "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
            "kind": rt.kind, "verbs": verbs_of(rt), "shortNames": rt.short_names,
            "categories": categories_of(rt),
        }));
        for sub in rt.subresources {
            let (g, v, k) = subresource_kind(rt, sub);
            resources.push(json!({
                "name": format!("{}/{sub}", rt.plural), "singularName": "", "namespaced": rt.namespaced,
                "group": g, "version": v, "kind": k, "verbs": subresource_verbs(sub),
            }));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// Aggregated discovery for the core group (`/api`) or the named groups (`/apis`).
pub fn aggregated(core: bool) -> Value {
    let groups: Vec<&str> = if core { vec![""] } else { GROUPS.to_vec() };
    let mut items: Vec<Value> = groups
        .iter()
        .map(|g| {
            let versions: Vec<Value> = versions_of(g)
                .iter()
                .map(|v| json!({"version": v, "resources": aggregated_resources(g, v), "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    if !core {
        items.push(metrics::aggregated());
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn aggregated_resources(group: &str, version: &str) -> Vec<Value> {
    RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|rt| {
            let subresources: Vec<Value> = rt
                .subresources
                .iter()
                .map(|sub| {
                    let (g, v, k) = subresource_kind(rt, sub);
                    json!({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k},
                           "verbs": subresource_verbs(sub)})
                })
                .collect();
            json!({
                "resource": rt.plural,
                "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": rt.singular,
                "verbs": verbs_of(rt),
                "shortNames": rt.short_names,
                "categories": categories_of(rt),
                "subresources": subresources,
            })
        })
        .collect()
}

fn group_version_paths() -> Vec<(String, &'static str, &'static str)> {
    let mut out = vec![("api/v1".to_string(), "", "v1")];
    for g in GROUPS {
        for v in versions_of(g) {
            out.push((format!("apis/{g}/{v}"), g, v));
        }
    }
    out
}

/// `/openapi/v2`: an empty Swagger document. kubectl asks for it only to
/// validate `kind: List` client-side; with no definitions it leaves validation
/// to the server, which is what it does for every other kind here.
pub fn openapi_v2() -> Value {
    json!({"swagger": "2.0", "info": {"title": "runbook lab", "version": "v1.33.0"}, "paths": {}, "definitions": {}})
}

/// `/openapi/v3`: the index of per-group documents.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    for (path, _, _) in group_version_paths() {
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=runbook-lab-1")}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<path>`: per resource, the `patch` operation with its GVK and
/// the `fieldValidation` parameter, which is what kubectl reads from it.
pub fn openapi_group(path: &str) -> Option<Value> {
    let (_, group, version) = group_version_paths().into_iter().find(|(p, _, _)| p == path)?;
    let mut paths = serde_json::Map::new();
    for rt in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        let url = if rt.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("/{path}/{}/{{name}}", rt.plural)
        };
        let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
        paths.insert(
            url,
            json!({"patch": {
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
                ],
                "responses": {"200": {"description": "OK"}}
            }}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "runbook lab", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_lists_every_resource_once() {
        let core = aggregated(true);
        let groups = aggregated(false);
        let count = |v: &Value| -> usize {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["versions"].as_array().unwrap())
                .map(|v| v["resources"].as_array().unwrap().len())
                .sum()
        };
        // The store's resources, and the metrics API's pods and nodes.
        assert_eq!(count(&core) + count(&groups), RESOURCES.len() + 2);
    }

    #[test]
    fn openapi_index_points_at_served_documents() {
        let index = openapi_index();
        for path in index["paths"].as_object().unwrap().keys() {
            assert!(openapi_group(path).is_some(), "{path}");
        }
        assert!(openapi_group("apis/nope/v1").is_none());
    }
}

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn node(name: &str) -> Arc<Value> {
    Arc::new(json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                    "spec": {}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}}))
}

fn nodes(count: usize) -> Vec<Arc<Value>> {
    ["a", "b", "c", "d"][..count].iter().map(|n| node(n)).collect()
}

fn pod(name: &str, labels: Value, spec: Value) -> Value {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]);
    json!({"metadata": {"name": name, "namespace": "ns", "labels": labels,
                        "ownerReferences": [{"controller": true, "uid": "sts-1"}]},
           "spec": spec})
}

/// Places `pods` one after the other as the kubelet binds them; returns
/// where each went.
fn place_all(nodes: &[Arc<Value>], pods: Vec<Value>) -> Vec<Result<String, String>> {
    let mut bound: Vec<Arc<Value>> = Vec::new();
    let mut out = Vec::new();
    for mut p in pods {
        let result = place(&p, &Cluster { nodes, pods: &bound });
        if let Ok(name) = &result {
            p["spec"]["nodeName"] = json!(name);
            bound.push(Arc::new(p));
        }
        out.push(result);
    }
    out
}

fn names(results: &[Result<String, String>]) -> Vec<&str> {
    results.iter().map(|r| r.as_deref().unwrap_or("-")).collect()
}

#[test]
fn the_pods_of_one_controller_spread_over_the_nodes() {
    let pods = (0..6).map(|i| pod(&format!("redis-{i}"), json!({"app": "redis"}), json!({}))).collect();
    assert_eq!(names(&place_all(&nodes(3), pods)), ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn a_cordoned_single_node_gives_the_schedulers_message() {
    let mut cordoned = (*node("a")).clone();
    cordoned["spec"]["unschedulable"] = json!(true);
    let result = place(&pod("p", json!({}), json!({})), &Cluster { nodes: &[Arc::new(cordoned)], pods: &[] });
    assert_eq!(
        result.unwrap_err(),
        "0/1 nodes are available: 1 node(s) were unschedulable. no new claims to deallocate, preemption: 0/1 nodes \
         are available: 1 Preemption is not helpful for scheduling."
    );
}

#[test]
fn reasons_are_counted_per_node_and_sorted_as_strings() {
    let mut cordoned = (*node("a")).clone();
    cordoned["spec"]["unschedulable"] = json!(true);
    let all = vec![Arc::new(cordoned), node("b"), node("c")];
    let mut big = pod("p", json!({}), json!({}));
    big["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("3");
    let message = place(&big, &Cluster { nodes: &all, pods: &[] }).unwrap_err();
    assert!(
        message.starts_with("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. no new claims"),
        "{message}"
    );
    // More than a node has can never fit: preemption is not helpful there.
    assert!(
        message.ends_with("preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."),
        "{message}"
    );
}

#[test]
fn required_anti_affinity_on_hostname_allows_one_pod_per_node() {
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "redis"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let pods = (0..4).map(|i| pod(&format!("redis-{i}"), json!({"app": "redis"}), anti.clone())).collect();
    let results = place_all(&nodes(3), pods);
    assert_eq!(names(&results), ["a", "b", "c", "-"]);
    assert!(
        results[3]
            .as_ref()
            .unwrap_err()
            .starts_with("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."),
        "{:?}",
        results[3]
    );
    // Another app may still go there; one the existing pods refuse may not.
    let other = place_all(
        &nodes(1),
        vec![pod("r", json!({"app": "redis"}), anti.clone()), pod("x", json!({"app": "x"}), json!({}))],
    );
    assert_eq!(names(&other), ["a", "a"]);
    let refused = place_all(
        &nodes(1),
        vec![pod("r", json!({"app": "redis"}), anti), pod("y", json!({"app": "redis"}), json!({}))],
    );
    assert!(refused[1].as_ref().unwrap_err().contains("1 node(s) didn't satisfy existing pods anti-affinity rules"));
}

#[test]
fn node_selectors_affinity_and_taints_narrow_the_choice() {
    let mut labelled = (*node("b")).clone();
    labelled["metadata"]["labels"]["disk"] = json!("ssd");
    let all = vec![node("a"), Arc::new(labelled), node("c")];
    let selected = pod("p", json!({}), json!({"nodeSelector": {"disk": "ssd"}}));
    assert_eq!(place(&selected, &Cluster { nodes: &all, pods: &[] }).unwrap(), "b");
    let affinity = pod(
        "p",
        json!({}),
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]},
                                                      {"key": "kubernetes.io/hostname", "operator": "In", "values": ["c"]}]}]}}}}),
    );
    assert_eq!(place(&affinity, &Cluster { nodes: &all, pods: &[] }).unwrap(), "c");
    let nowhere = pod("p", json!({}), json!({"nodeSelector": {"disk": "nvme"}}));
    let message = place(&nowhere, &Cluster { nodes: &all, pods: &[] }).unwrap_err();
    assert!(
        message.starts_with("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."),
        "{message}"
    );

    let mut tainted = (*node("a")).clone();
    tainted["spec"]["taints"] = json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]);
    let only_tainted = [Arc::new(tainted)];
    let plain = pod("p", json!({}), json!({}));
    let message = place(&plain, &Cluster { nodes: &only_tainted, pods: &[] }).unwrap_err();
    assert!(message.starts_with("0/1 nodes are available: 1 node(s) had untolerated taint(s)."), "{message}");
    let tolerant =
        pod("p", json!({}), json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]}));
    assert_eq!(place(&tolerant, &Cluster { nodes: &only_tainted, pods: &[] }).unwrap(), "a");
}

#[test]
fn topology_spread_do_not_schedule_keeps_the_skew() {
    // Two pods of app=web already on a; maxSkew 1 forbids a third there.
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
    let mut placed = Vec::new();
    for i in 0..2 {
        let mut p = pod(&format!("old-{i}"), json!({"app": "web"}), json!({}));
        p["spec"]["nodeName"] = json!("a");
        p["metadata"]["ownerReferences"] = json!([]);
        placed.push(Arc::new(p));
    }
    let two = nodes(2);
    let mut new = pod("new", json!({"app": "web"}), spread);
    new["metadata"]["ownerReferences"] = json!([]);
    assert_eq!(place(&new, &Cluster { nodes: &two, pods: &placed }).unwrap(), "b");
    let only_a = &two[..1];
    // With one domain there is no skew: a is still allowed.
    assert_eq!(place(&new, &Cluster { nodes: only_a, pods: &placed }).unwrap(), "a");
}

#[test]
fn tolerations_match_as_the_api_says() {
    let taint = json!({"key": "k", "value": "v", "effect": "NoExecute"});
    assert!(toleration_matches(&json!({"key": "k", "operator": "Equal", "value": "v"}), &taint));
    assert!(toleration_matches(&json!({"key": "k", "value": "v", "effect": "NoExecute"}), &taint));
    assert!(!toleration_matches(&json!({"key": "k", "value": "w"}), &taint));
    assert!(!toleration_matches(&json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"}), &taint));
    assert!(toleration_matches(&json!({"operator": "Exists"}), &taint));
    assert!(!toleration_matches(&json!({"operator": "Equal"}), &taint));
}

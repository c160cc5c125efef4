//! The examples of Kubernetes' "Network Policies" concept page, evaluated.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn pod(ns: &str, name: &str, ip: &str, labels: Value) -> Arc<Value> {
    Arc::new(json!({"metadata": {"namespace": ns, "name": name, "labels": labels},
           "spec": {"containers": [{"name": "c", "ports": [{"name": "redis", "containerPort": 6379}]}]},
           "status": {"podIP": ip}}))
}

fn namespace(name: &str, labels: Value) -> Arc<Value> {
    let mut labels = labels;
    labels["kubernetes.io/metadata.name"] = json!(name);
    Arc::new(json!({"metadata": {"name": name, "labels": labels}}))
}

fn policy(ns: &str, spec: Value) -> Arc<Value> {
    let mut object = json!({"metadata": {"namespace": ns, "name": "p"}, "spec": spec});
    let kind = "NetworkPolicy";
    let rt = crate::api::resources::RESOURCES.iter().find(|r| r.kind == kind).unwrap();
    crate::api::defaults::apply(rt, &mut object);
    Arc::new(object)
}

fn tcp(port: u16) -> PortRange {
    PortRange { protocol: "tcp".into(), from: port, to: port }
}

fn ip(cidr: &str) -> Block {
    Block { cidr: cidr.into(), except: vec![] }
}

struct Fixture {
    pods: Vec<Arc<Value>>,
    namespaces: Vec<Arc<Value>>,
}

fn fixture() -> Fixture {
    Fixture {
        pods: vec![
            pod("default", "db", "10.244.0.2", json!({"role": "db"})),
            pod("default", "frontend", "10.244.0.3", json!({"role": "frontend"})),
            pod("other", "client", "10.244.0.4", json!({"role": "frontend"})),
            pod("default", "pending", "", json!({"role": "frontend"})),
        ],
        namespaces: vec![namespace("default", json!({})), namespace("other", json!({"project": "myproject"}))],
    }
}

fn isolation_of(f: &Fixture, policies: &[Arc<Value>], pod: usize) -> Isolation {
    isolation(&f.pods[pod], &World { policies, pods: &f.pods, namespaces: &f.namespaces })
}

#[test]
fn a_pod_no_policy_selects_is_not_isolated() {
    let f = fixture();
    let other_namespace = policy("other", json!({"podSelector": {}}));
    assert_eq!(isolation_of(&f, &[], 0), Isolation::default());
    assert_eq!(isolation_of(&f, &[other_namespace], 0), Isolation::default());
}

#[test]
fn default_deny_ingress_isolates_ingress_only() {
    let f = fixture();
    let deny = policy("default", json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
    assert_eq!(isolation_of(&f, &[deny], 0), Isolation { ingress: Some(vec![]), ..Isolation::default() });
}

#[test]
fn egress_rules_imply_the_egress_policy_type() {
    let f = fixture();
    let p = policy("default", json!({"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}));
    let udp53 = PortRange { protocol: "udp".into(), from: 53, to: 53 };
    assert_eq!(
        isolation_of(&f, &[p], 0),
        Isolation {
            ingress: Some(vec![]),
            egress: Some(vec![Allow { peers: None, ports: vec![udp53] }]),
            loss_percent: None,
            latency_ms: None,
        }
    );
}

#[test]
fn the_concept_pages_example_policy() {
    let f = fixture();
    let p = policy(
        "default",
        json!({
            "podSelector": {"matchLabels": {"role": "db"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [
                {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                {"podSelector": {"matchLabels": {"role": "frontend"}}}
            ], "ports": [{"protocol": "TCP", "port": 6379}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 5978}]}]
        }),
    );
    let db = isolation_of(&f, std::slice::from_ref(&p), 0);
    let ingress_peers = vec![
        Block { cidr: "172.17.0.0/16".into(), except: vec!["172.17.1.0/24".into()] },
        ip("10.244.0.4/32"), // every pod of a namespace labelled project=myproject
        ip("10.244.0.3/32"), // role=frontend in the policy's namespace (not the pod without an IP)
    ];
    assert_eq!(db.ingress, Some(vec![Allow { peers: Some(ingress_peers), ports: vec![tcp(6379)] }]));
    assert_eq!(db.egress, Some(vec![Allow { peers: Some(vec![ip("10.0.0.0/24")]), ports: vec![tcp(5978)] }]));
    assert_eq!(isolation_of(&f, &[p], 1), Isolation::default(), "the frontend is not selected");
}

#[test]
fn namespace_and_pod_selector_in_one_peer_mean_both() {
    let f = fixture();
    let both = |spec_from: Value| {
        policy("default", json!({"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [{"from": spec_from}]}))
    };
    let and = both(json!([{"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "frontend"}}}]));
    let or = both(json!([{"namespaceSelector": {"matchLabels": {"project": "myproject"}}}, {"podSelector": {}}]));
    let peers = |p: Arc<Value>| isolation_of(&f, &[p], 0).ingress.unwrap()[0].peers.clone().unwrap();
    assert_eq!(peers(and), [ip("10.244.0.3/32"), ip("10.244.0.4/32")], "frontends of every namespace");
    assert_eq!(
        peers(or),
        [ip("10.244.0.4/32"), ip("10.244.0.2/32"), ip("10.244.0.3/32")],
        "all of `other`, and every pod of the policy's namespace"
    );
}

#[test]
fn named_ports_are_the_destinations_and_end_port_makes_a_range() {
    let f = fixture();
    let ingress = policy(
        "default",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": "redis"}, {"port": "nope"}, {"port": 7000, "endPort": 7005}]}]}),
    );
    let allowed = isolation_of(&f, &[ingress], 0).ingress.unwrap();
    assert_eq!(allowed[0].ports, [tcp(6379), PortRange { protocol: "tcp".into(), from: 7000, to: 7005 }]);

    let egress = policy(
        "default",
        json!({"podSelector": {"matchLabels": {"role": "db"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"podSelector": {"matchLabels": {"role": "frontend"}}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}],
                           "ports": [{"port": "redis"}]}]}),
    );
    let allowed = isolation_of(&f, &[egress], 0).egress.unwrap();
    assert_eq!(allowed, [Allow { peers: Some(vec![ip("10.244.0.3/32")]), ports: vec![tcp(6379)] }]);
}

#[test]
fn a_rule_whose_named_ports_resolve_nowhere_allows_nothing() {
    let f = fixture();
    let p = policy("default", json!({"podSelector": {}, "ingress": [{"ports": [{"port": "nope"}]}]}));
    assert_eq!(isolation_of(&f, &[p], 0).ingress, Some(vec![]));
}

#[test]
fn dns_is_reached_only_where_an_egress_rule_allows_the_dns_pods() {
    let mut f = fixture();
    let node = std::net::Ipv4Addr::new(10, 244, 0, 1);
    f.pods.push(Arc::new(dns_pod(node)));
    f.namespaces.push(namespace("kube-system", json!({})));
    let deny = policy("default", json!({"podSelector": {}, "policyTypes": ["Egress"]}));
    let dns = policy(
        "default",
        json!({"podSelector": {}, "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"port": "dns", "protocol": "UDP"}]}]}),
    );
    let egress = |policies: &[Arc<Value>]| isolation_of(&f, policies, 0).egress.unwrap();
    assert!(!reaches(&egress(std::slice::from_ref(&deny)), node, "udp", 53));
    assert!(reaches(&egress(&[deny, dns.clone()]), node, "udp", 53));
    assert!(!reaches(&egress(&[dns]), node, "tcp", 53), "the rule names UDP only");
}

#[test]
fn blocks_hold_their_addresses_less_the_exceptions() {
    let a = |cidr: &str, except: &[&str]| Allow {
        peers: Some(vec![Block { cidr: cidr.into(), except: except.iter().map(|e| e.to_string()).collect() }]),
        ports: vec![],
    };
    let ip = |s: &str| s.parse().unwrap();
    assert!(reaches(&[a("10.0.0.0/8", &[])], ip("10.1.2.3"), "tcp", 1));
    assert!(!reaches(&[a("10.0.0.0/8", &["10.1.0.0/16"])], ip("10.1.2.3"), "tcp", 1));
    assert!(reaches(&[a("0.0.0.0/0", &[])], ip("192.168.1.1"), "udp", 53));
    assert!(!reaches(&[a("10.244.0.2/32", &[])], ip("10.244.0.3"), "tcp", 1));
    assert!(!reaches(&[a("fd00::/8", &[])], ip("10.244.0.3"), "tcp", 1));
}

#[test]
fn a_connection_needs_the_senders_egress_and_the_receivers_ingress() {
    let f = fixture();
    let ip = |s: &str| s.parse().unwrap();
    let db_in = policy(
        "default",
        json!({"podSelector": {"matchLabels": {"role": "db"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}], "ports": [{"port": 6379}]}]}),
    );
    let policies = [db_in];
    let world = World { policies: &policies, pods: &f.pods, namespaces: &f.namespaces };
    assert!(connection_allowed(&world, ip("10.244.0.3"), ip("10.244.0.2"), 6379), "frontend to db");
    assert!(!connection_allowed(&world, ip("10.244.0.3"), ip("10.244.0.2"), 6380), "another port");
    assert!(!connection_allowed(&world, ip("10.244.0.4"), ip("10.244.0.2"), 6379), "a frontend of another namespace");
    assert!(connection_allowed(&world, ip("10.244.0.1"), ip("10.244.0.2"), 6380), "the node");
    assert!(connection_allowed(&world, ip("10.244.0.2"), ip("10.244.0.4"), 1), "db sends anywhere");
}

#[test]
fn the_loss_annotation_applies_only_when_every_selecting_policy_has_it() {
    let f = fixture();
    let annotated = |loss: &str| {
        let mut p = (*policy("default", json!({"podSelector": {}, "policyTypes": ["Ingress"]}))).clone();
        p["metadata"]["annotations"] = json!({LOSS_ANNOTATION: loss});
        Arc::new(p)
    };
    assert_eq!(isolation_of(&f, &[annotated("30%")], 0).loss_percent, Some(30));
    assert_eq!(isolation_of(&f, &[annotated("30"), annotated("60")], 0).loss_percent, Some(60));
    for nonsense in ["0", "101", "a lot"] {
        assert_eq!(isolation_of(&f, &[annotated(nonsense)], 0).loss_percent, None, "{nonsense}");
    }
    let plain = policy("default", json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
    assert_eq!(isolation_of(&f, &[annotated("30"), plain], 0).loss_percent, None, "a plain policy still cuts");
}

#[test]
fn the_latency_annotation_applies_only_when_every_selecting_policy_has_it() {
    let f = fixture();
    let annotated = |latency: &str| {
        let mut p = (*policy("default", json!({"podSelector": {}, "policyTypes": ["Ingress"]}))).clone();
        p["metadata"]["annotations"] = json!({LATENCY_ANNOTATION: latency});
        Arc::new(p)
    };
    assert_eq!(isolation_of(&f, &[annotated("50ms")], 0).latency_ms, Some(50));
    assert_eq!(isolation_of(&f, &[annotated("0.2s"), annotated("50ms")], 0).latency_ms, Some(200));
    for nonsense in ["0ms", "61s", "50", "slow"] {
        assert_eq!(isolation_of(&f, &[annotated(nonsense)], 0).latency_ms, None, "{nonsense}");
    }
    let plain = policy("default", json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
    assert_eq!(isolation_of(&f, &[annotated("50ms"), plain], 0).latency_ms, None, "a plain policy still cuts");
}

//! NetworkPolicy as Kubernetes defines it (k8s.io/api/networking/v1 and the
//! concept page "Network Policies"): which traffic a pod accepts and sends.
//! Pure: from the policies, pods and namespaces to one pod's [`Isolation`];
//! [`super::policy_nft`] writes it as nftables rules, which the kubelet loads
//! in the pod's network namespace (kubelet::policy_enforcer).
//!
//! The rules, as the API documents them: a pod is isolated for ingress
//! (egress) when a policy of its namespace selects it with `Ingress`
//! (`Egress`) among its policyTypes; it then accepts (sends) only what one of
//! those policies' rules allows, the union of them. A rule's peers are all
//! sources when it names none; a peer is an ipBlock, or pods by podSelector
//! in the policy's namespace, or by namespaceSelector (and podSelector) in
//! the namespaces it selects. A rule's ports are all ports when it names
//! none; a named port is a container port of the destination pod. Replies to
//! allowed connections pass, and traffic to and from the node (the lab's
//! gateway) always passes.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::selectors::LabelSelector;

/// What a pod may receive and send; `None` where it is not isolated.
#[derive(Debug, Default, PartialEq)]
pub struct Isolation {
    /// Allowed incoming traffic, when isolated for ingress.
    pub ingress: Option<Vec<Allow>>,
    /// Allowed outgoing traffic, when isolated for egress.
    pub egress: Option<Vec<Allow>>,
    /// The lab's extension: the share of the traffic the rules do not allow
    /// that is dropped (percent), from the annotation [`LOSS_ANNOTATION`] of
    /// a policy that selects the pod; `None`: all of it, as Kubernetes says.
    pub loss_percent: Option<u8>,
    /// The lab's extension: how long each packet the rules do not allow
    /// waits before it goes on (milliseconds), from the annotation
    /// [`LATENCY_ANNOTATION`]; `None`: such packets are dropped.
    pub latency_ms: Option<u32>,
}

/// The annotation that turns what a policy denies into packet loss on the
/// lab (`"30"` or `"30%"`: each such packet dropped at that chance). A
/// network plugin ignores it and drops everything denied.
pub const LOSS_ANNOTATION: &str = "runbook.dev/loss";

/// The annotation that delays what a policy denies instead of dropping it,
/// on the lab (`"50ms"`, `"1s"`: each such packet, in either direction,
/// waits that long). A network plugin ignores it and drops everything denied.
pub const LATENCY_ANNOTATION: &str = "runbook.dev/latency";

/// The longest delay the lab applies (a minute): more is a cut.
const LATENCY_MAX_MS: u32 = 60_000;

/// A policy's latency, if annotated with a duration from 1 ms to a minute.
fn latency_of(policy: &Value) -> Option<u32> {
    latency_ms(policy["metadata"]["annotations"][LATENCY_ANNOTATION].as_str()?)
}

/// A latency (`50ms`, `0.5s`) in milliseconds, from 1 ms to a minute.
pub fn latency_ms(text: &str) -> Option<u32> {
    let millis = runbook_units::parse_duration(text)?.as_millis();
    (1..=u128::from(LATENCY_MAX_MS)).contains(&millis).then_some(millis as u32)
}

/// A policy's loss, if annotated with a percentage from 1 to 100.
fn loss_of(policy: &Value) -> Option<u8> {
    let text = policy["metadata"]["annotations"][LOSS_ANNOTATION].as_str()?;
    let percent: u8 = text.trim().trim_end_matches('%').trim().parse().ok()?;
    (1..=100).contains(&percent).then_some(percent)
}

/// Traffic one rule allows: from (or to) these peers, on these ports.
#[derive(Debug, Clone, PartialEq)]
pub struct Allow {
    /// The addresses on the other side; `None` for any.
    pub peers: Option<Vec<Block>>,
    /// Ports on the destination; empty for every port of every protocol.
    pub ports: Vec<PortRange>,
}

/// An address block (a pod is its IP/32), less some blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// `10.244.0.7/32`, `172.17.0.0/16`.
    pub cidr: String,
    /// Blocks inside `cidr` that are not part of it.
    pub except: Vec<String>,
}

/// A protocol's ports `from..=to` (every port of it: 0..=65535).
#[derive(Debug, Clone, PartialEq)]
pub struct PortRange {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// First port.
    pub from: u16,
    /// Last port.
    pub to: u16,
}

/// The objects a pod's isolation is decided from.
pub struct World<'a> {
    /// Every NetworkPolicy.
    pub policies: &'a [Arc<Value>],
    /// Every pod, with `status.podIP` where it has one.
    pub pods: &'a [Arc<Value>],
    /// Every Namespace.
    pub namespaces: &'a [Arc<Value>],
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Ingress,
    Egress,
}

/// The isolation of `pod` in `world`.
pub fn isolation(pod: &Value, world: &World) -> Isolation {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let selecting: Vec<&Value> = world
        .policies
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| p["metadata"]["namespace"] == ns)
        .filter(|p| selects(&p["spec"]["podSelector"], &pod["metadata"]["labels"]))
        .collect();
    let allowed = |direction: Direction| {
        let (kind, rules_key) = match direction {
            Direction::Ingress => ("Ingress", "ingress"),
            Direction::Egress => ("Egress", "egress"),
        };
        let applying: Vec<&&Value> = selecting
            .iter()
            .filter(|p| p["spec"]["policyTypes"].as_array().into_iter().flatten().any(|t| t == kind))
            .collect();
        if applying.is_empty() {
            return None;
        }
        let mut allows = Vec::new();
        for policy in applying {
            for rule in policy["spec"][rules_key].as_array().into_iter().flatten() {
                allows.extend(rule_allows(pod, policy, rule, direction, world));
            }
        }
        Some(allows)
    };
    // Several annotated policies: the largest loss (a policy without the
    // annotation drops all it denies, but its allows are what is unioned).
    let losses: Vec<Option<u8>> = selecting.iter().map(|p| loss_of(p)).collect();
    let loss_percent = if losses.iter().all(Option::is_some) { losses.into_iter().flatten().max() } else { None };
    let latencies: Vec<Option<u32>> = selecting.iter().map(|p| latency_of(p)).collect();
    let latency_ms = if latencies.iter().all(Option::is_some) { latencies.into_iter().flatten().max() } else { None };
    Isolation { ingress: allowed(Direction::Ingress), egress: allowed(Direction::Egress), loss_percent, latency_ms }
}

/// Whether a selector object selects these labels; one the API would have
/// refused selects nothing.
fn selects(selector: &Value, labels: &Value) -> bool {
    LabelSelector::from_object(selector).is_ok_and(|s| s.matches_labels(labels))
}

/// What one rule allows. Named ports are looked up on the destination: the
/// pod itself for ingress; for egress, each peer pod, so such a rule allows
/// each peer pod on its own port numbers (and no ipBlock, which has none).
fn rule_allows(pod: &Value, policy: &Value, rule: &Value, direction: Direction, world: &World) -> Vec<Allow> {
    let peers_key = if direction == Direction::Ingress { "from" } else { "to" };
    let peers: Option<Vec<(Block, Option<&Value>)>> = match rule[peers_key].as_array() {
        Some(list) if !list.is_empty() => Some(list.iter().flat_map(|peer| peer_blocks(policy, peer, world)).collect()),
        _ => None,
    };
    let ports: Vec<&Value> = rule["ports"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
    let named = ports.iter().any(|p| p["port"].is_string());
    if direction == Direction::Ingress || !named {
        let ports = ports.iter().filter_map(|p| port_range(p, pod)).collect::<Vec<_>>();
        if !ports_allow_something(&ports, rule) {
            return Vec::new();
        }
        return vec![Allow { peers: peers.map(|p| p.into_iter().map(|(b, _)| b).collect()), ports }];
    }
    // Egress with a named port: one Allow per destination pod that has it.
    let destinations: Vec<(Block, &Value)> = match peers {
        Some(peers) => peers.into_iter().filter_map(|(b, p)| p.map(|p| (b, p))).collect(),
        None => world.pods.iter().filter_map(|p| pod_block(p).map(|b| (b, p.as_ref()))).collect(),
    };
    destinations
        .into_iter()
        .filter_map(|(block, destination)| {
            let ports: Vec<PortRange> = ports.iter().filter_map(|p| port_range(p, destination)).collect();
            (!ports.is_empty()).then(|| Allow { peers: Some(vec![block]), ports })
        })
        .collect()
}

/// A rule that names ports none of which resolve allows nothing.
fn ports_allow_something(resolved: &[PortRange], rule: &Value) -> bool {
    !resolved.is_empty() || rule["ports"].as_array().is_none_or(Vec::is_empty)
}

/// The blocks a peer names, with the pod behind each pod's block.
fn peer_blocks<'a>(policy: &Value, peer: &Value, world: &'a World) -> Vec<(Block, Option<&'a Value>)> {
    if let Some(block) = peer["ipBlock"].as_object() {
        let cidr = block.get("cidr").and_then(Value::as_str).unwrap_or_default().to_string();
        let except = block
            .get("except")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(String::from))
            .collect();
        return vec![(Block { cidr, except }, None)];
    }
    let policy_ns = policy["metadata"]["namespace"].as_str().unwrap_or_default();
    let in_namespace = |ns: &str| match peer.get("namespaceSelector") {
        Some(selector) if !selector.is_null() => world
            .namespaces
            .iter()
            .find(|n| n["metadata"]["name"] == ns)
            .is_some_and(|n| selects(selector, &n["metadata"]["labels"])),
        _ => ns == policy_ns,
    };
    world
        .pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| in_namespace(p["metadata"]["namespace"].as_str().unwrap_or_default()))
        .filter(|p| selects(&peer["podSelector"], &p["metadata"]["labels"]))
        .filter_map(|p| pod_block(p).map(|b| (b, Some(p))))
        .collect()
}

/// A pod's address as a block, when it has one.
fn pod_block(pod: &Value) -> Option<Block> {
    let ip = pod["status"]["podIP"].as_str().filter(|ip| !ip.is_empty())?;
    Some(Block { cidr: format!("{ip}/32"), except: Vec::new() })
}

/// A policy port on `destination`: a number (with `endPort`), a name of one
/// of its container ports with that protocol, or every port.
fn port_range(port: &Value, destination: &Value) -> Option<PortRange> {
    let protocol = port["protocol"].as_str().unwrap_or("TCP").to_ascii_lowercase();
    let (from, to) = match &port["port"] {
        Value::Null => (0, u16::MAX),
        Value::Number(n) => {
            let from = u16::try_from(n.as_u64()?).ok()?;
            let to = port["endPort"].as_u64().and_then(|e| u16::try_from(e).ok()).unwrap_or(from);
            (from, to)
        }
        Value::String(name) => {
            let number = named_port(destination, name, &protocol)?;
            (number, number)
        }
        _ => return None,
    };
    Some(PortRange { protocol, from, to })
}

/// The number of the container port `name` (with `protocol`) of a pod.
fn named_port(pod: &Value, name: &str, protocol: &str) -> Option<u16> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name && p["protocol"].as_str().unwrap_or("TCP").eq_ignore_ascii_case(protocol))
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
}

/// The cluster DNS as egress rules see it: on a cluster, pods in kube-system
/// labelled `k8s-app: kube-dns` with CoreDNS' named ports; the lab answers
/// DNS on the node (`ip`), so this stands for them among the pods.
pub fn dns_pod(ip: Ipv4Addr) -> Value {
    json!({
        "metadata": {"namespace": "kube-system", "name": "lab-dns", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"containers": [{"name": "coredns", "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}
        ]}]},
        "status": {"podIP": ip.to_string()}
    })
}

/// Whether `allows` let traffic reach (or come from) `ip` on `protocol`
/// (`udp`) port `port`.
pub fn reaches(allows: &[Allow], ip: Ipv4Addr, protocol: &str, port: u16) -> bool {
    allows.iter().any(|a| {
        let peer = a.peers.as_ref().is_none_or(|blocks| {
            blocks.iter().any(|b| contains(&b.cidr, ip) && !b.except.iter().any(|e| contains(e, ip)))
        });
        let port =
            a.ports.is_empty() || a.ports.iter().any(|p| p.protocol == protocol && (p.from..=p.to).contains(&port));
        peer && port
    })
}

/// Whether a TCP connection from `from` to `to`:`port` passes the policies:
/// the egress of the pod at `from` and the ingress of the pod at `to`. For
/// the service proxy, which connects on the client's behalf from the node:
/// a client no pod is (the node, or outside through it) passes, as traffic
/// from the node always does.
pub fn connection_allowed(world: &World, from: Ipv4Addr, to: Ipv4Addr, port: u16) -> bool {
    let pod_at = |ip: Ipv4Addr| {
        world.pods.iter().map(|p| p.as_ref()).find(|p| p["status"]["podIP"].as_str() == Some(&ip.to_string()))
    };
    let Some(sender) = pod_at(from) else { return true };
    // A lossy or slow policy loses or delays packets, not connections: TCP
    // gets through it.
    let lets_through = |iso: Isolation, allows: fn(&Isolation) -> Option<&[Allow]>, peer: Ipv4Addr| {
        iso.loss_percent.is_some()
            || iso.latency_ms.is_some()
            || allows(&iso).is_none_or(|a| reaches(a, peer, "tcp", port))
    };
    let sends = lets_through(isolation(sender, world), |i| i.egress.as_deref(), to);
    let accepts = pod_at(to).is_none_or(|pod| lets_through(isolation(pod, world), |i| i.ingress.as_deref(), from));
    sends && accepts
}

/// Whether an IPv4 block (`10.0.0.0/8`) holds `ip`; IPv6 or malformed: no.
fn contains(cidr: &str, ip: Ipv4Addr) -> bool {
    let (base, bits) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let (Ok(base), Ok(bits)) = (base.parse::<Ipv4Addr>(), bits.parse::<u32>()) else { return false };
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits.min(32)) };
    u32::from(base) & mask == u32::from(ip) & mask
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

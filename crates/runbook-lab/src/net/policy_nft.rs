//! A pod's [`Isolation`] as an nftables script for its network namespace: a
//! table `inet runbook_policy` with an input chain (ingress) and an output
//! chain (egress) whose policy is drop, accepting replies, loopback, the node
//! (the lab's gateway) and what the rules allow. Only replies are accepted
//! by their connection's state: every other packet is judged by the rules,
//! so connections made before a policy are cut by it too. Loaded with `nft -f -`, the
//! script replaces the table in one transaction. With the lab's loss
//! annotation, what the rules do not allow is dropped at a chance instead;
//! with its latency annotation, it is marked with [`DELAY_MARK`] and let
//! through, for the pod's [`delay_rules`] to hand to the lab, which holds each
//! such packet for the latency before it goes on (nftables here cannot queue
//! packets to a program: the lab's kernel has no `nft_queue`; xtables can).

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::policy::{Allow, Block, Isolation, PortRange};

/// The table every pod's rules live in.
pub const TABLE: &str = "runbook_policy";

/// The packet mark of what a slow policy delays.
pub const DELAY_MARK: u32 = 0x7262_6c74;

/// The netfilter queue the delayed packets of a pod wait in (queues belong
/// to a network namespace, so every pod can use the same number).
pub const DELAY_QUEUE: u16 = 7;

/// The script that makes a pod's network namespace enforce `isolation`
/// (`node` is the pods' gateway; `dns_allowed` says whether an egress rule
/// lets the pod reach the cluster DNS, which the lab serves on the node).
pub fn script(isolation: &Isolation, node: Ipv4Addr, dns_allowed: bool) -> String {
    // Creating the table first makes the delete valid when none exists yet.
    let mut out = format!("add table inet {TABLE}\ndelete table inet {TABLE}\n");
    if isolation.ingress.is_none() && isolation.egress.is_none() {
        return out;
    }
    let _ = writeln!(out, "table inet {TABLE} {{");
    let denied = Denied { loss_percent: isolation.loss_percent, delayed: isolation.latency_ms.is_some() };
    if let Some(allows) = &isolation.ingress {
        chain(&mut out, "ingress", "input", "iif", "saddr", node, &[], allows, denied);
    }
    if let Some(allows) = &isolation.egress {
        // The lab answers DNS on the node, where a cluster runs DNS pods that
        // egress rules must allow: the node's port 53 is not the node here.
        let dns: &[&str] = if dns_allowed { &[] } else { &["udp dport 53 drop", "tcp dport 53 drop"] };
        chain(&mut out, "egress", "output", "oif", "daddr", node, dns, allows, denied);
    }
    out.push_str("}\n");
    // The script changes with the delay, so the pod is programmed again.
    if let Some(millis) = isolation.latency_ms {
        let _ = writeln!(out, "# marked packets wait {millis} ms in the lab's queue {DELAY_QUEUE}");
    }
    out
}

/// What becomes of the packets the rules do not allow.
#[derive(Clone, Copy)]
struct Denied {
    /// Dropped at this chance (percent); `None`: all dropped (unless delayed).
    loss_percent: Option<u8>,
    /// Marked for the delay queue (what loss leaves) instead of dropped.
    delayed: bool,
}

/// The rules that hand a pod's marked packets to the lab's delay queue:
/// an `iptables-restore` input for the pod's network namespace. The mangle
/// table's chains come after the policy's (which a slow policy moves ahead
/// of them); `--queue-bypass` lets packets through when no program reads
/// the queue, so a lab that stopped leaves no pod cut off.
pub fn delay_rules() -> String {
    let rule = |chain: &str| {
        format!("-A {chain} -m mark --mark {DELAY_MARK:#x} -j NFQUEUE --queue-num {DELAY_QUEUE} --queue-bypass\n")
    };
    format!(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :POSTROUTING ACCEPT [0:0]\n{}{}COMMIT\n",
        rule("INPUT"),
        rule("OUTPUT")
    )
}

/// The `iptables-restore` input that empties the pod's mangle table: the
/// [`delay_rules`] taken out once its packets are no longer delayed.
pub fn no_delay_rules() -> String {
    "*mangle\nCOMMIT\n".into()
}

#[allow(clippy::too_many_arguments)]
fn chain(
    out: &mut String,
    name: &str,
    hook: &str,
    interface: &str,
    address: &str,
    node: Ipv4Addr,
    node_exceptions: &[&str],
    allows: &[Allow],
    denied: Denied,
) {
    if denied.delayed {
        // Ahead of the mangle table's delay rule; replies are judged too,
        // since a slow link delays both ways.
        let _ = writeln!(out, "  chain {name} {{\n    type filter hook {hook} priority mangle - 10; policy accept;");
        let _ = writeln!(out, "    {interface} \"lo\" accept");
    } else {
        let _ = writeln!(out, "  chain {name} {{\n    type filter hook {hook} priority filter; policy drop;");
        // Replies on a connection this pod's other chain let through pass;
        // the packets of a connection in its own direction are judged each
        // time, so a policy also cuts connections open before it (a
        // partition must).
        let _ =
            writeln!(out, "    ct state related accept\n    ct direction reply accept\n    {interface} \"lo\" accept");
    }
    for exception in node_exceptions {
        let _ = writeln!(out, "    ip {address} {node} {exception}");
    }
    let _ = writeln!(out, "    ip {address} {node} accept");
    for allow in allows {
        for peer in peer_matches(address, allow.peers.as_deref()) {
            for port in port_matches(&allow.ports) {
                let _ = writeln!(out, "    {}accept", [peer.as_str(), port.as_str()].concat());
            }
        }
    }
    let loss = denied.loss_percent.filter(|l| *l < 100);
    if denied.delayed {
        // What loss spares is delayed, not dropped.
        if let Some(loss) = loss {
            let _ = writeln!(out, "    numgen random mod 100 < {loss} drop");
        }
        let _ = writeln!(out, "    meta mark set {DELAY_MARK:#x}");
    } else if let Some(loss) = loss {
        // Packet loss instead of a cut: what is not allowed passes at the
        // remaining chance, and the chain's policy drops the rest.
        let _ = writeln!(out, "    numgen random mod 100 >= {loss} accept");
    }
    out.push_str("  }\n");
}

/// One match per peer block (`ip saddr 10.0.0.0/8 ip saddr != { … } `);
/// one empty match for any peer. IPv6 blocks match nothing on the lab's
/// IPv4 network and are left out.
fn peer_matches(address: &str, peers: Option<&[Block]>) -> Vec<String> {
    let Some(peers) = peers else { return vec![String::new()] };
    peers
        .iter()
        .filter(|b| !b.cidr.contains(':'))
        .map(|b| {
            let except: Vec<&str> = b.except.iter().map(String::as_str).filter(|e| !e.contains(':')).collect();
            if except.is_empty() {
                format!("ip {address} {} ", b.cidr)
            } else {
                format!("ip {address} {} ip {address} != {{ {} }} ", b.cidr, except.join(", "))
            }
        })
        .collect()
}

/// One match per port range; one empty match for every port.
fn port_matches(ports: &[PortRange]) -> Vec<String> {
    if ports.is_empty() {
        return vec![String::new()];
    }
    ports
        .iter()
        .map(|p| match (p.from, p.to) {
            (0, u16::MAX) => format!("meta l4proto {} ", p.protocol),
            (from, to) if from == to => format!("{} dport {from} ", p.protocol),
            (from, to) => format!("{} dport {from}-{to} ", p.protocol),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

    #[test]
    fn no_isolation_removes_the_table() {
        assert_eq!(
            script(&Isolation::default(), NODE, true),
            "add table inet runbook_policy\ndelete table inet runbook_policy\n"
        );
    }

    #[test]
    fn isolation_becomes_chains_that_drop_what_no_rule_accepts() {
        let isolation = Isolation {
            ingress: Some(vec![Allow {
                peers: Some(vec![
                    Block { cidr: "10.244.0.3/32".into(), except: vec![] },
                    Block { cidr: "172.17.0.0/16".into(), except: vec!["172.17.1.0/24".into()] },
                    Block { cidr: "fd00::/8".into(), except: vec![] },
                ]),
                ports: vec![PortRange { protocol: "tcp".into(), from: 6379, to: 6379 }],
            }]),
            egress: Some(vec![Allow {
                peers: None,
                ports: vec![
                    PortRange { protocol: "udp".into(), from: 0, to: u16::MAX },
                    PortRange { protocol: "tcp".into(), from: 7000, to: 7005 },
                ],
            }]),
            loss_percent: None,
            latency_ms: None,
        };
        let expected = "add table inet runbook_policy
delete table inet runbook_policy
table inet runbook_policy {
  chain ingress {
    type filter hook input priority filter; policy drop;
    ct state related accept
    ct direction reply accept
    iif \"lo\" accept
    ip saddr 10.244.0.1 accept
    ip saddr 10.244.0.3/32 tcp dport 6379 accept
    ip saddr 172.17.0.0/16 ip saddr != { 172.17.1.0/24 } tcp dport 6379 accept
  }
  chain egress {
    type filter hook output priority filter; policy drop;
    ct state related accept
    ct direction reply accept
    oif \"lo\" accept
    ip daddr 10.244.0.1 udp dport 53 drop
    ip daddr 10.244.0.1 tcp dport 53 drop
    ip daddr 10.244.0.1 accept
    meta l4proto udp accept
    tcp dport 7000-7005 accept
  }
}
";
        assert_eq!(script(&isolation, NODE, false), expected);
    }

    #[test]
    fn loss_lets_what_is_denied_through_at_the_remaining_chance() {
        let isolation = Isolation { ingress: Some(vec![]), loss_percent: Some(30), ..Isolation::default() };
        let text = script(&isolation, NODE, true);
        let chain: Vec<&str> = text.lines().skip_while(|l| !l.contains("chain ingress")).collect();
        assert_eq!(chain[6..9], ["    numgen random mod 100 >= 30 accept", "  }", "}"], "{text}");
        let total = Isolation { loss_percent: Some(100), ..isolation };
        assert!(!script(&total, NODE, true).contains("numgen"), "100% is a cut");
    }

    #[test]
    fn latency_marks_what_is_denied_both_ways_ahead_of_the_delay_rules() {
        let allow = Allow { peers: Some(vec![Block { cidr: "10.244.0.3/32".into(), except: vec![] }]), ports: vec![] };
        let isolation = Isolation {
            ingress: Some(vec![allow.clone()]),
            egress: Some(vec![allow]),
            latency_ms: Some(50),
            ..Default::default()
        };
        let text = script(&isolation, NODE, true);
        let ingress: Vec<&str> = text.lines().skip_while(|l| !l.contains("chain ingress")).take(7).collect();
        assert_eq!(
            ingress,
            [
                "  chain ingress {",
                "    type filter hook input priority mangle - 10; policy accept;",
                "    iif \"lo\" accept",
                "    ip saddr 10.244.0.1 accept",
                "    ip saddr 10.244.0.3/32 accept",
                "    meta mark set 0x72626c74",
                "  }"
            ],
            "{text}"
        );
        assert!(text.contains("type filter hook output priority mangle - 10; policy accept;"), "{text}");
        assert!(!text.contains("ct direction reply"), "replies are delayed too: {text}");
        assert!(text.ends_with("}\n# marked packets wait 50 ms in the lab's queue 7\n"), "{text}");
        let lossy = script(&Isolation { loss_percent: Some(20), ..isolation }, NODE, true);
        assert!(lossy.contains("    numgen random mod 100 < 20 drop\n    meta mark set 0x72626c74\n"), "{lossy}");
        let rules = delay_rules();
        assert!(
            rules.contains("-A OUTPUT -m mark --mark 0x72626c74 -j NFQUEUE --queue-num 7 --queue-bypass\n"),
            "{rules}"
        );
        assert!(rules.starts_with("*mangle\n") && rules.ends_with("COMMIT\n"), "{rules}");
    }
}

//! Cluster DNS: a responder on the pods' gateway (10.244.0.1:53, inside the
//! lab network namespace) that pods use through their resolv.conf. It answers
//! A queries for `svc.ns.svc.cluster.local` (the ClusterIP, or the ready
//! endpoints of a headless Service), `host.subdomain.ns.svc.cluster.local`
//! (StatefulSet pods) and `a-b-c-d.ns.pod.cluster.local`. Other names get
//! NXDOMAIN at once: the lab has no upstream resolver.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, PacketFlag, QTYPE, RCODE, ResourceRecord, TYPE};
use tokio_util::sync::CancellationToken;

use crate::api::store::Store;
use crate::kubelet::netutil::in_netns;

/// The domain the lab serves.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Seconds answers may be cached: short, so restarted pods are found at their new address.
const TTL: u32 = 5;

/// What a name resolves to.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Addresses.
    Found(Vec<Ipv4Addr>),
    /// The name exists but has no address now (a headless Service without ready pods).
    NoData,
    /// No such name.
    NxDomain,
}

/// Resolves a cluster name from the store.
pub fn resolve(store: &Store, name: &str) -> Answer {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let Some(local) = name.strip_suffix(CLUSTER_DOMAIN).and_then(|n| n.strip_suffix('.')) else {
        return Answer::NxDomain;
    };
    let labels: Vec<&str> = local.split('.').collect();
    match labels.as_slice() {
        [service, ns, "svc"] => {
            let Some(svc) = store.get("services", ns, service) else { return Answer::NxDomain };
            match svc["spec"]["clusterIP"].as_str() {
                Some(ip) if ip != "None" => ip.parse().map(|ip| Answer::Found(vec![ip])).unwrap_or(Answer::NoData),
                _ => {
                    let ips: Vec<Ipv4Addr> = store
                        .get("endpoints", ns, service)
                        .map(|ep| {
                            ep["subsets"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
                                .filter_map(|a| a["ip"].as_str().and_then(|ip| ip.parse().ok()))
                                .collect()
                        })
                        .unwrap_or_default();
                    if ips.is_empty() { Answer::NoData } else { Answer::Found(ips) }
                }
            }
        }
        [host, subdomain, ns, "svc"] => {
            let pod = store.list("pods", Some(ns)).0.into_iter().find(|p| {
                p["spec"]["hostname"] == *host
                    && p["spec"]["subdomain"] == *subdomain
                    && p["metadata"]["deletionTimestamp"].is_null()
            });
            match pod.and_then(|p| p["status"]["podIP"].as_str().and_then(|ip| ip.parse().ok())) {
                Some(ip) => Answer::Found(vec![ip]),
                None => Answer::NxDomain,
            }
        }
        [dashed, _ns, "pod"] => match dashed.replace('-', ".").parse() {
            Ok(ip) => Answer::Found(vec![ip]),
            Err(_) => Answer::NxDomain,
        },
        _ => Answer::NxDomain,
    }
}

fn reply(store: &Store, query: &[u8]) -> Option<Vec<u8>> {
    let packet = Packet::parse(query).ok()?;
    let mut out = Packet::new_reply(packet.id());
    out.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_DESIRED);
    let mut nxdomain = false;
    for question in &packet.questions {
        out.questions.push(question.clone());
        let name = question.qname.to_string();
        match resolve(store, &name) {
            Answer::NxDomain => nxdomain = true,
            Answer::NoData => {}
            Answer::Found(ips) => {
                if question.qtype == QTYPE::TYPE(TYPE::A) || question.qtype == QTYPE::ANY {
                    for ip in ips {
                        out.answers.push(ResourceRecord::new(
                            question.qname.clone(),
                            CLASS::IN,
                            TTL,
                            RData::A(A { address: u32::from(ip) }),
                        ));
                    }
                }
            }
        }
    }
    if nxdomain && out.answers.is_empty() {
        *out.rcode_mut() = RCODE::NameError;
    }
    out.build_bytes_vec().ok()
}

/// Serves DNS on `addr` inside the network namespace of `netns_pid` until shutdown.
pub fn start(
    store: Arc<Store>,
    netns_pid: u32,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let socket = in_netns(netns_pid, move || {
        let s = std::net::UdpSocket::bind(addr)?;
        s.set_nonblocking(true)?;
        Ok(s)
    })?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        loop {
            let (n, from) = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = socket.recv_from(&mut buf) => match received {
                    Ok(r) => r,
                    Err(_) => continue,
                },
            };
            if let Some(answer) = reply(&store, &buf[..n]) {
                let _ = socket.send_to(&answer, from).await;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{objects, resources::by_key};
    use serde_json::json;

    #[test]
    fn names_resolve_like_cluster_dns() {
        let store = Store::new();
        objects::create(&store, by_key("namespaces").unwrap(), "", json!({"metadata": {"name": "redis"}}), false)
            .unwrap();
        objects::create(
            &store,
            by_key("services").unwrap(),
            "redis",
            json!({"metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}], "clusterIP": "10.96.0.20"}}),
            false,
        )
        .unwrap();
        objects::create(
            &store,
            by_key("services").unwrap(),
            "redis",
            json!({"metadata": {"name": "redis"},
            "spec": {"clusterIP": "None", "ports": [{"port": 6379}]}}),
            false,
        )
        .unwrap();
        let mut pod = json!({"metadata": {"name": "redis-0"}, "spec": {"hostname": "redis-0", "subdomain": "redis",
            "containers": [{"name": "r", "image": "redis"}]}});
        pod["status"] = json!({"podIP": "10.244.0.7"});
        let created = objects::create(&store, by_key("pods").unwrap(), "redis", pod, false).unwrap();
        let mut with_ip = (*created).clone();
        with_ip["status"]["podIP"] = json!("10.244.0.7");
        objects::update(&store, by_key("pods").unwrap(), "redis", "redis-0", with_ip, objects::Part::Status).unwrap();
        let ip = |s: &str| Answer::Found(vec![s.parse().unwrap()]);
        assert_eq!(resolve(&store, "web.redis.svc.cluster.local."), ip("10.96.0.20"));
        assert_eq!(resolve(&store, "redis-0.redis.redis.svc.cluster.local"), ip("10.244.0.7"));
        assert_eq!(resolve(&store, "redis.redis.svc.cluster.local"), Answer::NoData, "headless without endpoints");
        assert_eq!(resolve(&store, "nope.redis.svc.cluster.local"), Answer::NxDomain);
        assert_eq!(resolve(&store, "example.com"), Answer::NxDomain);
        assert_eq!(resolve(&store, "10-244-0-9.redis.pod.cluster.local"), ip("10.244.0.9"));
    }
}

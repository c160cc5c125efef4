//! The service proxy (kube-proxy's userspace mode, and the LoadBalancer
//! provider): a listener per ClusterIP port inside the lab network, per
//! NodePort on the host's 127.0.0.1, and per LoadBalancer port on a loopback
//! address of its own (127.x.y.z, so port 80 is port 80). Each connection goes
//! to one Ready endpoint, chosen in turn (the next one when it refuses); a
//! Service with none refuses the connection.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::api::objects::{self, Part};
use crate::api::resources::by_key;
use crate::api::store::Store;
use crate::kubelet::netutil::{connect_in_netns, in_netns};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Where {
    /// Inside the lab network namespace (ClusterIP).
    Cluster,
    /// On the host (NodePort, LoadBalancer).
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Listener {
    place: Where,
    addr: SocketAddr,
    namespace: String,
    service: String,
    /// The Service port (`port`), whose endpoint port the connection goes to.
    port: i64,
}

/// The proxy's state.
pub struct ServiceProxy {
    store: Arc<Store>,
    netns_pid: u32,
    lb_prefix: u8,
    running: Mutex<HashMap<Listener, CancellationToken>>,
    next: AtomicUsize,
    shutdown: CancellationToken,
}

impl ServiceProxy {
    /// A proxy for the lab whose network namespace is held by `netns_pid`.
    pub fn new(store: Arc<Store>, netns_pid: u32, shutdown: CancellationToken) -> Arc<Self> {
        // Each lab draws its own 127.x.0.0/16 for LoadBalancers, so labs side
        // by side are unlikely to collide.
        let lb_prefix = rand::random_range(100..=250u8);
        Arc::new(ServiceProxy {
            store,
            netns_pid,
            lb_prefix,
            running: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(0),
            shutdown,
        })
    }

    /// Runs until shutdown, following Service and Endpoints changes.
    pub async fn run(self: Arc<Self>) {
        let Some((_, mut changes)) = self.store.subscribe(self.store.current_rv()) else { return };
        self.reconcile();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                change = changes.recv() => match change {
                    Ok(c) if c.resource != "services" => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.reconcile(),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        for (_, token) in self.running.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            token.cancel();
        }
    }

    fn lb_address(&self, service: &Value) -> Ipv4Addr {
        // Stable and unique per Service: the ClusterIP's host part (its /16).
        let [_, _, c, d] = service["spec"]["clusterIP"]
            .as_str()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            .map(|ip| ip.octets())
            .unwrap_or([0, 0, 0, 1]);
        Ipv4Addr::new(127, self.lb_prefix, c, d)
    }

    fn desired(&self) -> Vec<Listener> {
        let mut out = Vec::new();
        for svc in self.store.list("services", None).0 {
            let (ns, name) = objects::ns_name(&svc);
            let cluster_ip = svc["spec"]["clusterIP"].as_str().and_then(|ip| ip.parse::<Ipv4Addr>().ok());
            let kind = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
            for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
                let Some(port) = p["port"].as_i64() else { continue };
                let base = |place: Where, addr: SocketAddr| Listener {
                    place,
                    addr,
                    namespace: ns.clone(),
                    service: name.clone(),
                    port,
                };
                if let Some(ip) = cluster_ip {
                    out.push(base(Where::Cluster, SocketAddr::from((ip, port as u16))));
                }
                if matches!(kind, "NodePort" | "LoadBalancer")
                    && let Some(node_port) = p["nodePort"].as_i64()
                {
                    out.push(base(Where::Host, SocketAddr::from(([127, 0, 0, 1], node_port as u16))));
                }
                if kind == "LoadBalancer" {
                    out.push(base(Where::Host, SocketAddr::from((self.lb_address(&svc), port as u16))));
                }
            }
            if kind == "LoadBalancer" {
                self.publish_ingress(&svc);
            }
        }
        out
    }

    fn publish_ingress(&self, svc: &Value) {
        let ip = self.lb_address(svc).to_string();
        let ports: Vec<Value> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| json!({"port": p["port"], "protocol": p["protocol"]}))
            .collect();
        let want = json!({"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP", "ports": ports}]}});
        if svc["status"] == want {
            return;
        }
        let (ns, name) = objects::ns_name(svc);
        let mut next = svc.clone();
        next["status"] = want;
        if let Some(rt) = by_key("services") {
            let _ = objects::update(&self.store, rt, &ns, &name, next, Part::Status);
        }
    }

    fn reconcile(self: &Arc<Self>) {
        let desired = self.desired();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|listener, token| {
            let keep = desired.contains(listener);
            if !keep {
                token.cancel();
            }
            keep
        });
        for listener in desired {
            if running.contains_key(&listener) {
                continue;
            }
            let token = self.shutdown.child_token();
            match self.bind(&listener) {
                Ok(socket) => {
                    let proxy = self.clone();
                    let (l, t) = (listener.clone(), token.clone());
                    tokio::spawn(async move { proxy.serve(l, socket, t).await });
                    running.insert(listener, token);
                }
                Err(e) => {
                    if let Some(svc) = self.store.get("services", &listener.namespace, &listener.service) {
                        objects::record_event(
                            &self.store,
                            &svc,
                            "Warning",
                            "FailedToListen",
                            &format!("cannot listen on {}: {e}", listener.addr),
                            "runbook-lab-proxy",
                        );
                    }
                    // Not inserted: the next change retries.
                }
            }
        }
    }

    fn bind(&self, listener: &Listener) -> std::io::Result<TcpListener> {
        let addr = listener.addr;
        let std_listener = match listener.place {
            Where::Cluster => in_netns(self.netns_pid, move || std::net::TcpListener::bind(addr))?,
            Where::Host => std::net::TcpListener::bind(addr)?,
        };
        std_listener.set_nonblocking(true)?;
        TcpListener::from_std(std_listener)
    }

    /// The Service port's Ready endpoints, starting with the next in turn.
    fn endpoints(&self, listener: &Listener) -> Vec<SocketAddr> {
        let Some(svc) = self.store.get("services", &listener.namespace, &listener.service) else { return Vec::new() };
        let Some(port_name) = svc["spec"]["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["port"] == listener.port))
            .map(|p| p["name"].clone())
        else {
            return Vec::new();
        };
        let Some(ep) = self.store.get("endpoints", &listener.namespace, &listener.service) else { return Vec::new() };
        let mut candidates = Vec::new();
        for subset in ep["subsets"].as_array().into_iter().flatten() {
            let ports = subset["ports"].as_array().cloned().unwrap_or_default();
            let target =
                ports.iter().find(|p| p["name"] == port_name || ports.len() == 1).and_then(|p| p["port"].as_u64());
            let Some(target) = target else { continue };
            for a in subset["addresses"].as_array().into_iter().flatten() {
                if let Some(ip) = a["ip"].as_str().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
                    candidates.push(SocketAddr::from((ip, target as u16)));
                }
            }
        }
        if !candidates.is_empty() {
            let first = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
            candidates.rotate_left(first);
        }
        candidates
    }

    /// Whether NetworkPolicy lets `from` connect to `to` (net::policy).
    fn allowed(&self, from: SocketAddr, to: SocketAddr) -> bool {
        let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else { return true };
        let policies = self.store.list("networkpolicies", None).0;
        if policies.is_empty() {
            return true; // the usual case, on every connection: nothing to judge
        }
        let world = super::policy::World {
            policies: &policies,
            pods: &self.store.list("pods", None).0,
            namespaces: &self.store.list("namespaces", None).0,
        };
        super::policy::connection_allowed(&world, *from.ip(), *to.ip(), to.port())
    }

    async fn serve(self: Arc<Self>, listener: Listener, socket: TcpListener, stop: CancellationToken) {
        loop {
            let (mut client, from) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = socket.accept() => match accepted {
                    Ok(c) => c,
                    Err(_) => continue,
                },
            };
            // A proxy must not add Nagle delays that kube-proxy's DNAT would not.
            let _ = client.set_nodelay(true);
            let mut targets = self.endpoints(&listener);
            if targets.is_empty() {
                drop(client); // no Ready endpoint: refuse, as kube-proxy rejects
                continue;
            }
            // kube-proxy's DNAT sends the client's packets to the endpoint
            // it picks; where a policy drops them, nothing answers.
            let dropped = !self.allowed(from, targets[0]);
            if dropped {
                targets.clear();
            }
            let (pid, stop) = (self.netns_pid, stop.clone());
            tokio::spawn(async move {
                // As kube-proxy's userspace mode does: an endpoint that refuses
                // (a pod just going) is skipped for the next one.
                let mut upstream = None;
                for target in targets {
                    if let Ok(conn) = connect_in_netns(pid, target, Duration::from_secs(3)).await {
                        upstream = Some(conn);
                        break;
                    }
                }
                let Some(mut upstream) = upstream else {
                    if dropped {
                        // The client waits, as for packets that go nowhere,
                        // until it gives up (or TCP would have: 130 s).
                        let mut byte = [0u8; 1];
                        tokio::select! {
                            _ = tokio::io::AsyncReadExt::read(&mut client, &mut byte) => {}
                            _ = tokio::time::sleep(Duration::from_secs(130)) => {}
                            _ = stop.cancelled() => {}
                        }
                    }
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    }
}

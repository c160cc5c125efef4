//! Redis Cluster from outside the pod network: a client that follows MOVED
//! and ASK redirects by finding the pod that has the announced address and
//! opening a port-forward to it, and `CLUSTER NODES` parsed into a topology.

use std::collections::HashMap;

use redis::Value as Reply;
use serde_json::Value;

use super::StepError;
use super::context::Ctx;
use super::redis_client::{connect, password, query, show};
use crate::k8s::conditions;
use crate::scenario::{ClusterShape, PodRef, SecretKey};

/// One node as `CLUSTER NODES` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Node id.
    pub id: String,
    /// `ip:port`.
    pub addr: String,
    /// Flags (`myself`, `master`, `slave`, `fail`, …).
    pub flags: Vec<String>,
    /// The master's id, for replicas.
    pub master: Option<String>,
    /// Slot ranges served.
    pub slots: Vec<String>,
}

impl Node {
    /// Whether the node is a master (not failed).
    pub fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master") && !self.failed()
    }
    /// Whether the node is a replica (not failed).
    pub fn is_replica(&self) -> bool {
        self.flags.iter().any(|f| f == "slave") && !self.failed()
    }
    /// Whether the cluster considers it failing.
    pub fn failed(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "fail?" || f == "noaddr")
    }
    /// The IP part of its address.
    pub fn ip(&self) -> &str {
        self.addr.split(':').next().unwrap_or_default()
    }
}

/// Parses a `CLUSTER NODES` reply.
pub fn parse_nodes(text: &str) -> Vec<Node> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let addr = f[1].split('@').next().unwrap_or_default().split(',').next().unwrap_or_default().to_string();
            Some(Node {
                id: f[0].to_string(),
                addr,
                flags: f[2].split(',').map(String::from).collect(),
                master: (f[3] != "-").then(|| f[3].to_string()),
                slots: f[8..].iter().map(|s| s.to_string()).collect(),
            })
        })
        .collect()
}

/// Checks a topology against a shape; Err says what differs.
pub fn check_shape(nodes: &[Node], shape: &ClusterShape) -> Result<String, String> {
    let masters: Vec<&Node> = nodes.iter().filter(|n| n.is_master() && !n.slots.is_empty()).collect();
    let mut description = Vec::new();
    let mut problems = Vec::new();
    for m in &masters {
        let replicas = nodes.iter().filter(|n| n.is_replica() && n.master.as_deref() == Some(m.id.as_str())).count();
        description.push(format!("master {} ({}) with {replicas} replica(s)", m.addr, m.slots.join(" ")));
        if replicas != shape.replicas_per_master as usize {
            problems.push(format!("master {} has {replicas} replicas", m.addr));
        }
    }
    let summary = format!("{} masters serving slots: {}", masters.len(), description.join("; "));
    if masters.len() != shape.masters as usize {
        problems.insert(0, format!("{} masters serving slots", masters.len()));
    }
    if problems.is_empty() { Ok(summary) } else { Err(problems.join("; ")) }
}

/// A client for a Redis Cluster reached through port-forwards.
pub struct ClusterClient<'a> {
    ctx: &'a Ctx,
    pods: PodRef,
    by_ip: HashMap<String, Value>,
    conns: HashMap<String, redis::aio::MultiplexedConnection>,
    password: Option<String>,
}

impl<'a> ClusterClient<'a> {
    /// A client for the cluster whose pods `pods` names.
    pub async fn new(ctx: &'a Ctx, pods: &PodRef, auth: Option<&SecretKey>) -> Result<ClusterClient<'a>, StepError> {
        let ns = pods.namespace.as_deref().map(|n| ctx.render(n)).unwrap_or_else(|| ctx.namespace.clone());
        let password = match auth {
            Some(a) => Some(password(ctx, a, None, &ns).await?),
            None => None,
        };
        let mut client =
            ClusterClient { ctx, pods: pods.clone(), by_ip: HashMap::new(), conns: HashMap::new(), password };
        client.refresh().await?;
        Ok(client)
    }

    /// Re-reads which pod has which IP (pods come back with new ones).
    pub async fn refresh(&mut self) -> Result<(), StepError> {
        self.by_ip.clear();
        for pod in self.ctx.pods(&self.pods).await? {
            if conditions::pod_running(&pod)
                && let Some(ip) = pod["status"]["podIP"].as_str()
            {
                self.by_ip.insert(ip.to_string(), pod.clone());
            }
        }
        self.conns.retain(|ip, _| self.by_ip.contains_key(ip));
        Ok(())
    }

    /// The Running pods' IPs, sorted.
    pub fn ips(&self) -> Vec<String> {
        let mut ips: Vec<String> = self.by_ip.keys().cloned().collect();
        ips.sort();
        ips
    }

    /// The IPs of the nodes this client has talked to, sorted.
    pub fn connected(&self) -> Vec<String> {
        let mut ips: Vec<String> = self.conns.keys().cloned().collect();
        ips.sort();
        ips
    }

    /// The pod behind an IP.
    pub fn pod(&self, ip: &str) -> Option<&Value> {
        self.by_ip.get(ip)
    }

    async fn conn(&mut self, ip: &str) -> Result<&mut redis::aio::MultiplexedConnection, StepError> {
        if !self.conns.contains_key(ip) {
            let pod = self.by_ip.get(ip).cloned().ok_or_else(|| {
                StepError::failed(
                    format!("a Running pod with IP {ip} (a node the cluster announced)"),
                    format!("pods have {:?}", self.ips()),
                    self.ctx.describe_pod(&self.pods),
                )
            })?;
            let conn = connect(self.ctx, &pod, 6379, self.password.clone()).await?;
            self.conns.insert(ip.to_string(), conn);
        }
        Ok(self.conns.get_mut(ip).expect("inserted above"))
    }

    /// Sends a command to one node.
    pub async fn on(&mut self, ip: &str, command: &[&str]) -> Result<Reply, StepError> {
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let conn = self.conn(ip).await?;
        query(conn, &command).await.map_err(|e| StepError::infra(format!("node {ip}: {e}")))
    }

    /// Sends a command to the cluster, following MOVED and ASK redirects.
    pub async fn query(&mut self, command: &[String]) -> Result<Reply, StepError> {
        let mut ip = self
            .ips()
            .first()
            .cloned()
            .ok_or_else(|| StepError::failed("Running cluster pods", "none", self.ctx.describe_pod(&self.pods)))?;
        let mut asking = false;
        for _ in 0..6 {
            if asking {
                self.on(&ip, &["ASKING"]).await?;
            }
            let conn = self.conn(&ip).await?;
            let reply = query(conn, command).await.map_err(|e| StepError::infra(format!("node {ip}: {e}")))?;
            let text = match &reply {
                Reply::SimpleString(s) => s.clone(),
                _ => return Ok(reply),
            };
            let redirect = text
                .strip_prefix("(error) MOVED ")
                .map(|r| (r, false))
                .or_else(|| text.strip_prefix("(error) ASK ").map(|r| (r, true)));
            match redirect {
                Some((rest, ask)) => {
                    let target = rest.split_whitespace().nth(1).unwrap_or_default();
                    ip = target.split(':').next().unwrap_or_default().to_string();
                    asking = ask;
                }
                None => return Ok(reply),
            }
        }
        Err(StepError::infra(format!("too many redirects for {command:?}")))
    }

    /// Sends `command` to each of the nodes `ips` at once (a `WAIT` on each
    /// master costs the longest wait, not their sum); the replies in order.
    pub async fn on_each(&mut self, ips: &[String], command: &[&str]) -> Result<Vec<Reply>, StepError> {
        let mut conns = Vec::new();
        for ip in ips {
            conns.push(self.conn(ip).await?.clone());
        }
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let asked = conns.iter_mut().zip(ips).map(|(conn, ip)| {
            let command = &command;
            async move { query(conn, command).await.map_err(|e| StepError::infra(format!("node {ip}: {e}"))) }
        });
        futures::future::join_all(asked).await.into_iter().collect()
    }

    /// Sends `commands` to one node in one pipeline (one round trip); the
    /// replies in order, a server error as a [`Reply::ServerError`] (a
    /// redirect among them for the caller to follow).
    pub async fn pipelined(&mut self, ip: &str, commands: &[Vec<String>]) -> Result<Vec<Reply>, StepError> {
        let conn = self.conn(ip).await?;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for command in commands {
            let mut cmd = redis::cmd(&command[0]);
            for arg in &command[1..] {
                cmd.arg(arg);
            }
            pipe.add_command(cmd);
        }
        pipe.query_async::<Vec<Reply>>(conn).await.map_err(|e| StepError::infra(format!("node {ip}: {e}")))
    }

    /// Which master serves which slots, as the first node's `CLUSTER SLOTS`
    /// answers: (first slot, last slot, IP); a master announced without an
    /// IP is the node asked.
    pub async fn slot_owners(&mut self) -> Result<Vec<(u16, u16, String)>, StepError> {
        let asked = self.ips().first().cloned().unwrap_or_default();
        let reply = self.on(&asked, &["CLUSTER", "SLOTS"]).await?;
        let Reply::Array(ranges) = reply else {
            return Err(StepError::infra(format!("CLUSTER SLOTS answered {}", show(&reply, 0))));
        };
        let mut owners = Vec::new();
        for range in ranges {
            let Reply::Array(fields) = range else { continue };
            let (Some(Reply::Int(first)), Some(Reply::Int(last)), Some(Reply::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let ip = match master.first() {
                Some(Reply::BulkString(b)) if !b.is_empty() => String::from_utf8_lossy(b).into_owned(),
                _ => asked.clone(),
            };
            owners.push((*first as u16, *last as u16, ip));
        }
        Ok(owners)
    }

    /// The topology as one node sees it.
    pub async fn nodes(&mut self, ip: &str) -> Result<Vec<Node>, StepError> {
        match self.on(ip, &["CLUSTER", "NODES"]).await? {
            Reply::BulkString(b) => Ok(parse_nodes(&String::from_utf8_lossy(&b))),
            Reply::VerbatimString { text, .. } => Ok(parse_nodes(&text)),
            other => Err(StepError::infra(format!("CLUSTER NODES answered {}", show(&other, 0)))),
        }
    }
}

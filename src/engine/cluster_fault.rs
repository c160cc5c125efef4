//! The Redis Cluster fault drill, measured as Jepsen measures: a client
//! writes unique keys, one at a time, to the master of one slot (following
//! the cluster's view, as a cluster client does), while that master is cut
//! off from every other node of the cluster (`partition`, a [`super::partition`]
//! cut) or loses its whole Kubernetes node (`nodeDown`, a lab node taken
//! down). The other masters fail it over after `cluster-node-timeout`; once
//! healed it rejoins as a replica of its successor. The drill reads every
//! key back and reports what [`super::drill_outcome`] reports. A master cut
//! off from the majority stops taking writes after `cluster-node-timeout`,
//! which bounds the loss: the partition drill fails if a write acknowledged
//! later than that (and a few seconds' slack) was lost.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Value as Reply;
use serde_json::Value;

use super::cluster::{slot_in, tag_served_by};
use super::cluster_client::{ClusterClient, Node, parse_nodes};
use super::context::Ctx;
use super::drill_outcome::{Outcome, Seen, WaitReplicas};
use super::redis_client::{field, password, query_pod, to_value};
use super::{Done, StepError};
use crate::poll::{Poller, Probe};
use crate::report::event::epoch_ms;
use crate::scenario::{ClusterFault, ClusterFaultKind, PartitionDirection};

/// How long the client writes before the fault.
const BEFORE_FAULT: Duration = Duration::from_secs(1);
/// What the loss bound allows past `cluster-node-timeout` (ms): the master
/// counts the majority unreachable from its last answer, not from the cut.
const BOUND_SLACK_MS: u64 = 3000;
/// How often the pods are asked for their role.
const ROLE_EVERY: Duration = Duration::from_millis(200);
/// A pod that takes longer to answer is not counted (a stopped node).
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// The pods and roles the drill works with.
struct Scene<'a> {
    ctx: &'a Ctx,
    pass: Option<String>,
    pods: Vec<Value>,
    master: Node,
    replica: Node,
    victim: Value,
    tag: String,
    slot: i64,
    /// Replicas each write waits for (`WAIT N 500`), if any.
    wait_replicas: Option<WaitReplicas>,
}

/// Runs the drill.
pub async fn drill(ctx: &Ctx, spec: &ClusterFault, lasts: Duration, timeout: Duration) -> Result<Done, StepError> {
    let mut client = ClusterClient::new(ctx, &spec.pods, spec.auth.as_ref()).await?;
    let first = client.ips().first().cloned().unwrap_or_default();
    let view = client.nodes(&first).await?;
    let node_of =
        |ip: &str| client.pod(ip).and_then(|p| p["spec"]["nodeName"].as_str()).unwrap_or_default().to_string();
    let (master, replica) = choose(&view, spec.fault, &node_of)?;
    let timeout_reply = client.on(&first, &["CONFIG", "GET", "cluster-node-timeout"]).await?;
    let node_timeout = config_value(&timeout_reply).unwrap_or(15000);
    let victim = client.pod(master.ip()).cloned().ok_or_else(|| StepError::infra("no pod has the master's IP"))?;
    let Some(tag) = tag_served_by(&mut client, &first, &master).await else {
        return Err(StepError::infra("no key found for the master's slots"));
    };
    let slot = to_value(&client.on(&first, &["CLUSTER", "KEYSLOT", &tag]).await?).as_i64().unwrap_or(-1);
    let ns = victim["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace).to_string();
    let pass = match &spec.auth {
        Some(a) => Some(password(ctx, a, Some(&victim), &ns).await?),
        None => None,
    };
    let pods: Vec<Value> = client.ips().iter().filter_map(|ip| client.pod(ip).cloned()).collect();
    let wait_replicas = spec
        .wait_replicas
        .as_ref()
        .map(|c| c.value(&|t| ctx.render(t)).map_err(|e| StepError::Invalid(format!("waitReplicas: {e}"))))
        .transpose()?
        .map(WaitReplicas);
    let scene = Scene { ctx, pass, pods, master, replica, victim, tag, slot, wait_replicas };
    scene.run(spec.fault, lasts, timeout, node_timeout).await
}

/// The master to fault (the first by slot whose replica is elsewhere) and
/// its replica; for `nodeDown`, a replica on another Kubernetes node.
fn choose(view: &[Node], fault: ClusterFaultKind, node_of: &dyn Fn(&str) -> String) -> Result<(Node, Node), StepError> {
    let mut masters: Vec<&Node> = view.iter().filter(|n| n.is_master() && !n.slots.is_empty()).collect();
    masters.sort_by_key(|n| n.slots.first().and_then(|s| s.split('-').next()?.parse::<u32>().ok()));
    let replica_of = |m: &Node| {
        view.iter()
            .filter(|n| n.is_replica() && n.master.as_deref() == Some(m.id.as_str()))
            .find(|r| fault == ClusterFaultKind::Partition || node_of(r.ip()) != node_of(m.ip()))
            .cloned()
    };
    if let Some((m, r)) = masters.iter().find_map(|m| replica_of(m).map(|r| ((*m).clone(), r))) {
        return Ok((m, r));
    }
    let nodes: std::collections::BTreeSet<String> = view.iter().map(|n| node_of(n.ip())).collect();
    if fault == ClusterFaultKind::NodeDown && nodes.len() < 2 {
        return Err(StepError::NotHere(format!(
            "every node of the Redis Cluster runs on the Kubernetes node {}: losing it loses the whole cluster \
             (run on a cluster of several nodes: --lab --lab-nodes 3)",
            nodes.into_iter().next().unwrap_or_default()
        )));
    }
    Err(StepError::failed(
        match fault {
            ClusterFaultKind::Partition => "a master with a replica".to_string(),
            ClusterFaultKind::NodeDown => "a master whose replica runs on another Kubernetes node".to_string(),
        },
        "none (losing the node would lose slots: spread masters and replicas with pod anti-affinity)",
        "CLUSTER NODES",
    ))
}

/// A number from a `CONFIG GET` reply.
fn config_value(reply: &Reply) -> Option<u64> {
    match to_value(reply) {
        Value::Array(items) => items.get(1)?.as_str()?.parse().ok(),
        Value::Object(map) => map.values().next()?.as_str()?.parse().ok(),
        _ => None,
    }
}

impl Scene<'_> {
    fn name(&self) -> &str {
        self.victim["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn pod_at(&self, ip: &str) -> Option<&Value> {
        self.pods.iter().find(|p| p["status"]["podIP"] == ip)
    }

    /// One command to one pod, given up after [`ASK_TIMEOUT`].
    async fn ask(&self, pod: &Value, command: &[&str]) -> Option<Reply> {
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let asked = query_pod(self.ctx, pod, 6379, self.pass.clone(), &command);
        tokio::time::timeout(ASK_TIMEOUT, asked).await.ok()?.ok()
    }

    /// The cluster as the nodes other than the victim see it (the first that answers).
    async fn survivors_view(&self) -> Option<Vec<Node>> {
        for pod in self.pods.iter().filter(|p| p["metadata"]["uid"] != self.victim["metadata"]["uid"]) {
            if let Some(Reply::BulkString(b)) = self.ask(pod, &["CLUSTER", "NODES"]).await {
                return Some(parse_nodes(&String::from_utf8_lossy(&b)));
            }
        }
        None
    }

    /// The IP of the master serving the drill's slot, as the survivors see it.
    async fn slot_master(&self) -> Option<String> {
        let view = self.survivors_view().await?;
        let owner = view.iter().find(|n| n.is_master() && n.slots.iter().any(|r| slot_in(r, self.slot)))?;
        Some(owner.ip().to_string())
    }

    /// How many of the master and its replica say they are master.
    async fn masters(&self) -> usize {
        let mut count = 0;
        for ip in [self.master.ip(), self.replica.ip()] {
            let Some(pod) = self.pod_at(ip) else { continue };
            if let Some(Reply::Array(role)) = self.ask(pod, &["ROLE"]).await
                && to_value(&role[0]).as_str() == Some("master")
            {
                count += 1;
            }
        }
        count
    }

    async fn run(
        &self,
        fault: ClusterFaultKind,
        lasts: Duration,
        timeout: Duration,
        node_timeout: u64,
    ) -> Result<Done, StepError> {
        let ctx = self.ctx;
        let stop = AtomicBool::new(false);
        let target: Mutex<Option<String>> = Mutex::new(Some(self.master.ip().to_string()));
        let promoted: Mutex<Option<u64>> = Mutex::new(None);
        let driving = async {
            let driven = self.drive(fault, lasts, timeout, &promoted).await;
            stop.store(true, Ordering::Relaxed);
            driven
        };
        let writing = super::drill_writes::write_until(&stop, async |n: u64| {
            // The last master that acknowledged, else the one the survivors name.
            let known = target.lock().unwrap_or_else(|e| e.into_inner()).take();
            let Some(ip) = (match known {
                Some(ip) => Some(ip),
                None => self.slot_master().await,
            }) else {
                return false;
            };
            let Some(pod) = self.pod_at(&ip) else { return false };
            let key = format!("{{{}}}:{n}", self.tag);
            let set = ["SET".to_string(), key, n.to_string()];
            let mut ok = matches!(query_pod(ctx, pod, 6379, self.pass.clone(), &set).await, Ok(Reply::Okay));
            if let (true, Some(wait)) = (ok, self.wait_replicas) {
                ok = wait.confirmed(&query_pod(ctx, pod, 6379, self.pass.clone(), &wait.command()).await);
            }
            if ok {
                *target.lock().unwrap_or_else(|e| e.into_inner()) = Some(ip);
            }
            ok
        });
        let observing = async {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let masters = self.masters().await;
                super::drill_outcome::mark_split_brain(ctx, samples.last().map_or(0, |s: &(u64, usize)| s.1), masters);
                samples.push((epoch_ms(), masters));
                tokio::time::sleep(ROLE_EVERY).await;
            }
            samples
        };
        let (driven, outcomes, samples) = tokio::join!(driving, writing, observing);
        let Driven { fault_at, healed_after, converged, how } = driven?;
        ctx.keep_traffic(crate::report::event::Traffic::count("writes", &outcomes, 500));
        let promoted_at = promoted.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut log = vec![
            format!(
                "master {} ({}, slots {}) with replica {}",
                self.master.addr,
                self.name(),
                self.master.slots.join(" "),
                self.replica.addr
            ),
            format!("{how} for {:.0}s; cluster-node-timeout {node_timeout} ms", lasts.as_secs_f64()),
        ];
        if let Some(wait) = self.wait_replicas {
            log.push(wait.describe());
        }
        match promoted_at {
            Some(at) => {
                log.push(format!("replica {} promoted after {} ms", self.replica.addr, at.saturating_sub(fault_at)))
            }
            None => log.push("no replica promoted while the fault held".into()),
        }
        log.push(format!("healed after {} ms", healed_after.as_millis()));
        let Some(converged_after) = converged else {
            return Err(StepError::Failed {
                expected: format!(
                    "{} back as a replica and cluster_state:ok everywhere within {}s of healing",
                    self.name(),
                    timeout.as_secs()
                ),
                actual: "not converged".into(),
                looked_at: "CLUSTER NODES, CLUSTER INFO".into(),
                output: log.join("\n"),
                diagnostics: None,
            });
        };
        let writes = super::drill_outcome::ledger(&outcomes);
        let present = self.read_back(writes.len() as u64).await?;
        let final_master = self.slot_master().await.unwrap_or_default();
        let seen = Seen {
            writes: &writes,
            present: &present,
            masters: &samples,
            fault_at,
            promoted_at,
            converged_after,
            final_master: &final_master,
        };
        let mut done = Done::default();
        let Outcome { tally, window_ms } = super::drill_outcome::report(&seen, &mut log, &mut done);
        done.measure("node timeout", node_timeout as f64, "ms");
        let bound = (fault == ClusterFaultKind::Partition).then_some(node_timeout + BOUND_SLACK_MS);
        log.push(match fault {
            ClusterFaultKind::Partition => format!(
                "bound: a master cut off from the majority refuses writes once cluster-node-timeout has passed, so only writes acknowledged in the first {} ms of a cut (and the moment it takes to count the majority gone: the drill allows {} s more) can be lost; here {} were, the last {window_ms} ms in; WAIT 1 after each write narrows it further",
                node_timeout,
                BOUND_SLACK_MS / 1000,
                tally.lost.len()
            ),
            ClusterFaultKind::NodeDown => format!(
                "bound: writes the master acknowledged but had not replicated when its node went (asynchronous replication: here {}); WAIT 1 after each write (or min-replicas-to-write 1) closes it",
                tally.lost.len()
            ),
        });
        done.output = ctx.redact(&log.join("\n"));
        ctx.keep_measurements(&done.measurements);
        if promoted_at.is_none() {
            return Err(StepError::Failed {
                expected: "the replica promoted while the master was cut off".into(),
                actual: format!("no promotion: make `for` longer than cluster-node-timeout ({node_timeout} ms)"),
                looked_at: "CLUSTER NODES".into(),
                output: done.output,
                diagnostics: None,
            });
        }
        if let Some(wait) = self.wait_replicas {
            wait.check(tally.lost.len(), "GET on the slot's master after healing", &done.output)?;
        }
        if let Some(b) = bound
            && window_ms > b
        {
            return Err(StepError::Failed {
                expected: format!("acknowledged writes lost only in the first {b} ms of the cut"),
                actual: format!("a write acknowledged {window_ms} ms in was lost"),
                looked_at: "GET on the slot's master after healing".into(),
                output: done.output,
                diagnostics: None,
            });
        }
        Ok(done)
    }

    /// Makes the fault, holds it (noting the promotion), heals it and waits
    /// until the old master is a replica of its successor with
    /// cluster_state:ok everywhere.
    async fn drive(
        &self,
        fault: ClusterFaultKind,
        lasts: Duration,
        timeout: Duration,
        promoted: &Mutex<Option<u64>>,
    ) -> Result<Driven, StepError> {
        let ctx = self.ctx;
        tokio::time::sleep(BEFORE_FAULT).await;
        let fault_at = epoch_ms();
        let (cut, how) = match fault {
            ClusterFaultKind::Partition => {
                let others: Vec<Value> = self
                    .pods
                    .iter()
                    .filter(|p| p["metadata"]["uid"] != self.victim["metadata"]["uid"])
                    .cloned()
                    .collect();
                let cut =
                    super::partition::make(ctx, std::slice::from_ref(&self.victim), &others, PartitionDirection::Both)
                        .await?;
                (cut, format!("{} cut off from the other {} nodes", self.name(), others.len()))
            }
            ClusterFaultKind::NodeDown => {
                let node = self.victim["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
                let node_object = super::node_down::get_node(ctx, &node).await?;
                super::node_down::lab_node(&node_object)?;
                let cut = super::node_down::take_down(ctx, &node).await?;
                (cut, format!("Kubernetes node {node} (running {}) down", self.name()))
            }
        };
        ctx.mark(how.clone());
        let started = Instant::now();
        let mut failed_seen = false;
        while started.elapsed() < lasts {
            let left = lasts - started.elapsed();
            ctx.progress(&format!("{how}; healed in {}s", left.as_secs_f64().ceil()));
            if let Some(view) = self.survivors_view().await {
                failed_seen |= view.iter().any(|n| n.id == self.master.id && n.failed());
                let promoted_now = view.iter().any(|n| n.id == self.replica.id && n.is_master() && !n.slots.is_empty());
                let mut first = promoted.lock().unwrap_or_else(|e| e.into_inner());
                if promoted_now && first.is_none() {
                    *first = Some(epoch_ms());
                    ctx.mark(format!("replica {} promoted", self.replica.addr));
                }
            }
            tokio::time::sleep(left.min(Duration::from_millis(200))).await;
        }
        // Heals a partition or brings the node back, whichever the cut holds.
        super::partition::heal(ctx, &cut).await?;
        let healed_after = started.elapsed();
        ctx.mark("fault healed");
        if !failed_seen && fault == ClusterFaultKind::Partition {
            return Err(StepError::NotHere(format!(
                "the partition had no effect: for {:.0}s the other nodes never flagged {} as failing; the cluster's network plugin does not seem to enforce NetworkPolicy",
                lasts.as_secs_f64(),
                self.master.addr
            )));
        }
        let healed = Instant::now();
        let converged = Poller::new(timeout)
            .every(Duration::from_millis(250))
            .until(async |_| {
                let Some(view) = self.survivors_view().await else {
                    return Ok::<_, StepError>(Probe::NotYet("no node answers".into()));
                };
                let rejoined = view.iter().any(|n| n.id == self.master.id && n.is_replica() && !n.failed());
                if !rejoined {
                    return Ok(Probe::NotYet(format!("{} not a replica yet", self.master.addr)));
                }
                for pod in &self.pods {
                    let info = self.ask(pod, &["CLUSTER", "INFO"]).await;
                    let state = info.map(|i| field(&to_value(&i), "cluster_state"));
                    if state != Some(Some(Value::String("ok".into()))) {
                        return Ok(Probe::NotYet(format!("{}: cluster_state not ok", pod["metadata"]["name"])));
                    }
                }
                Ok(Probe::Ready(healed.elapsed()))
            })
            .await?
            .ok();
        if converged.is_some() {
            ctx.mark("one master again");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Driven { fault_at, healed_after, converged, how })
    }

    /// Whether each key `0..count` holds its write, read from the slot's master.
    async fn read_back(&self, count: u64) -> Result<Vec<bool>, StepError> {
        let ip = self.slot_master().await.ok_or_else(|| StepError::infra("no node names the slot's master"))?;
        let pod = self.pod_at(&ip).ok_or_else(|| StepError::infra(format!("no pod has IP {ip}")))?;
        super::drill_outcome::read_numbered(&format!("{{{}}}:", self.tag), count, async |mget| {
            query_pod(self.ctx, pod, 6379, self.pass.clone(), &mget).await
        })
        .await
    }
}

/// What the driving half of the drill saw.
struct Driven {
    /// When the fault began (ms since the epoch).
    fault_at: u64,
    /// How long it held.
    healed_after: Duration,
    /// How long after healing the cluster converged.
    converged: Option<Duration>,
    /// The fault, as the output says it.
    how: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::cluster::tests::NODES;

    fn node_of(map: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> String {
        move |ip: &str| map.iter().find(|(i, _)| *i == ip).map(|(_, n)| n.to_string()).unwrap_or_default()
    }

    #[test]
    fn the_master_faulted_is_the_first_whose_replica_is_elsewhere() {
        let view = parse_nodes(NODES);
        let spread = node_of(&[
            ("10.244.0.2", "n1"),
            ("10.244.0.3", "n2"),
            ("10.244.0.4", "n3"),
            ("10.244.0.5", "n1"),
            ("10.244.0.6", "n1"),
            ("10.244.0.7", "n3"),
        ]);
        // a1's replica e5 shares n1; b2's replica f6 is on n3.
        let (m, r) = choose(&view, ClusterFaultKind::NodeDown, &spread).unwrap();
        assert_eq!((m.id.as_str(), r.id.as_str()), ("b2", "f6"));
        let (m, _) = choose(&view, ClusterFaultKind::Partition, &spread).unwrap();
        assert_eq!(m.id, "a1");
        let one = node_of(&[]);
        let Err(StepError::NotHere(why)) = choose(&view, ClusterFaultKind::NodeDown, &one) else { panic!("one node") };
        assert!(why.contains("--lab-nodes 3"), "{why}");
    }

    #[test]
    fn config_get_replies_are_read_in_both_protocols() {
        let resp2 = Reply::Array(vec![
            Reply::BulkString(b"cluster-node-timeout".to_vec()),
            Reply::BulkString(b"5000".to_vec()),
        ]);
        assert_eq!(config_value(&resp2), Some(5000));
    }
}

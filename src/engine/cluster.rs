//! Redis Cluster checks and drills: the shape of `CLUSTER NODES` against the
//! expected one, and the failover drill with its measurements (the client is
//! [`super::cluster_client`], the keys [`super::cluster_keys`]).

use std::time::{Duration, Instant};

use kube::api::DeleteParams;
use redis::Value as Reply;
use serde_json::Value;

use super::cluster_client::{ClusterClient, Node, check_shape, parse_nodes};
use super::context::Ctx;
use super::redis_client::show;
use super::{Done, StepError};
use crate::poll::{Poller, Probe};
use crate::scenario::{ClusterFailover, ClusterShape};

/// Checks a `CLUSTER NODES` reply against an expected shape.
pub fn shape_of_reply(reply: &Reply, shape: &ClusterShape) -> Result<String, (String, String)> {
    let text = match reply {
        Reply::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Reply::VerbatimString { text, .. } => text.clone(),
        other => {
            return Err((
                format!("{} masters, {} replica each", shape.masters, shape.replicas_per_master),
                show(other, 0),
            ));
        }
    };
    check_shape(&parse_nodes(&text), shape).map_err(|actual| {
        (format!("{} masters, each with {} replica(s)", shape.masters, shape.replicas_per_master), actual)
    })
}

/// The failover drill: delete a master's pod, wait for its replica's
/// promotion and for the pod to rejoin as a replica with `cluster_state:ok`,
/// then read back every key written before. Reports the times and lost keys.
pub async fn failover(ctx: &Ctx, drill: &ClusterFailover, timeout: Duration) -> Result<Done, StepError> {
    let node_timeout: u64 = ctx
        .render(&drill.node_timeout_ms)
        .parse()
        .map_err(|_| StepError::Invalid("nodeTimeoutMs is not a number".into()))?;
    let mut client = ClusterClient::new(ctx, &drill.pods, None).await?;
    let first = client.ips().first().cloned().unwrap_or_default();
    let before = client.nodes(&first).await?;
    let master = before
        .iter()
        .filter(|n| n.is_master() && !n.slots.is_empty())
        .min_by_key(|n| n.slots.first().cloned())
        .cloned();
    let Some(master) = master else {
        return Err(StepError::failed("a master serving slots", "none", "CLUSTER NODES"));
    };
    let replica = before.iter().find(|n| n.is_replica() && n.master.as_deref() == Some(master.id.as_str())).cloned();
    let Some(replica) = replica else {
        return Err(StepError::failed(format!("a replica of master {}", master.addr), "none", "CLUSTER NODES"));
    };
    let victim = client
        .pod(master.ip())
        .cloned()
        .ok_or_else(|| StepError::infra(format!("no pod has the master's IP {}", master.ip())))?;
    let victim_name = victim["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let victim_uid = victim["metadata"]["uid"].clone();
    let ns = victim["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace).to_string();
    let mut log = vec![format!(
        "master {} ({victim_name}, {}) with replica {}",
        master.addr,
        master.slots.join(" "),
        replica.addr
    )];

    let hold_down = drill.hold_down.unwrap_or(true);
    let (_turn, held) = if hold_down {
        let (turn, held) = hold_nodes(ctx).await?;
        log.push(format!("cordoned {} so the pod stays down until the failover", nodes_text(&held)));
        (Some(turn), held)
    } else {
        (None, Vec::new())
    };
    let started = Instant::now();
    let (pods_api, _, _) = ctx.api(Some("v1"), "Pod", Some(&ns)).await?;
    let mut done = Done::default();
    // A client's view: one SET at a time to a key of the victim's slots,
    // each key unique to this drill, read back once it is over.
    let mut writer = ClusterClient::new(ctx, &drill.pods, None).await?;
    let tag = tag_served_by(&mut writer, &first, &master).await;
    let written = tag.as_ref().map(|tag| format!("{{{tag}}}:{}:", crate::report::event::epoch_ms()));
    let write = async |n: u64| {
        let Some(written) = &written else { return false };
        let set = ["SET".to_string(), format!("{written}{n}"), n.to_string()];
        let ok = matches!(writer.query(&set).await, Ok(Reply::Okay));
        if !ok {
            let _ = writer.refresh().await;
        }
        ok
    };
    let watching = watch_failover(
        ctx,
        &mut client,
        &master,
        &replica,
        &victim_name,
        &victim_uid,
        started,
        timeout,
        &held,
        &mut log,
        &pods_api,
    );
    let (outcome, outcomes) = super::drill_writes::during(ctx, &mut done, watching, write).await;
    // Whatever happened, the nodes take pods again.
    let _ = release(ctx, &held).await;
    let (promoted_after, recovered_after, last_view) = outcome?;
    done.measure("node timeout", node_timeout as f64, "ms");
    if let Some(p) = promoted_after {
        done.measure("failover time", p.as_millis() as f64, "ms");
    }
    if let Some(r) = recovered_after {
        done.measure("recovery time", r.as_millis() as f64, "ms");
    }
    ctx.keep_measurements(&done.measurements);
    let Some(_) = recovered_after else {
        return Err(StepError::Failed {
            expected: format!(
                "replica promoted and {victim_name} rejoined as a replica, cluster_state:ok, within {}s",
                timeout.as_secs()
            ),
            actual: if promoted_after.is_none() {
                format!("no promotion: {last_view}")
            } else {
                format!("not recovered: {last_view}")
            },
            looked_at: "CLUSTER NODES".into(),
            output: log.join("\n"),
            diagnostics: None,
        });
    };
    client.refresh().await?;
    let keys = drill.keys.value(&|t| ctx.render(t)).map_err(StepError::Invalid)?;
    let missing = super::cluster_keys::read_back(&mut client, None, &ctx.render(&drill.prefix), keys).await?;
    done.measure("lost keys", missing.len() as f64, "keys");
    log.push(format!("read back {}/{keys} keys written before the drill", keys as usize - missing.len()));
    if let Some(written) = &written {
        let writes = super::drill_outcome::ledger(&outcomes);
        let present =
            super::drill_outcome::read_numbered(written, writes.len() as u64, async |mget| client.query(&mget).await)
                .await?;
        super::drill_outcome::report_writes(&writes, &present, "the cluster", &mut log, &mut done);
    }
    ctx.take_measurements();
    ctx.keep_measurements(&done.measurements);
    done.output = log.join("\n");
    if !missing.is_empty() {
        return Err(StepError::Failed {
            expected: "0 keys lost".into(),
            actual: format!("{} keys lost", missing.len()),
            looked_at: "GET through the cluster".into(),
            output: done.output,
            diagnostics: None,
        });
    }
    Ok(done)
}

/// A hash tag in one of the slots `master` serves, so that the drill's
/// writes go to the master it stops (asked of the node at `ip`).
pub(super) async fn tag_served_by(client: &mut ClusterClient<'_>, ip: &str, master: &Node) -> Option<String> {
    for i in 0..1000 {
        let tag = format!("runbook-drill-{i}");
        let slot = super::redis_client::to_value(&client.on(ip, &["CLUSTER", "KEYSLOT", &tag]).await.ok()?).as_i64()?;
        if master.slots.iter().any(|range| slot_in(range, slot)) {
            return Some(tag);
        }
    }
    None
}

/// Whether `slot` is in a range of CLUSTER NODES (`0-5460` or `42`).
pub(super) fn slot_in(range: &str, slot: i64) -> bool {
    let bound = |s: &str| s.parse::<i64>().ok();
    match range.split_once('-') {
        Some((low, high)) => bound(low).zip(bound(high)).is_some_and(|(l, h)| (l..=h).contains(&slot)),
        None => bound(range) == Some(slot),
    }
}

/// Drills in one runbook process that hold nodes down take turns: a drill
/// beside another (`run --parallel`) would otherwise uncordon the nodes under
/// it, and its master would come back before the failover.
static NODE_HOLDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes this process's turn to hold nodes, then cordons every schedulable
/// node (a deleted pod would otherwise come back at once on another node);
/// the nodes it cordoned, to [`release`]. The turn ends when the returned
/// guard is dropped.
pub(crate) async fn hold_nodes(ctx: &Ctx) -> Result<(tokio::sync::MutexGuard<'static, ()>, Vec<String>), StepError> {
    let turn = match NODE_HOLDS.try_lock() {
        Ok(turn) => turn,
        Err(_) => {
            ctx.progress("waiting for another run's drill to let the nodes go");
            NODE_HOLDS.lock().await
        }
    };
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(ctx.client.clone());
    let mut held = Vec::new();
    for node in nodes.list(&Default::default()).await? {
        let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
        if let (false, Some(name)) = (cordoned, node.metadata.name) {
            held.push(name);
        }
    }
    for name in &held {
        cordon(ctx, name, true).await?;
    }
    Ok((turn, held))
}

/// Uncordons the nodes [`hold_nodes`] cordoned.
pub(crate) async fn release(ctx: &Ctx, held: &[String]) -> Result<(), StepError> {
    for name in held {
        cordon(ctx, name, false).await?;
    }
    Ok(())
}

/// `node a`, or `nodes a, b` for the log.
pub(crate) fn nodes_text(nodes: &[String]) -> String {
    match nodes {
        [one] => format!("node {one}"),
        many => format!("nodes {}", many.join(", ")),
    }
}

/// Marks a node unschedulable (or schedulable again), as `kubectl cordon` does.
pub(crate) async fn cordon(ctx: &Ctx, node: &str, on: bool) -> Result<(), StepError> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(ctx.client.clone());
    let patch = serde_json::json!({"spec": {"unschedulable": on}});
    nodes.patch(node, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    Ok(())
}

/// What the drill saw: when the replica was promoted, when the cluster recovered, the last view.
type Watched = (Option<Duration>, Option<Duration>, String);

/// Deletes the victim and follows the cluster until it recovers or time runs out.
#[allow(clippy::too_many_arguments)]
async fn watch_failover(
    ctx: &Ctx,
    client: &mut ClusterClient<'_>,
    master: &Node,
    replica: &Node,
    victim_name: &str,
    victim_uid: &Value,
    started: Instant,
    timeout: Duration,
    held: &[String],
    log: &mut Vec<String>,
    pods_api: &kube::Api<kube::api::DynamicObject>,
) -> Result<Watched, StepError> {
    pods_api.delete(victim_name, &DeleteParams::default()).await?;
    ctx.mark(format!("master pod {victim_name} deleted"));
    log.push(format!("deleted pod {victim_name}"));
    ctx.progress(&format!("deleted {victim_name}; waiting for its replica to take over"));
    let mut promoted_after: Option<Duration> = None;
    let mut recovered_after: Option<Duration> = None;
    let mut last_view = String::new();
    let _ = Poller::new(timeout.saturating_sub(started.elapsed()))
        .every(Duration::from_millis(200))
        .until(async |_| {
            client.refresh().await?;
            // Ask a node other than the victim's (old or new) address.
            let observer = client
                .ips()
                .into_iter()
                .find(|ip| ip != master.ip() && client.pod(ip).is_some_and(|p| p["metadata"]["name"] != victim_name));
            let Some(observer) = observer else { return Ok(Probe::NotYet("no node to ask".into())) };
            let Ok(nodes) = client.nodes(&observer).await else {
                return Ok(Probe::NotYet(format!("{observer} did not answer CLUSTER NODES")));
            };
            let old = nodes.iter().find(|n| n.id == master.id);
            let new_master = nodes.iter().find(|n| n.id == replica.id);
            last_view = format!(
                "replica {} is {}; old master {}",
                replica.addr,
                new_master.map(|n| n.flags.join(",")).unwrap_or_else(|| "gone".into()),
                old.map(|n| format!("{} at {}", n.flags.join(","), n.addr)).unwrap_or_else(|| "gone".into())
            );
            if promoted_after.is_none() && new_master.is_some_and(|n| n.is_master() && !n.slots.is_empty()) {
                promoted_after = Some(started.elapsed());
                ctx.mark(format!("replica {} promoted", replica.addr));
                log.push(format!(
                    "replica {} promoted to master after {} ms",
                    replica.addr,
                    started.elapsed().as_millis()
                ));
                ctx.progress("replica promoted; waiting for the old master to rejoin as a replica");
                if !held.is_empty() {
                    release(ctx, held).await?;
                    log.push(format!("uncordoned {}", nodes_text(held)));
                }
            }
            let back = client.ips().into_iter().any(|ip| {
                client
                    .pod(&ip)
                    .is_some_and(|p| p["metadata"]["name"] == victim_name && p["metadata"]["uid"] != *victim_uid)
            });
            let rejoined = old.is_some_and(|n| n.is_replica() && n.master.as_deref() == Some(replica.id.as_str()));
            if promoted_after.is_some() && back && rejoined {
                let info = client.on(&observer, &["CLUSTER", "INFO"]).await?;
                let state = super::redis_client::field(&super::redis_client::to_value(&info), "cluster_state");
                if state == Some(Value::String("ok".into())) {
                    recovered_after = Some(started.elapsed());
                    ctx.mark(format!("{victim_name} back as a replica; cluster_state ok"));
                    log.push(format!(
                        "{victim_name} back at {} as a replica of {}; cluster_state:ok after {} ms",
                        old.map(|n| n.addr.clone()).unwrap_or_default(),
                        replica.addr,
                        started.elapsed().as_millis()
                    ));
                    return Ok::<_, StepError>(Probe::Ready(()));
                }
            }
            Ok(Probe::NotYet(last_view.clone()))
        })
        .await?;
    Ok((promoted_after, recovered_after, last_view))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A formed cluster's `CLUSTER NODES`, for the drills' tests.
    pub(in crate::engine) const NODES: &str = "\
a1 10.244.0.2:6379@16379 myself,master - 0 0 1 connected 0-5460
b2 10.244.0.3:6379@16379 master - 0 0 2 connected 5461-10922
c3 10.244.0.4:6379@16379 master - 0 0 3 connected 10923-16383
d4 10.244.0.5:6379@16379 slave c3 0 0 3 connected
e5 10.244.0.6:6379@16379 slave a1 0 0 1 connected
f6 10.244.0.7:6379@16379 slave b2 0 0 2 connected
";

    #[test]
    fn shapes() {
        let nodes = parse_nodes(NODES);
        assert_eq!(nodes.len(), 6);
        assert!(check_shape(&nodes, &ClusterShape { masters: 3, replicas_per_master: 1 }).is_ok());
        let missing_replica: String =
            NODES.lines().filter(|l| !l.starts_with("f6")).map(|l| format!("{l}\n")).collect();
        let err = check_shape(&parse_nodes(&missing_replica), &ClusterShape { masters: 3, replicas_per_master: 1 })
            .unwrap_err();
        assert_eq!(err, "master 10.244.0.3:6379 has 0 replicas");
        let failed = NODES.replace("b2 10.244.0.3:6379@16379 master", "b2 10.244.0.3:6379@16379 master,fail");
        assert!(slot_in("0-5460", 5460) && slot_in("42", 42) && !slot_in("5461-10922", 10923));
        assert!(!slot_in("[93->-e5]", 93));
        assert!(
            check_shape(&parse_nodes(&failed), &ClusterShape { masters: 3, replicas_per_master: 1 })
                .unwrap_err()
                .starts_with("2 masters")
        );
    }
}

//! The Sentinel failover drill. A client writes unique keys to whichever
//! master the Sentinels name, its first writes confirmed by every replica;
//! the drill deletes the master's pod (its node cordoned so it stays down, as
//! a failed node would) or takes its node down ([`super::failover_fault`]),
//! and measures how long until every Sentinel names the same new master, and
//! until the old pod is back as its replica; then it reads every write back
//! from the new master.

use std::time::{Duration, Instant};

use redis::Value as Reply;
use serde_json::Value;

use super::cluster::{hold_nodes, nodes_text, release};
use super::context::Ctx;
use super::redis_client::{connect, field, password, query, to_value};
use super::sentinel::{SENTINEL_PORT, agreed, agreed_master, describe, failed, masters_seen, names_pod};
use super::{Done, StepError};
use crate::poll::{Poller, Probe};
use crate::scenario::{FailoverFault, SentinelFailover};

/// A connection to the master the first answering Sentinel names (a
/// client's way to find it), if its pod runs and answers.
async fn master_named(
    ctx: &Ctx,
    drill: &SentinelFailover,
    port: u16,
    name: &str,
    pass: Option<String>,
) -> Option<redis::aio::MultiplexedConnection> {
    let seen = masters_seen(ctx, &drill.sentinels, port, name).await.ok()?;
    let ip = seen.into_iter().find_map(|(_, ip)| ip)?;
    let pod = ctx.running_pods(&drill.redis).await.ok()?.into_iter().find(|p| names_pod(&ip, p))?;
    connect(ctx, &pod, 6379, pass).await.ok()
}

fn millis(ctx: &Ctx, text: &str, what: &str) -> Result<u64, StepError> {
    ctx.render(text).trim().parse().map_err(|_| StepError::Invalid(format!("{what} is not a number of milliseconds")))
}

/// The failover drill.
pub async fn failover(ctx: &Ctx, drill: &SentinelFailover, timeout: Duration) -> Result<Done, StepError> {
    let port = drill.sentinel_port.unwrap_or(SENTINEL_PORT);
    let name = ctx.render(&drill.master_name);
    let down_after = millis(ctx, &drill.down_after_ms, "downAfterMs")?;
    let failover_timeout = millis(ctx, &drill.failover_timeout_ms, "failoverTimeoutMs")?;
    let keys = drill.keys.value(&|t| ctx.render(t)).map_err(StepError::Invalid)?;
    let mut log = Vec::new();
    let old_ip = agreed_master(ctx, &drill.sentinels, port, &name).await?;
    let redis_pods = ctx.running_pods(&drill.redis).await?;
    let Some(victim) = redis_pods.iter().find(|p| names_pod(&old_ip, p)).cloned() else {
        return Err(failed(format!("a Redis pod with the master's IP {old_ip}"), "none".into(), "pods", &log));
    };
    let victim_name = victim["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let ns = victim["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace).to_string();
    let fault = drill.fault.unwrap_or_default();
    super::failover_fault::check(ctx, fault, &victim, &redis_pods, &drill.sentinels).await?;
    let pass = match &drill.auth {
        Some(a) => Some(password(ctx, a, Some(&victim), &ns).await?),
        None => None,
    };
    log.push(format!("Sentinels agree: master {old_ip} ({victim_name})"));

    // A client's view: one SET at a time to whichever master the Sentinels
    // name, each key unique to this drill, read back once it is over. Its
    // first `keys` writes go to the master before it goes, and must reach
    // the replicas (WAIT): those must survive the failover.
    let written = format!("runbook:drill-write:{}:", crate::report::event::epoch_ms());
    let mut writer: Option<redis::aio::MultiplexedConnection> = None;
    let mut write = async |n: u64| {
        if writer.is_none() {
            writer = master_named(ctx, drill, port, &name, pass.clone()).await;
        }
        // Taken out while in use: a write that times out (its future
        // dropped) leaves no connection behind, and the next one asks the
        // Sentinels again, as a client does after a timeout (a connection
        // to a frozen master would otherwise wake up with it).
        let Some(mut conn) = writer.take() else { return false };
        let set = ["SET".to_string(), format!("{written}{n}"), n.to_string()];
        let ok = matches!(query(&mut conn, &set).await, Ok(Reply::Okay));
        if ok {
            writer = Some(conn);
        }
        ok
    };
    let mut outcomes = Vec::new();
    for n in 0..u64::from(keys) {
        let ok = write(n).await;
        outcomes.push((crate::report::event::epoch_ms(), ok));
        if !ok {
            return Err(failed(format!("write {n} before the drill to answer OK"), "it failed".into(), "master", &log));
        }
    }
    let mut master = connect(ctx, &victim, 6379, pass.clone()).await?;
    let acked =
        query(&mut master, &["WAIT".into(), "2".into(), "5000".into()]).await.map_err(StepError::from_source)?;
    let acked = to_value(&acked).as_i64().unwrap_or(0);
    drop(master);
    log.push(format!("wrote {keys} keys before the drill; WAIT: acknowledged by {acked} replica(s)"));
    ctx.mark(format!("{keys} writes acknowledged by {acked} replica(s)"));

    // A node that is down needs no cordon: its pod is not deleted.
    let hold_down = fault == FailoverFault::PodDeleted && drill.hold_down.unwrap_or(true);
    let (_turn, held) = if hold_down {
        let (turn, held) = hold_nodes(ctx).await?;
        log.push(format!("cordoned {} so the master stays down", nodes_text(&held)));
        (Some(turn), held)
    } else {
        (None, Vec::new())
    };
    let started = Instant::now();
    let mut done = Done::default();
    let watching =
        watch(ctx, drill, &name, port, &old_ip, &victim, fault, pass.clone(), started, timeout, &held, &mut log);
    let before = u64::from(keys);
    let (watched, during) =
        super::drill_writes::during(ctx, &mut done, watching, async |n| write(before + n).await).await;
    outcomes.extend(during);
    let _ = release(ctx, &held).await;
    let Watched { promoted_after, failover_after, back_after: recovered_after, new_ip } = watched?;

    done.measure("down-after-milliseconds", down_after as f64, "ms");
    done.measure("failover-timeout", failover_timeout as f64, "ms");
    done.measure("acknowledged by replicas", acked as f64, "replicas");
    let (Some(failover_after), Some(new_ip)) = (failover_after, new_ip) else {
        let now = masters_seen(ctx, &drill.sentinels, port, &name).await.unwrap_or_default();
        return Err(failed(
            format!("all Sentinels naming a new master within {}s", timeout.as_secs()),
            describe(&now),
            "SENTINEL get-master-addr-by-name",
            &log,
        ));
    };
    if let Some(p) = promoted_after {
        done.measure("promotion time", p.as_millis() as f64, "ms");
    }
    done.measure("failover time", failover_after.as_millis() as f64, "ms");
    if let Some(r) = recovered_after {
        done.measure("recovery time", r.as_millis() as f64, "ms");
    }
    let new_master = ctx.running_pods(&drill.redis).await?.into_iter().find(|p| names_pod(&new_ip, p));
    let Some(new_master) = new_master else {
        return Err(failed(format!("a Redis pod with the new master's IP {new_ip}"), "none".into(), "pods", &log));
    };
    let mut conn = connect(ctx, &new_master, 6379, pass).await?;
    let writes = super::drill_outcome::ledger(&outcomes);
    let present = super::drill_outcome::read_numbered(&written, writes.len() as u64, async |mget| {
        query(&mut conn, &mget).await.map_err(StepError::from_source)
    })
    .await?;
    let read_from = new_master["metadata"]["name"].as_str().unwrap_or_default();
    let tally = super::drill_outcome::report_writes(&writes, &present, read_from, &mut log, &mut done);
    // The first writes were all acknowledged: those lost are in the tally.
    let lost = tally.lost.iter().filter(|n| **n < u64::from(keys)).count();
    done.measure("lost keys", lost as f64, "keys");
    log.push(format!(
        "read back {}/{keys} of the writes made before the drill from the new master",
        keys as usize - lost
    ));
    if fault == FailoverFault::NodeDown && !tally.lost.is_empty() {
        log.push(
            "the old master came back from its node still a master, without replicas, and acknowledged writes \
             until the Sentinels made it a replica; a client connected to it lost them (min-replicas-to-write 1 \
             with min-replicas-max-lag makes such a master refuse writes)"
                .into(),
        );
    }
    done.output = log.join("\n");
    ctx.keep_measurements(&done.measurements);
    let bound = down_after + failover_timeout;
    if recovered_after.is_none() {
        return Err(failed(
            format!("{victim_name} back as a replica of {new_ip} within {}s", timeout.as_secs()),
            "it did not rejoin".into(),
            "INFO replication",
            &log,
        ));
    }
    if lost > 0 {
        return Err(failed("0 acknowledged keys lost".into(), format!("{lost} lost"), "GET on the new master", &log));
    }
    if failover_after.as_millis() as u64 > bound {
        return Err(failed(
            format!("a new master within down-after + failover-timeout ({bound} ms)"),
            format!("{} ms", failover_after.as_millis()),
            "Sentinels",
            &log,
        ));
    }
    Ok(done)
}

/// Deletes the master's pod and follows the Sentinels and the returning pod.
#[allow(clippy::too_many_arguments)]
async fn watch(
    ctx: &Ctx,
    drill: &SentinelFailover,
    name: &str,
    port: u16,
    old_ip: &str,
    victim: &Value,
    fault: FailoverFault,
    pass: Option<String>,
    started: Instant,
    timeout: Duration,
    held: &[String],
    log: &mut Vec<String>,
) -> Result<Watched, StepError> {
    let victim_name = victim["metadata"]["name"].as_str().unwrap_or_default();
    let (applied, did) = super::failover_fault::apply(ctx, fault, victim).await?;
    log.push(did);
    let mut undone = false;
    let mut promoted_after = None;
    let mut failover_after = None;
    let mut new_ip: Option<String> = None;
    let mut back_after = None;
    let polled = Poller::new(timeout.saturating_sub(started.elapsed()))
        .until(async |_| {
            if failover_after.is_none() {
                let seen = masters_seen(ctx, &drill.sentinels, port, name).await?;
                let said = format!("Sentinels say: {}", describe(&seen));
                ctx.progress(&said);
                if promoted_after.is_none()
                    && let Some(ip) = seen.iter().find_map(|(_, ip)| ip.as_deref().filter(|ip| *ip != old_ip))
                {
                    promoted_after = Some(started.elapsed());
                    log.push(format!(
                        "a Sentinel names the new master {ip} after {} ms",
                        started.elapsed().as_millis()
                    ));
                }
                // Sentinels on a node that is down cannot answer.
                let answering: Vec<(String, Option<String>)> =
                    seen.into_iter().filter(|(pod, _)| !applied.silenced(pod)).collect();
                if let Some(ip) = agreed(&answering).filter(|ip| ip != old_ip) {
                    failover_after = Some(started.elapsed());
                    ctx.mark(format!("Sentinels name the new master {ip}"));
                    log.push(format!(
                        "all Sentinels{} name the new master {ip} after {} ms",
                        if applied.silenced_any() { " that are up" } else { "" },
                        started.elapsed().as_millis()
                    ));
                    new_ip = Some(ip);
                    if !held.is_empty() {
                        release(ctx, held).await?;
                        log.push(format!("uncordoned {}", nodes_text(held)));
                    }
                    if let Some(line) = super::failover_fault::undo(ctx, &applied).await? {
                        log.push(format!("{line} after {} ms", started.elapsed().as_millis()));
                    }
                    undone = true;
                }
                return Ok(Probe::NotYet(said));
            }
            let back = ctx
                .running_pods(&drill.redis)
                .await?
                .into_iter()
                .find(|p| super::failover_fault::is_back(fault, victim, p));
            let Some(back) = back else { return Ok(Probe::NotYet(format!("{victim_name} not back"))) };
            let Ok(mut conn) = connect(ctx, &back, 6379, pass.clone()).await else {
                return Ok(Probe::NotYet(format!("{victim_name} back, not answering")));
            };
            let Ok(info) = query(&mut conn, &["INFO".into(), "replication".into()]).await else {
                return Ok(Probe::NotYet(format!("{victim_name} back, INFO not answered")));
            };
            let info = to_value(&info);
            let role = field(&info, "role");
            let master_host = field(&info, "master_host");
            let link = field(&info, "master_link_status");
            let state = format!(
                "{victim_name}: role {}, master {}, link {}",
                super::expect::show(role.as_ref()),
                super::expect::show(master_host.as_ref()),
                super::expect::show(link.as_ref())
            );
            ctx.progress(&state);
            if role == Some(Value::String("slave".into()))
                && master_host.as_ref().and_then(|v| v.as_str()) == new_ip.as_deref()
                && link == Some(Value::String("up".into()))
            {
                back_after = Some(started.elapsed());
                ctx.mark(format!("{victim_name} back as a replica, link up"));
                log.push(format!(
                    "{victim_name} is back at {} as a replica of {}; link up after {} ms",
                    back["status"]["podIP"].as_str().unwrap_or_default(),
                    new_ip.as_deref().unwrap_or_default(),
                    started.elapsed().as_millis()
                ));
                return Ok::<_, StepError>(Probe::Ready(()));
            }
            Ok(Probe::NotYet(state))
        })
        .await;
    // No new master in time: the node comes back all the same.
    if !undone && let Some(line) = super::failover_fault::undo(ctx, &applied).await? {
        log.push(line);
    }
    let _ = polled?;
    Ok(Watched { promoted_after, failover_after, back_after, new_ip })
}

/// What the failover drill's watch saw, each time counted from the deletion.
struct Watched {
    /// The first Sentinel named a new master: the leader's switch, the part
    /// of the failover Redis' timeouts govern.
    promoted_after: Option<Duration>,
    /// Every Sentinel names the same new master (the others learn it from
    /// the leader's hello messages, every 2 s).
    failover_after: Option<Duration>,
    /// The old master's pod is back as a replica of the new one, link up.
    back_after: Option<Duration>,
    /// The new master's IP.
    new_ip: Option<String>,
}

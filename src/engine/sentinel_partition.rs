//! The Sentinel partition drill, measured as Jepsen measures: a client
//! writes unique keys, one at a time, to whichever master the Sentinels name
//! (asking before each write, as a client following `+switch-master` would),
//! while the master is cut off from its replicas and the Sentinels (a
//! [`super::partition`] cut). The old master keeps acknowledging writes on
//! its side until the Sentinels have promoted a replica and the cut heals;
//! then it becomes a replica of the new master and its writes are gone. The
//! drill reads every key back and counts the acknowledged writes lost, the
//! unacknowledged ones that are there, the time without an acknowledged
//! write, the time two pods said they were master, and the time to agree
//! again. With `minReplicasToWrite` the master refuses writes once its
//! replicas are `minReplicasMaxLag` seconds behind, which bounds the loss:
//! the drill then fails if a write acknowledged later than that was lost.
//! With `waitReplicas` each write is followed by `WAIT`, and only writes the
//! replicas confirmed count: none of them may be lost.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Value as Reply;
use serde_json::Value;

use super::context::Ctx;
use super::cut::Cut;
use super::drill_outcome::{Outcome, Seen, WaitReplicas};
use super::redis_client::{connect, field, password, query, to_value};
use super::sentinel::{SENTINEL_PORT, agreed, agreed_master, describe, masters_seen, names_pod};
use super::{Done, StepError};
use crate::poll::{Poller, Probe};
use crate::report::event::epoch_ms;
use crate::scenario::{PartitionDirection, Replication, SentinelPartition};

/// How long the client writes before the cut, so the drill starts from a
/// master that acknowledges.
const BEFORE_CUT: Duration = Duration::from_secs(1);
/// How long a cut has to show: Sentinels ping every second.
const CUT_PATIENCE: Duration = Duration::from_secs(5);
/// What the loss bound allows past `min-replicas-max-lag`, in seconds: the
/// replicas' last acknowledgement may come up to a second before the cut,
/// Redis counts its good replicas once a second (replicationCron), and the
/// cut takes a moment to hold once its policy exists.
const BOUND_SLACK_S: u64 = 3;
/// How often the pods are asked for their role.
const ROLE_EVERY: Duration = Duration::from_millis(200);

/// What the drill needs at hand while it runs.
struct Scene<'a> {
    ctx: &'a Ctx,
    spec: &'a SentinelPartition,
    name: String,
    port: u16,
    redis: Vec<Value>,
    sentinels: Vec<Value>,
    pass: Option<String>,
    prefix: String,
    wait_replicas: Option<WaitReplicas>,
}

/// Runs the drill.
pub async fn drill(ctx: &Ctx, spec: &SentinelPartition, lasts: Duration, timeout: Duration) -> Result<Done, StepError> {
    let port = spec.sentinel_port.unwrap_or(SENTINEL_PORT);
    let name = ctx.render(&spec.master_name);
    let old_ip = agreed_master(ctx, &spec.sentinels, port, &name).await?;
    let redis = ctx.running_pods(&spec.redis).await?;
    let Some(master) = redis.iter().find(|p| names_pod(&old_ip, p)).cloned() else {
        return Err(StepError::failed(format!("a Redis pod with the master's IP {old_ip}"), "none", "pods"));
    };
    let ns = master["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace).to_string();
    let pass = match &spec.auth {
        Some(a) => Some(password(ctx, a, Some(&master), &ns).await?),
        None => None,
    };
    let count = |c: &Option<crate::scenario::Count>, what: &str| -> Result<Option<u32>, StepError> {
        c.as_ref()
            .map(|c| c.value(&|t| ctx.render(t)).map_err(|e| StepError::Invalid(format!("{what}: {e}"))))
            .transpose()
    };
    let limits = match (
        count(&spec.min_replicas_to_write, "minReplicasToWrite")?,
        count(&spec.min_replicas_max_lag, "minReplicasMaxLag")?,
    ) {
        (Some(to_write), lag) => Some((to_write, lag.unwrap_or(10))),
        (None, _) => None,
    };
    let scene = Scene {
        ctx,
        spec,
        name,
        port,
        sentinels: ctx.running_pods(&spec.sentinels).await?,
        redis,
        pass,
        prefix: format!("runbook:partition:{}:", epoch_ms()),
        wait_replicas: count(&spec.wait_replicas, "waitReplicas")?.map(WaitReplicas),
    };
    let saved = scene.configure(limits).await?;
    let outcome = scene.run(&master, &old_ip, lasts, timeout, limits).await;
    let restored = scene.restore(&saved).await;
    let mut done = outcome?;
    if !restored.is_empty() {
        done.output.push_str(&format!("\ncould not put back: {}", restored.join("; ")));
    }
    Ok(done)
}

impl Scene<'_> {
    /// Sets min-replicas on every Redis pod (any may be promoted); what each
    /// had before, to put back.
    async fn configure(&self, limits: Option<(u32, u32)>) -> Result<Vec<(Value, Vec<(String, String)>)>, StepError> {
        let Some((to_write, lag)) = limits else { return Ok(Vec::new()) };
        let mut saved = Vec::new();
        for pod in &self.redis {
            let mut conn = connect(self.ctx, pod, 6379, self.pass.clone()).await?;
            let mut before = Vec::new();
            for (parameter, value) in [("min-replicas-to-write", to_write), ("min-replicas-max-lag", lag)] {
                let old = query(&mut conn, &["CONFIG".into(), "GET".into(), parameter.into()])
                    .await
                    .map_err(StepError::from_source)?;
                let old =
                    field(&to_value(&old), parameter).and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
                query(&mut conn, &["CONFIG".into(), "SET".into(), parameter.into(), value.to_string()])
                    .await
                    .map_err(StepError::from_source)?;
                before.push((parameter.to_string(), old));
            }
            saved.push((pod.clone(), before));
        }
        Ok(saved)
    }

    /// Puts back what `configure` changed; what could not be, as text.
    async fn restore(&self, saved: &[(Value, Vec<(String, String)>)]) -> Vec<String> {
        let mut problems = Vec::new();
        for (pod, before) in saved {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let Ok(mut conn) = connect(self.ctx, pod, 6379, self.pass.clone()).await else {
                problems.push(format!("{name}: no answer"));
                continue;
            };
            for (parameter, value) in before {
                let set = ["CONFIG".into(), "SET".into(), parameter.clone(), value.clone()];
                if query(&mut conn, &set).await.is_err() {
                    problems.push(format!("{name}: {parameter} {value}"));
                }
            }
        }
        problems
    }

    /// The master the first Sentinel that answers names.
    async fn master_named(&self) -> Option<String> {
        for sentinel in &self.sentinels {
            let Ok(mut conn) = connect(self.ctx, sentinel, self.port, None).await else { continue };
            let ask = ["SENTINEL".into(), "get-master-addr-by-name".into(), self.name.clone()];
            if let Ok(reply) = query(&mut conn, &ask).await
                && let Value::Array(items) = to_value(&reply)
                && let Some(ip) = items.first().and_then(|v| v.as_str())
            {
                return Some(ip.to_string());
            }
        }
        None
    }

    /// How many Redis pods say they are master now, and the last one that did.
    async fn masters(&self) -> (usize, Option<Value>) {
        let mut count = 0;
        let mut last = None;
        for pod in &self.redis {
            let Ok(mut conn) = connect(self.ctx, pod, 6379, self.pass.clone()).await else { continue };
            let Ok(info) = query(&mut conn, &["INFO".into(), "replication".into()]).await else { continue };
            if field(&to_value(&info), "role").and_then(|v| v.as_str().map(String::from)).as_deref() == Some("master") {
                count += 1;
                last = Some(pod.clone());
            }
        }
        (count, last)
    }

    /// The drill proper, between configuring and putting back.
    async fn run(
        &self,
        master: &Value,
        old_ip: &str,
        lasts: Duration,
        timeout: Duration,
        limits: Option<(u32, u32)>,
    ) -> Result<Done, StepError> {
        let ctx = self.ctx;
        let others: Vec<Value> = self
            .redis
            .iter()
            .chain(&self.sentinels)
            .filter(|p| p["metadata"]["uid"] != master["metadata"]["uid"])
            .cloned()
            .collect();
        let master_name = master["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let stop = AtomicBool::new(false);
        let promoted: Mutex<Option<(u64, String)>> = Mutex::new(None);
        let driving = async {
            let driven = self.drive(master, &others, lasts, timeout).await;
            stop.store(true, Ordering::Relaxed);
            driven
        };
        let writing = super::drill_writes::write_until(&stop, async |n: u64| {
            let Some(ip) = self.master_named().await else { return false };
            if ip != old_ip {
                let mut first = promoted.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| (epoch_ms(), ip.clone()));
            }
            let Some(pod) = self.redis.iter().find(|p| names_pod(&ip, p)) else { return false };
            let Ok(mut conn) = connect(ctx, pod, 6379, self.pass.clone()).await else { return false };
            let set = ["SET".to_string(), format!("{}{n}", self.prefix), n.to_string()];
            let ok = matches!(query(&mut conn, &set).await, Ok(Reply::Okay));
            match self.wait_replicas {
                Some(wait) if ok => wait.confirmed(&query(&mut conn, &wait.command()).await),
                _ => ok,
            }
        });
        let observing = async {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let masters = self.masters().await.0;
                super::drill_outcome::mark_split_brain(ctx, samples.last().map_or(0, |s: &(u64, usize)| s.1), masters);
                samples.push((epoch_ms(), masters));
                tokio::time::sleep(ROLE_EVERY).await;
            }
            samples
        };
        let (driven, outcomes, samples) = tokio::join!(driving, writing, observing);
        let Driven { cut_at, healed_after, converged } = driven?;
        let promoted = promoted.into_inner().unwrap_or_else(|e| e.into_inner());
        ctx.keep_traffic(crate::report::event::Traffic::count("writes", &outcomes, 500));
        let mut log = vec![
            format!(
                "master {master_name} ({old_ip}) cut off from {} for {:.0}s",
                others
                    .iter()
                    .map(|p| p["metadata"]["name"].as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", "),
                lasts.as_secs_f64()
            ),
            match limits {
                Some((w, lag)) => format!("min-replicas-to-write {w}, min-replicas-max-lag {lag} (set for the drill)"),
                None => "min-replicas-to-write as configured".into(),
            },
        ];
        if let Some(wait) = self.wait_replicas {
            log.push(wait.describe());
        }
        match &promoted {
            Some((at, ip)) => log.push(format!("the Sentinels named {ip} after {} ms", at.saturating_sub(cut_at))),
            None => log.push("the Sentinels never named another master".into()),
        }
        log.push(format!("healed after {} ms", healed_after.as_millis()));
        let Some((converged_after, final_master)) = converged else {
            return Err(StepError::Failed {
                expected: format!(
                    "one master with its replicas and the Sentinels agreeing within {}s of healing",
                    timeout.as_secs()
                ),
                actual: "they did not agree".into(),
                looked_at: "INFO replication, SENTINEL get-master-addr-by-name".into(),
                output: log.join("\n"),
                diagnostics: None,
            });
        };
        let final_name = final_master["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let writes = super::drill_outcome::ledger(&outcomes);
        let present = self.read_back(&final_master, writes.len() as u64).await?;
        let seen = Seen {
            writes: &writes,
            present: &present,
            masters: &samples,
            fault_at: cut_at,
            promoted_at: promoted.as_ref().map(|(at, _)| *at),
            converged_after,
            final_master: &final_name,
        };
        let mut done = Done::default();
        let Outcome { tally: t, window_ms: window } = super::drill_outcome::report(&seen, &mut log, &mut done);
        let bound = limits.map(|(_, lag)| (u64::from(lag) + BOUND_SLACK_S) * 1000);
        log.push(match bound {
            Some(b) => format!(
                "bound: the master refuses writes once its replicas are {} s behind, so only writes acknowledged in the first {:.0} s of a cut can be lost; the last lost one was acknowledged {window} ms in",
                b / 1000 - BOUND_SLACK_S,
                b as f64 / 1000.0
            ),
            None if self.wait_replicas.is_some() => format!(
                "bound: a write counts only once a replica has it, and the Sentinels promote the replica with the most data, so none is lost (here {}); the cut-off master's unconfirmed writes are lost, unacknowledged",
                t.lost.len()
            ),
            None => format!(
                "bound: none; the cut-off master acknowledges writes until clients leave it, and every one is lost (here {} over {window} ms); min-replicas-to-write 1 with min-replicas-max-lag bounds it",
                t.lost.len()
            ),
        });
        done.output = ctx.redact(&log.join("\n"));
        ctx.keep_measurements(&done.measurements);
        if promoted.is_none() {
            return Err(StepError::Failed {
                expected: "a new master named while the master was cut off".into(),
                actual: "the Sentinels kept the master: the cut had no effect (a network plugin that does not enforce NetworkPolicy?) or did not last down-after-milliseconds".into(),
                looked_at: "SENTINEL get-master-addr-by-name".into(),
                output: done.output,
                diagnostics: None,
            });
        }
        if let Some(wait) = self.wait_replicas {
            wait.check(t.lost.len(), "GET on the master after healing", &done.output)?;
        }
        if let Some(b) = bound
            && window > b
        {
            return Err(StepError::Failed {
                expected: format!("acknowledged writes lost only in the first {} ms of the cut", b),
                actual: format!("a write acknowledged {window} ms in was lost"),
                looked_at: "GET on the master after healing".into(),
                output: done.output,
                diagnostics: None,
            });
        }
        Ok(done)
    }

    /// Cuts, holds, heals and waits for the pods and Sentinels to agree.
    async fn drive(
        &self,
        master: &Value,
        others: &[Value],
        lasts: Duration,
        timeout: Duration,
    ) -> Result<Driven, StepError> {
        let ctx = self.ctx;
        tokio::time::sleep(BEFORE_CUT).await;
        let cut_at = epoch_ms();
        let cut: Cut =
            super::partition::make(ctx, std::slice::from_ref(master), others, PartitionDirection::Both).await?;
        ctx.mark("master cut off");
        let started = Instant::now();
        if let Err(why) = self.cut_holds().await {
            super::partition::heal(ctx, &cut).await?;
            return Err(StepError::NotHere(why));
        }
        while started.elapsed() < lasts {
            let left = lasts - started.elapsed();
            ctx.progress(&format!("master cut off; healed in {}s", left.as_secs_f64().ceil()));
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        }
        super::partition::heal(ctx, &cut).await?;
        let healed_after = started.elapsed();
        ctx.mark("cut healed");
        let healed = Instant::now();
        let replication = Replication {
            pods: self.spec.redis.clone(),
            auth: self.spec.auth.clone(),
            replicas: (self.redis.len() as u32).saturating_sub(1),
            write_probe: false,
        };
        let converged = Poller::new(timeout)
            .until(async |_| {
                if super::sentinel::replication(ctx, &replication).await.is_err() {
                    return Ok::<_, StepError>(Probe::NotYet("replication not settled".into()));
                }
                let (masters, pod) = self.masters().await;
                let seen = masters_seen(ctx, &self.spec.sentinels, self.port, &self.name).await?;
                match (masters, pod, agreed(&seen)) {
                    (1, Some(pod), Some(ip)) if names_pod(&ip, &pod) => Ok(Probe::Ready((healed.elapsed(), pod))),
                    _ => Ok(Probe::NotYet(format!("Sentinels: {}", describe(&seen)))),
                }
            })
            .await?
            .ok();
        if converged.is_some() {
            ctx.mark("one master again");
        }
        // A few writes on the settled pair, so the tally ends on acknowledged ones.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Driven { cut_at, healed_after, converged })
    }

    /// Waits until every Sentinel has gone without the master's answer for
    /// two of its one-second pings; why the cut does not hold, if they still
    /// hear it after five seconds.
    async fn cut_holds(&self) -> Result<(), String> {
        let ask = ["SENTINEL".to_string(), "master".into(), self.name.clone()];
        let heard = Poller::new(CUT_PATIENCE)
            .until(async |_| {
                let mut hearing = Vec::new();
                for sentinel in &self.sentinels {
                    let Ok(mut conn) = connect(self.ctx, sentinel, self.port, None).await else { continue };
                    let Ok(reply) = query(&mut conn, &ask).await else { continue };
                    let since = field(&to_value(&reply), "last-ok-ping-reply")
                        .and_then(|v| v.as_str().and_then(|t| t.parse::<u64>().ok()))
                        .unwrap_or(0);
                    if since < 2000 {
                        hearing.push(format!(
                            "{} ({since} ms ago)",
                            sentinel["metadata"]["name"].as_str().unwrap_or_default()
                        ));
                    }
                }
                Ok::<_, StepError>(if hearing.is_empty() {
                    Probe::Ready(())
                } else {
                    Probe::NotYet(hearing.join(", "))
                })
            })
            .await
            .map_err(|e| super::error_text(&e))?;
        heard.map_err(|still| {
            format!(
                "the partition had no effect: {}s after the cut, Sentinels still hear the master: {}; \
                 the cluster's network plugin does not seem to enforce NetworkPolicy",
                CUT_PATIENCE.as_secs(),
                still.last
            )
        })
    }

    /// Whether each key `0..count` holds its write, read from `master`.
    async fn read_back(&self, master: &Value, count: u64) -> Result<Vec<bool>, StepError> {
        let mut conn = connect(self.ctx, master, 6379, self.pass.clone()).await?;
        super::drill_outcome::read_numbered(&self.prefix, count, async |mget| {
            query(&mut conn, &mget).await.map_err(StepError::from_source)
        })
        .await
    }
}

/// What the driving half of the drill saw.
struct Driven {
    /// When the cut was made (ms since the epoch).
    cut_at: u64,
    /// How long the cut held.
    healed_after: Duration,
    /// How long after healing the pods agreed again, and on which master.
    converged: Option<(Duration, Value)>,
}

//! Sentinel checks and the restart drill, and what every Sentinel step asks
//! the Sentinels (the failover and partition drills, in their own modules,
//! build on it). The restart drill deletes a Sentinel and checks the master
//! does not change.

use std::time::Duration;

use kube::api::DeleteParams;
use serde_json::Value;

use super::context::Ctx;
use super::redis_client::{connect, field, password, query, to_value};
use super::{Done, StepError};
use crate::poll::{Poller, Probe};
use crate::scenario::{PodRef, Replication, SentinelReset, SentinelRestart, Sentinels};

/// Sentinel's default port.
pub const SENTINEL_PORT: u16 = 26379;

pub(super) fn failed(expected: String, actual: String, looked_at: &str, output: &[String]) -> StepError {
    StepError::Failed { expected, actual, looked_at: looked_at.into(), output: output.join("\n"), diagnostics: None }
}

/// What each Running Sentinel says the master's IP is.
pub(super) async fn masters_seen(
    ctx: &Ctx,
    sentinels: &PodRef,
    port: u16,
    name: &str,
) -> Result<Vec<(String, Option<String>)>, StepError> {
    let mut seen = Vec::new();
    for pod in ctx.running_pods(sentinels).await? {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let answer = match connect(ctx, &pod, port, None).await {
            Ok(mut conn) => {
                let reply =
                    query(&mut conn, &["SENTINEL".into(), "get-master-addr-by-name".into(), name.into()]).await.ok();
                reply.and_then(|r| match to_value(&r) {
                    Value::Array(items) => items.first().and_then(|v| v.as_str().map(String::from)),
                    _ => None,
                })
            }
            Err(_) => None,
        };
        seen.push((pod_name, answer));
    }
    Ok(seen)
}

/// The master every Running Sentinel names, or a failure saying what each
/// of them named.
pub(super) async fn agreed_master(ctx: &Ctx, sentinels: &PodRef, port: u16, name: &str) -> Result<String, StepError> {
    let seen = masters_seen(ctx, sentinels, port, name).await?;
    agreed(&seen).ok_or_else(|| {
        StepError::failed("all Sentinels naming one master", describe(&seen), "SENTINEL get-master-addr-by-name")
    })
}

/// The master all Sentinels agree on, if they do (and there are any).
pub(super) fn agreed(seen: &[(String, Option<String>)]) -> Option<String> {
    let first = seen.first()?.1.clone()?;
    seen.iter().all(|(_, ip)| ip.as_deref() == Some(first.as_str())).then_some(first)
}

pub(super) fn describe(seen: &[(String, Option<String>)]) -> String {
    seen.iter().map(|(p, ip)| format!("{p}: {}", ip.as_deref().unwrap_or("?"))).collect::<Vec<_>>().join(", ")
}

/// Whether an address Redis or Sentinel reports (an IP, or a pod's DNS name
/// like `redis-0.redis.ns.svc.cluster.local`) names this pod.
pub fn names_pod(addr: &str, pod: &Value) -> bool {
    let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    !addr.is_empty() && (addr == ip || addr.split('.').next() == Some(name) && addr.contains('.'))
}

/// The restart drill: a Sentinel goes and comes back; the master stays.
pub async fn restart(ctx: &Ctx, drill: &SentinelRestart, timeout: Duration) -> Result<Done, StepError> {
    let port = drill.sentinel_port.unwrap_or(SENTINEL_PORT);
    let name = ctx.render(&drill.master_name);
    let mut log = Vec::new();
    let master = agreed_master(ctx, &drill.sentinels, port, &name).await?;
    let victim = ctx
        .running_pods(&drill.sentinel)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| failed("a Running Sentinel pod".into(), "none".into(), "pods", &[]))?;
    let victim_name = victim["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let ns = victim["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace).to_string();
    log.push(format!("master before: {master}; deleting {victim_name}"));
    let (pods, _, _) = ctx.api(Some("v1"), "Pod", Some(&ns)).await?;
    pods.delete(&victim_name, &DeleteParams::default()).await?;
    ctx.mark(format!("Sentinel pod {victim_name} deleted"));
    let back = Poller::new(timeout)
        .until(async |elapsed| {
            let back = ctx
                .running_pods(&drill.sentinel)
                .await?
                .into_iter()
                .find(|p| p["metadata"]["uid"] != victim["metadata"]["uid"]);
            let Some(back) = back else { return Ok(Probe::NotYet("not back".into())) };
            let Ok(mut conn) = connect(ctx, &back, port, None).await else {
                return Ok(Probe::NotYet("back, not answering".into()));
            };
            let Ok(reply) = query(&mut conn, &["SENTINEL".into(), "master".into(), name.clone()]).await else {
                return Ok(Probe::NotYet("back, SENTINEL master not answered".into()));
            };
            let others = field(&to_value(&reply), "num-other-sentinels");
            let seen = format!("back, knowing {} other Sentinels", super::expect::show(others.as_ref()));
            ctx.progress(&format!("{victim_name} {seen}"));
            Ok::<_, StepError>(if others.as_ref().is_some_and(|v| super::expect::values_equal(&Value::from(2), v)) {
                Probe::Ready(elapsed)
            } else {
                Probe::NotYet(seen)
            })
        })
        .await?;
    let after = match back {
        Ok(after) => after,
        Err(timed_out) => {
            return Err(failed(
                format!("{victim_name} back and seeing 2 other Sentinels within {}s", timeout.as_secs()),
                timed_out.last,
                "SENTINEL master",
                &log,
            ));
        }
    };
    ctx.mark(format!("{victim_name} back, seeing 2 other Sentinels"));
    let seen = masters_seen(ctx, &drill.sentinels, port, &name).await?;
    log.push(format!("{victim_name} back and sees 2 other Sentinels after {} ms", after.as_millis()));
    log.push(format!("master after: {}", describe(&seen)));
    let mut done = Done { output: log.join("\n"), ..Done::default() };
    done.measure("sentinel back", after.as_millis() as f64, "ms");
    match agreed(&seen) {
        Some(ip) if ip == master => Ok(done),
        _ => Err(failed(
            format!("the master unchanged ({master})"),
            describe(&seen),
            "SENTINEL get-master-addr-by-name",
            &log,
        )),
    }
}

/// `replication`: one master, the expected replicas linked to it.
pub async fn replication(ctx: &Ctx, step: &Replication) -> Result<Done, StepError> {
    let pods = ctx.running_pods(&step.pods).await?;
    let ns = pods.first().and_then(|p| p["metadata"]["namespace"].as_str()).unwrap_or(&ctx.namespace).to_string();
    let pass = match &step.auth {
        Some(a) => Some(password(ctx, a, pods.first(), &ns).await?),
        None => None,
    };
    let mut lines = Vec::new();
    let mut masters = Vec::new();
    let mut replicas = Vec::new();
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default().to_string();
        let info = match connect(ctx, pod, 6379, pass.clone()).await {
            Ok(mut conn) => query(&mut conn, &["INFO".into(), "replication".into()]).await.map(|r| to_value(&r)).ok(),
            Err(_) => None,
        };
        let Some(info) = info else {
            lines.push(format!("{name} ({ip}): no answer"));
            continue;
        };
        let get = |k: &str| super::expect::show(field(&info, k).as_ref());
        match get("role").as_str() {
            "master" => {
                lines.push(format!("{name} ({ip}): master, {} connected replica(s)", get("connected_slaves")));
                masters.push((name, ip, get("connected_slaves")));
            }
            "slave" => {
                lines.push(format!(
                    "{name} ({ip}): replica of {}, link {}",
                    get("master_host"),
                    get("master_link_status")
                ));
                replicas.push((name, get("master_host"), get("master_link_status")));
            }
            other => lines.push(format!("{name} ({ip}): {other}")),
        }
    }
    let output = ctx.redact(&lines.join("\n"));
    let want = step.replicas;
    let fail = |actual: String| StepError::Failed {
        expected: format!("one master with {want} replicas, each linked to it (master_link_status:up)"),
        actual,
        looked_at: format!("INFO replication on {}", ctx.describe_pod(&step.pods)),
        output: output.clone(),
        diagnostics: None,
    };
    let [(master, master_ip, connected)] = masters.as_slice() else {
        return Err(fail(format!("{} masters", masters.len())));
    };
    let broken: Vec<String> = replicas
        .iter()
        .filter(|(_, host, link)| {
            let master_pod =
                pods.iter().find(|p| p["metadata"]["name"] == master.as_str()).cloned().unwrap_or_default();
            !(host == master_ip || names_pod(host, &master_pod)) || link != "up"
        })
        .map(|(name, host, link)| format!("{name}: master {host}, link {link}"))
        .collect();
    if !broken.is_empty() {
        return Err(fail(broken.join("; ")));
    }
    if replicas.len() != want as usize || connected.parse::<u32>().ok() != Some(want) {
        return Err(fail(format!("{} linked replicas; {master} reports {connected} connected", replicas.len())));
    }
    if step.write_probe {
        let master_pod = pods.iter().find(|p| p["metadata"]["name"] == master.as_str()).cloned().unwrap_or_default();
        let stamp = format!(
            "{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        );
        let mut conn = connect(ctx, &master_pod, 6379, pass.clone()).await?;
        query(&mut conn, &["SET".into(), "runbook:probe".into(), stamp.clone()])
            .await
            .map_err(StepError::from_source)?;
        query(&mut conn, &["WAIT".into(), want.to_string(), "5000".into()]).await.map_err(StepError::from_source)?;
        for pod in pods.iter().filter(|p| p["metadata"]["name"] != master.as_str()) {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let mut conn = connect(ctx, pod, 6379, pass.clone()).await?;
            let got =
                query(&mut conn, &["GET".into(), "runbook:probe".into()]).await.map_err(StepError::from_source)?;
            if to_value(&got) != Value::String(stamp.clone()) {
                return Err(fail(format!("a write on {master} did not reach {name}")));
            }
        }
        return Ok(Done {
            output: format!("{output}\nwrite on {master} read back on every replica"),
            ..Done::default()
        });
    }
    Ok(Done { output, ..Done::default() })
}

/// `sentinels`: every Sentinel knows the master, its replicas and the other Sentinels.
pub async fn sentinels(ctx: &Ctx, step: &Sentinels) -> Result<Done, StepError> {
    let port = step.port.unwrap_or(SENTINEL_PORT);
    let name = ctx.render(&step.master_name);
    let quorum = step.quorum.value(&|t| ctx.render(t)).map_err(StepError::Invalid)?;
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let pods = ctx.running_pods(&step.pods).await?;
    for pod in &pods {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let Ok(mut conn) = connect(ctx, pod, port, None).await else {
            problems.push(format!("{pod_name}: no answer"));
            continue;
        };
        let master = query(&mut conn, &["SENTINEL".into(), "master".into(), name.clone()])
            .await
            .map(|r| to_value(&r))
            .unwrap_or_default();
        let get = |k: &str| super::expect::show(field(&master, k).as_ref());
        let ckquorum = query(&mut conn, &["SENTINEL".into(), "ckquorum".into(), name.clone()])
            .await
            .map(|r| super::redis_client::show(&r, 0))
            .unwrap_or_default();
        lines.push(format!(
            "{pod_name}: master {}:{}, {} replicas, {} other sentinels, quorum {}, ckquorum: {ckquorum}",
            get("ip"),
            get("port"),
            get("num-slaves"),
            get("num-other-sentinels"),
            get("quorum")
        ));
        for (key, want) in
            [("num-slaves", step.replicas), ("num-other-sentinels", step.other_sentinels), ("quorum", quorum)]
        {
            if get(key) != want.to_string() {
                problems.push(format!("{pod_name}: {key}={}", get(key)));
            }
        }
        if !ckquorum.starts_with("OK") {
            problems.push(format!("{pod_name}: {ckquorum}"));
        }
    }
    let seen = masters_seen(ctx, &step.pods, port, &name).await?;
    if agreed(&seen).is_none() {
        problems.push(format!("they disagree on the master: {}", describe(&seen)));
    }
    let output = lines.join("\n");
    if pods.is_empty() || !problems.is_empty() {
        return Err(StepError::Failed {
            expected: format!(
                "every Sentinel: the master, {} replicas, {} other Sentinels, quorum {quorum} reachable",
                step.replicas, step.other_sentinels
            ),
            actual: if pods.is_empty() { "no Running Sentinel".into() } else { problems.join("; ") },
            looked_at: format!("SENTINEL master/ckquorum {name} on {}", ctx.describe_pod(&step.pods)),
            output,
            diagnostics: None,
        });
    }
    Ok(Done { output, ..Done::default() })
}

/// `sentinelReset`: `SENTINEL RESET` on every Sentinel that lists a replica
/// or a Sentinel it has found down (an address a pod left behind when it
/// came back with a new IP), one at a time. Each waits until it has heard
/// another Sentinel again (hello messages, every 2 s) before the next
/// forgets, so the group never loses its quorum. A Sentinel with nothing
/// stale is left alone: a reset also forgets the live replicas, which come
/// back only on the master's next INFO (every 10 s), so needless resets cost
/// up to 10 s each. The step does not wait for the replicas (that cost
/// 24-29 s for three, one by one).
pub async fn reset(ctx: &Ctx, step: &SentinelReset) -> Result<Done, StepError> {
    let port = step.port.unwrap_or(SENTINEL_PORT);
    let name = ctx.render(&step.master_name);
    let mut lines = Vec::new();
    let pods = ctx.running_pods(&step.pods).await?;
    let alone = pods.len() < 2;
    for pod in &pods {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut conn = connect(ctx, pod, port, None).await?;
        let stale = stale_instances(&mut conn, &name, &pods).await;
        if stale.is_empty() {
            lines.push(format!("{pod_name}: no replica or Sentinel down, not reset"));
            continue;
        }
        let reply = query(&mut conn, &["SENTINEL".into(), "reset".into(), name.clone()])
            .await
            .map_err(StepError::from_source)?;
        lines.push(format!(
            "{pod_name}: lists {}; SENTINEL RESET {name} -> {}",
            stale.join(", "),
            super::redis_client::show(&reply, 0)
        ));
        if alone {
            continue;
        }
        let heard = Poller::new(RESET_PATIENCE)
            .every(Duration::from_millis(100))
            .until(async |elapsed| {
                let master = query(&mut conn, &["SENTINEL".into(), "master".into(), name.clone()])
                    .await
                    .map(|r| to_value(&r))
                    .unwrap_or_default();
                Ok::<_, StepError>(match field(&master, "num-other-sentinels") {
                    Some(v) if v != Value::String("0".into()) => Probe::Ready(elapsed),
                    _ => Probe::NotYet("has heard no other Sentinel yet".into()),
                })
            })
            .await?;
        match heard {
            Ok(after) => {
                lines.push(format!("{pod_name}: heard the other Sentinels again after {:.1}s", after.as_secs_f64()))
            }
            Err(_) => lines
                .push(format!("{pod_name}: heard no other Sentinel within {}s (continuing)", RESET_PATIENCE.as_secs())),
        }
    }
    Ok(Done { output: lines.join("\n"), ..Done::default() })
}

/// The replicas and Sentinels a Sentinel lists that are gone, as `replica
/// IP:PORT (why)`: found down (`s_down`), or, for a Sentinel, at an address
/// no Sentinel pod has (a replaced pod is forgotten before the others have
/// waited down-after-milliseconds to find it down). An unanswered question
/// counts as nothing stale: SENTINEL RESET would fail the same way.
async fn stale_instances(
    conn: &mut redis::aio::MultiplexedConnection,
    name: &str,
    sentinel_pods: &[Value],
) -> Vec<String> {
    let mut stale = Vec::new();
    for (command, what) in [("replicas", "replica"), ("sentinels", "sentinel")] {
        let Ok(reply) = query(conn, &["SENTINEL".into(), command.into(), name.into()]).await else { continue };
        let Value::Array(instances) = to_value(&reply) else { continue };
        for instance in &instances {
            let text = |k: &str| field(instance, k).and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            let ip = text("ip");
            let why = if text("flags").split(',').any(|f| f == "s_down") {
                "down"
            } else if what == "sentinel" && !sentinel_pods.iter().any(|p| names_pod(&ip, p)) {
                "no Sentinel pod there"
            } else {
                continue;
            };
            stale.push(format!("{what} {ip}:{} ({why})", text("port")));
        }
    }
    stale
}

/// How long a reset Sentinel is given to hear the others (hello messages
/// every 2 s) before the next one is reset anyway.
const RESET_PATIENCE: Duration = Duration::from_secs(10);

//! HTTP against a Service's LoadBalancer address, from outside the cluster as a
//! user reaches it: single checks (`n` requests → count `n`) and load drills that
//! count every failed request and measure latency while a pod is deleted or a
//! rolling update runs. Load is bounded in requests and time, and goes only to
//! the address in the Service's status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::context::Ctx;
use super::{Done, StepError, autoscale, expect};
use crate::k8s::conditions;
use crate::poll::{Poller, Probe};
use crate::report::event::{Traffic, epoch_ms};
use crate::scenario::{Http, HttpLoad, ObjectRef};

/// One GET with a fresh connection (`Connection: close`): status, body, latency.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String, Duration), String> {
    let started = Instant::now();
    // Which phase a request that times out was in tells a slow accept from a
    // slow reply.
    let connected = std::sync::atomic::AtomicBool::new(false);
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        connected.store(true, Ordering::Relaxed);
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: runbook\r\n\r\n");
        conn.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&reply).into_owned();
        let status: u16 =
            text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("not HTTP: {text:?}"))?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        let phase = if connected.load(Ordering::Relaxed) { "no reply" } else { "connecting" };
        format!("timed out after {timeout:?} ({phase})")
    })??;
    Ok((status, body, started.elapsed()))
}

/// The LoadBalancer address of a Service: ingress IP and the first port.
async fn address(ctx: &Ctx, service: &ObjectRef) -> Result<SocketAddr, StepError> {
    let obj = ObjectRef { kind: "Service".into(), ..service.clone() };
    let svc = ctx.find(&obj).await?.ok_or_else(|| {
        StepError::failed(
            "the Service to exist",
            "not found",
            format!("service {}", ctx.render(service.name.as_deref().unwrap_or_default())),
        )
    })?;
    let ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"].as_str().unwrap_or_default();
    let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap_or(80);
    format!("{ip}:{port}").parse().map_err(|_| {
        StepError::failed(
            "a LoadBalancer address in the Service's status",
            format!("{:?}", svc["status"]["loadBalancer"]),
            "status.loadBalancer.ingress",
        )
    })
}

/// How long a LoadBalancer address may refuse connections after it appears
/// in the Service's status. On a real cluster the address is published
/// before every node routes it (kube-proxy programs it moments later; a cloud
/// balancer takes longer), so the first request must not be the first try.
const LOAD_BALANCER_SETTLE: Duration = Duration::from_secs(30);

/// Waits until `addr` accepts a TCP connection (a bare connect: no request
/// is sent, so nothing is counted), or says what the last attempt found.
async fn reachable(addr: SocketAddr, within: Duration) -> Result<(), String> {
    let waited = Poller::new(within)
        .every(Duration::from_millis(20))
        .backing_off_to(Duration::from_millis(500))
        .until(async |_| {
            let attempt = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
            Ok::<_, std::convert::Infallible>(match attempt {
                Ok(Ok(_)) => Probe::Ready(()),
                Ok(Err(e)) => Probe::NotYet(format!("connect {addr}: {e}")),
                Err(_) => Probe::NotYet(format!("connect {addr}: timed out")),
            })
        })
        .await;
    match waited {
        Ok(Ok(())) => Ok(()),
        Ok(Err(timed_out)) => Err(format!("{} (still, after {within:?})", timed_out.last)),
        Err(never) => match never {},
    }
}

/// `http`: GET `path` `repeat` times; every status as expected, the last body compared.
pub async fn check(ctx: &Ctx, step: &Http) -> Result<Done, StepError> {
    let addr = address(ctx, &step.service).await?;
    let path = ctx.render(&step.path);
    let repeat =
        step.repeat.as_ref().map(|r| r.value(&|t| ctx.render(t))).transpose().map_err(StepError::Invalid)?.unwrap_or(1);
    let want = step.status.unwrap_or(200);
    let looked_at = format!("GET http://{addr}{path} ×{repeat}");
    reachable(addr, LOAD_BALANCER_SETTLE)
        .await
        .map_err(|e| StepError::failed(format!("HTTP {want}"), e, looked_at.clone()))?;
    let mut last = String::new();
    for i in 0..repeat {
        let (status, body, _) = get(addr, &path, Duration::from_secs(10))
            .await
            .map_err(|e| StepError::failed(format!("HTTP {want}"), e, looked_at.clone()))?;
        if status != want {
            return Err(StepError::Failed {
                expected: format!("HTTP {want}"),
                actual: format!("HTTP {status} on request {}: {}", i + 1, body.trim()),
                looked_at,
                output: body,
                diagnostics: None,
            });
        }
        last = body.trim().to_string();
    }
    let value = Value::String(last.clone());
    expect::compare(&step.expect, Some(&value), &|s| ctx.render(s)).map_err(|m| StepError::Failed {
        expected: m.expected,
        actual: m.actual,
        looked_at: looked_at.clone(),
        output: last.clone(),
        diagnostics: None,
    })?;
    Ok(Done {
        output: format!("{repeat} request(s) to http://{addr}{path}; last answer: {last}"),
        looked_at: Some(looked_at),
        ..Done::default()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The interval a drill's traffic is counted in, for its chart.
const TRAFFIC_INTERVAL_MS: u64 = 500;

/// Consecutive successful requests that make a service steady before a drill.
const STEADY_REQUESTS: u32 = 20;
/// How long a drill waits for its service to be steady.
const STEADY_WITHIN: Duration = Duration::from_secs(30);

/// Waits until `STEADY_REQUESTS` GETs in a row succeed, so that a drill
/// measures its disruption and not the tail of an earlier one (after a Redis
/// restart, a real cluster routes the Service to the new pod moments after the
/// pod is Ready). Returns how many requests failed on the way.
async fn steady(addr: SocketAddr, path: &str, within: Duration) -> Result<u32, String> {
    let started = Instant::now();
    let (mut in_a_row, mut failed) = (0, 0);
    let mut last_error = String::new();
    while in_a_row < STEADY_REQUESTS {
        if started.elapsed() > within {
            return Err(format!("no {STEADY_REQUESTS} successful requests in a row within {within:?}: {last_error}"));
        }
        match get(addr, path, Duration::from_secs(5)).await {
            Ok((200, _, _)) => in_a_row += 1,
            outcome => {
                in_a_row = 0;
                failed += 1;
                last_error = match outcome {
                    Ok((status, body, _)) => format!("HTTP {status}: {}", body.trim()),
                    Err(e) => e,
                };
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(failed)
}

/// `httpLoad`: bounded load during a disruption; every failed request counts.
pub async fn load(
    ctx: &Ctx,
    step: &HttpLoad,
    limit: Duration,
    settle: Duration,
    scale_in: Duration,
) -> Result<Done, StepError> {
    let addr = address(ctx, &step.service).await?;
    let path = ctx.render(&step.path);
    // Steadiness covers reachability: a refused connection is a failed request on the way.
    let warm_up = steady(addr, &path, STEADY_WITHIN)
        .await
        .map_err(|e| StepError::failed("a steady service before the drill", e, format!("GET http://{addr}{path}")))?;
    let scaling = match &step.autoscale {
        Some(autoscale) => Some(autoscale::Target::of(ctx, &autoscale.hpa).await?),
        None => None,
    };
    let concurrency = step.concurrency.unwrap_or(4).clamp(1, 64);
    // An autoscaling drill's load lasts until the HPA acts: bounded by time only.
    let max_requests = step.max_requests.unwrap_or(if scaling.is_some() { u32::MAX } else { 20_000 });
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (stop, sent, path) = (stop.clone(), sent.clone(), path.clone());
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut failures, mut outcomes) = (Vec::new(), Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed)
                && started.elapsed() < limit
                && sent.fetch_add(1, Ordering::Relaxed) < max_requests
            {
                let outcome = get(addr, &path, Duration::from_secs(5)).await;
                outcomes.push((epoch_ms(), matches!(outcome, Ok((200, _, _)))));
                match outcome {
                    Ok((200, _, took)) => latencies.push(took),
                    Ok((status, body, _)) => failures.push(format!("HTTP {status}: {}", body.trim())),
                    Err(e) => failures.push(e),
                }
            }
            (latencies, failures, outcomes)
        }));
    }
    ctx.mark(format!("load begins: {concurrency} clients"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut log = vec![
        format!("steady before the drill: {STEADY_REQUESTS} requests in a row answered ({warm_up} failed on the way)"),
        format!("load: {concurrency} clients on http://{addr}{path}"),
    ];
    let mut scaled_out = None;
    let disruption = match &scaling {
        Some(target) => target.scaled_out(ctx, started, limit.saturating_sub(started.elapsed())).await.map(|secs| {
            ctx.mark(format!("more than {} Ready replicas", target.baseline));
            log.push(format!("more than {} Ready replicas after {secs:.1}s of load", target.baseline));
            scaled_out = Some(secs);
        }),
        None => disrupt(ctx, step, &mut log).await,
    };
    tokio::time::sleep(settle).await;
    let reached = match &scaling {
        Some(target) if scaled_out.is_some() => Some(target.replicas(ctx).await?),
        _ => None,
    };
    stop.store(true, Ordering::Relaxed);
    ctx.mark("load ends");
    let (mut latencies, mut failures, mut outcomes) = (Vec::new(), Vec::new(), Vec::new());
    for w in workers {
        if let Ok((l, f, o)) = w.await {
            latencies.extend(l);
            failures.extend(f);
            outcomes.extend(o);
        }
    }
    ctx.keep_traffic(Traffic::count("requests", &outcomes, TRAFFIC_INTERVAL_MS));
    disruption?;
    latencies.sort();
    let total = latencies.len() + failures.len();
    let mut done = Done::default();
    done.measure("requests", total as f64, "requests");
    done.measure("failed requests", failures.len() as f64, "requests");
    done.measure("latency p50", percentile(&latencies, 0.50), "ms");
    done.measure("latency p95", percentile(&latencies, 0.95), "ms");
    done.measure("latency p99", percentile(&latencies, 0.99), "ms");
    done.measure("latency max", percentile(&latencies, 1.0), "ms");
    if let (Some(secs), Some(replicas)) = (scaled_out, reached) {
        done.measure("scale-out time", secs * 1000.0, "ms");
        done.measure("replicas reached", replicas as f64, "replicas");
        log.push(format!("the HPA asks for {replicas} replicas as the load ends"));
    }
    log.push(format!(
        "{total} requests in {:.1}s, {} failed; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        started.elapsed().as_secs_f64(),
        failures.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99)
    ));
    done.output = log.join("\n");
    if !failures.is_empty() {
        ctx.keep_measurements(&done.measurements);
        let mut kinds = failures.clone();
        kinds.sort();
        kinds.dedup();
        return Err(StepError::Failed {
            expected: "no failed request".into(),
            actual: format!(
                "{} of {total} failed: {}",
                failures.len(),
                kinds.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
            looked_at: format!("GET http://{addr}{path}"),
            output: done.output,
            diagnostics: None,
        });
    }
    if let Some(target) = scaling.as_ref().filter(|_| !scale_in.is_zero()) {
        match target.scaled_in(ctx, scale_in).await {
            Ok(secs) => {
                ctx.mark("back to its minimum replicas");
                done.measure("scale-in time", secs * 1000.0, "ms");
                done.output.push_str(&format!("\nback to its minimum {secs:.1}s after the load"));
            }
            Err(e) => {
                ctx.keep_measurements(&done.measurements);
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// Deletes a pod or runs a rolling update, and waits until it settled.
async fn disrupt(ctx: &Ctx, step: &HttpLoad, log: &mut Vec<String>) -> Result<(), StepError> {
    if let Some(pod) = &step.delete_pod {
        let pods = ctx.pods(pod).await?;
        let victim = pods.iter().find(|p| conditions::pod_running(p)).ok_or_else(|| {
            StepError::failed(format!("a Running {}", ctx.describe_pod(pod)), "none", ctx.describe_pod(pod))
        })?;
        let name = victim["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ns = victim["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace).to_string();
        let (api, _, _) = ctx.api(Some("v1"), "Pod", Some(&ns)).await?;
        api.delete(&name, &DeleteParams::default()).await?;
        ctx.mark(format!("pod {name} deleted"));
        log.push(format!("deleted pod {name}"));
        // Settled when as many pods are Ready as before, none of them the victim.
        let want = pods.iter().filter(|p| conditions::pod_ready(p)).count();
        let settled = Poller::new(Duration::from_secs(60))
            .until(async |_| {
                let now = ctx.pods(pod).await?;
                let ready =
                    now.iter().filter(|p| conditions::pod_ready(p) && p["metadata"]["name"] != name.as_str()).count();
                Ok::<_, StepError>(if ready >= want {
                    Probe::Ready(())
                } else {
                    Probe::NotYet(format!("{ready} of {want} Ready"))
                })
            })
            .await?;
        return match settled {
            Ok(()) => {
                ctx.mark(format!("{want} pods Ready again"));
                log.push(format!("{want} pods Ready again"));
                Ok(())
            }
            Err(timed_out) => Err(StepError::failed(
                format!("{want} Ready pods again within 60s"),
                timed_out.last,
                ctx.describe_pod(pod),
            )),
        };
    }
    if let Some(deployment) = &step.rolling_update {
        let name = ctx.render(deployment);
        let (api, _, _) = ctx.api(Some("apps/v1"), "Deployment", None).await?;
        let current = api.get(&name).await?;
        let value = serde_json::to_value(&current).unwrap_or_default();
        let container =
            value["spec"]["template"]["spec"]["containers"][0]["name"].as_str().unwrap_or_default().to_string();
        let stamp = crate::k8s::timestamp_now();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": container, "env": [{"name": "UPDATE_TIMESTAMP", "value": stamp}]}]}}}});
        api.patch(&name, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
        ctx.mark("rolling update begins");
        log.push(format!("kubectl set env deployment/{name} UPDATE_TIMESTAMP=\"{stamp}\""));
        // The same wait as a `wait: {rollout: …}` step.
        let deployment = ObjectRef {
            kind: "Deployment".into(),
            api_version: Some("apps/v1".into()),
            name: Some(name.clone()),
            selector: None,
            namespace: None,
        };
        super::wait::rollout(ctx, &deployment, crate::scenario::action::WAIT_TIMEOUT).await?;
        ctx.mark("rolled out");
        log.push(format!("deployment \"{name}\" successfully rolled out"));
        return Ok(());
    }
    Err(StepError::Invalid("httpLoad needs deletePod, rollingUpdate or autoscale".into()))
}

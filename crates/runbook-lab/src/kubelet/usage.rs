//! Usage measured the way the kubelet's stats provider measures it: each
//! container's cgroup is sampled every second (CPU time used, memory working
//! set), and the CPU rate is the CPU time used over the last samples'
//! window (up to 10 s). The node's usage is the host's (`/proc/stat`,
//! `/proc/meminfo`): the lab's node is this machine.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::metrics::{ContainerUsage, MetricsSource, NodeUsage, PodUsage};
use crate::api::objects;

use super::KubeletCtx;

/// How often containers are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The longest window a CPU rate is averaged over.
const WINDOW: Duration = Duration::from_secs(10);

/// One sample: when, CPU nanoseconds used so far, memory in bytes.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    cpu_ns: u64,
    memory: u64,
}

/// The samples of every running container and of the node.
#[derive(Default)]
pub struct Usage {
    /// By (pod uid, container name).
    containers: Mutex<HashMap<(String, String), VecDeque<Sample>>>,
    node: Mutex<VecDeque<Sample>>,
    /// The time of the newest round, as the API writes it.
    stamp: Mutex<String>,
}

impl Usage {
    /// Samples every container of every running pod, and the node, once.
    pub fn sample(&self, ctx: &KubeletCtx) {
        let now = Instant::now();
        let mut seen = Vec::new();
        let handles: Vec<_> = ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let mut all = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        for handle in handles {
            let uid = handle.uid.clone();
            let names: Vec<String> = {
                let view = handle.view.lock().unwrap_or_else(|e| e.into_inner());
                view.containers.iter().filter(|c| c.is_running()).map(|c| c.name.clone()).collect()
            };
            for name in names {
                let Some(cgroup) = ctx.cgroups.existing(&uid, &name) else { continue };
                let (Some(cpu_ns), Some(memory)) = (cgroup.cpu_usage_ns(), cgroup.working_set_bytes()) else {
                    continue;
                };
                seen.push((uid.clone(), name.clone()));
                push(all.entry((uid.clone(), name)).or_default(), Sample { at: now, cpu_ns, memory }, now);
            }
        }
        all.retain(|key, _| seen.contains(key));
        drop(all);
        if let Some((cpu_ns, memory)) = host_usage() {
            push(&mut self.node.lock().unwrap_or_else(|e| e.into_inner()), Sample { at: now, cpu_ns, memory }, now);
        }
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = objects::now();
    }

    /// Runs [`Usage::sample`] every second until the lab stops.
    pub async fn run(self: Arc<Self>, ctx: Arc<KubeletCtx>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SAMPLE_EVERY) => self.sample(&ctx),
                _ = ctx.shutdown.cancelled() => return,
            }
        }
    }
}

fn push(samples: &mut VecDeque<Sample>, sample: Sample, now: Instant) {
    samples.push_back(sample);
    while samples.front().is_some_and(|s| now.duration_since(s.at) > WINDOW) {
        samples.pop_front();
    }
}

/// CPU in nanocores and the newest memory, over the samples held; None
/// before two samples a rate can be taken from.
fn rate(samples: &VecDeque<Sample>) -> Option<(u64, u64, f64)> {
    let (first, last) = (samples.front()?, samples.back()?);
    let span = last.at.duration_since(first.at).as_secs_f64();
    if span < 0.5 {
        return None;
    }
    let nanocores = (last.cpu_ns.saturating_sub(first.cpu_ns) as f64 / span) as u64;
    Some((nanocores, last.memory, span))
}

impl MetricsSource for Usage {
    fn pods(&self) -> Vec<PodUsage> {
        let stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let all = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_pod: HashMap<&str, PodUsage> = HashMap::new();
        for ((uid, name), samples) in all.iter() {
            let Some((cpu_nanocores, memory_bytes, window_secs)) = rate(samples) else { continue };
            let pod = by_pod.entry(uid).or_insert_with(|| PodUsage {
                uid: uid.clone(),
                timestamp: stamp.clone(),
                window_secs,
                containers: vec![],
            });
            pod.window_secs = pod.window_secs.min(window_secs);
            pod.containers.push(ContainerUsage { name: name.clone(), cpu_nanocores, memory_bytes });
        }
        let mut pods: Vec<PodUsage> = by_pod.into_values().collect();
        for pod in &mut pods {
            pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
        }
        pods
    }

    fn node(&self) -> Option<NodeUsage> {
        let (cpu_nanocores, memory_bytes, window_secs) = rate(&self.node.lock().unwrap_or_else(|e| e.into_inner()))?;
        let timestamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Some(NodeUsage { timestamp, window_secs, cpu_nanocores, memory_bytes })
    }
}

/// The host's CPU time used by all cores (nanoseconds) and memory in use
/// (total less available).
fn host_usage() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy_ticks: u64 = cpu.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    let ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??.max(1) as u64;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| -> Option<u64> {
        meminfo.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
    };
    let used = kib("MemTotal:")?.saturating_sub(kib("MemAvailable:")?) * 1024;
    Some((busy_ticks * 1_000_000_000 / ticks_per_sec, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_rate_is_time_used_over_the_window() {
        let start = Instant::now();
        let mut samples = VecDeque::new();
        samples.push_back(Sample { at: start, cpu_ns: 1_000_000_000, memory: 10 });
        assert_eq!(rate(&samples), None, "one sample has no rate");
        samples.push_back(Sample { at: start + Duration::from_secs(2), cpu_ns: 2_000_000_000, memory: 20 });
        assert_eq!(rate(&samples), Some((500_000_000, 20, 2.0)), "1 s of CPU in 2 s: half a core");
    }

    #[test]
    fn samples_older_than_the_window_are_dropped() {
        let start = Instant::now();
        let mut samples = VecDeque::new();
        for s in 0..15 {
            let at = start + Duration::from_secs(s);
            push(&mut samples, Sample { at, cpu_ns: s * 1000, memory: 0 }, at);
        }
        assert_eq!(samples.len(), 11, "10 s of samples, both ends included");
    }
}

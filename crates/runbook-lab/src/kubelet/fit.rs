//! The scheduler's resource check on a lab node (NodeResourcesFit): a pod
//! whose CPU or memory requests do not fit in what the node has left cannot
//! go there.

use serde_json::Value;

use runbook_units::Quantity;

/// What a pod asks for: the larger of its containers' sum and its largest
/// init container, as the scheduler computes it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// CPU in millicores.
    pub cpu_millis: i128,
    /// Memory in bytes.
    pub memory_bytes: i128,
}

fn amount(resources: &Value, name: &str) -> Request {
    let q = |v: &Value| v.as_str().map(String::from).or_else(|| v.as_number().map(|n| n.to_string()));
    let parse = |v: &Value| q(v).and_then(|t| Quantity::parse(&t).ok());
    Request {
        cpu_millis: parse(&resources[name]["cpu"]).map_or(0, |c| c.millis()),
        memory_bytes: parse(&resources[name]["memory"]).map_or(0, |m| m.units_ceil()),
    }
}

/// The pod's effective request.
pub fn request_of(pod: &Value) -> Request {
    let spec = &pod["spec"];
    let mut sum = Request::default();
    for c in spec["containers"].as_array().into_iter().flatten() {
        let r = amount(&c["resources"], "requests");
        sum.cpu_millis += r.cpu_millis;
        sum.memory_bytes += r.memory_bytes;
    }
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let r = amount(&c["resources"], "requests");
        sum.cpu_millis = sum.cpu_millis.max(r.cpu_millis);
        sum.memory_bytes = sum.memory_bytes.max(r.memory_bytes);
    }
    sum
}

/// The resources `pod` lacks on a node with `allocatable` already running
/// `placed` (pods bound there and not finished), as the scheduler's reasons
/// (`Insufficient cpu`); None when it fits.
pub fn shortfall(pod: &Value, allocatable: &Value, placed: &[&Value]) -> Option<Vec<String>> {
    let want = request_of(pod);
    let free = placed.iter().fold(amount(&serde_json::json!({"a": allocatable}), "a"), |left, p| {
        let used = request_of(p);
        Request { cpu_millis: left.cpu_millis - used.cpu_millis, memory_bytes: left.memory_bytes - used.memory_bytes }
    });
    let mut short = Vec::new();
    if want.cpu_millis > free.cpu_millis {
        short.push("Insufficient cpu".to_string());
    }
    if want.memory_bytes > free.memory_bytes {
        short.push("Insufficient memory".to_string());
    }
    (!short.is_empty()).then_some(short)
}

/// The node's memory in bytes (MemTotal), for its capacity.
pub fn host_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(cpu: &str, memory: &str) -> Value {
        json!({"spec": {"containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
    }

    #[test]
    fn requests_beyond_what_is_left_do_not_fit() {
        let node = json!({"cpu": "2", "memory": "4Gi"});
        assert_eq!(shortfall(&pod("1", "1Gi"), &node, &[]), None);
        assert_eq!(shortfall(&pod("100", "1Gi"), &node, &[]).unwrap(), ["Insufficient cpu"]);
        assert_eq!(shortfall(&pod("3", "5Gi"), &node, &[]).unwrap(), ["Insufficient cpu", "Insufficient memory"]);
        // What runs already counts.
        let running = pod("1500m", "1Gi");
        assert_eq!(shortfall(&pod("1", "1Gi"), &node, &[&running]).unwrap(), ["Insufficient cpu"]);
        // Init containers run one at a time, before the others.
        let init = json!({"spec": {"initContainers": [{"resources": {"requests": {"cpu": "2"}}}],
                                   "containers": [{"resources": {"requests": {"cpu": "500m"}}}]}});
        assert_eq!(request_of(&init).cpu_millis, 2000);
    }
}

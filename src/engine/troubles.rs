//! What pods go through while a wait waits for them: troubles that may pass
//! (a pull back-off while a registry recovers, a pod Unschedulable while its
//! claim binds) are reported and waited out for a while; troubles that will
//! not pass by waiting (a crash loop, an OOM kill, an image name that cannot
//! be pulled) end the wait at once with the container's own story, instead of
//! after the whole timeout.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

/// How long a pull back-off is waited out before the wait gives up.
pub const IMAGE_PULL_PATIENCE: Duration = Duration::from_secs(60);
/// How long a pod may stay Unschedulable before the wait gives up.
pub const UNSCHEDULABLE_PATIENCE: Duration = Duration::from_secs(45);
/// Restarts after which a CrashLoopBackOff is taken as final.
pub const CRASH_LOOP_RESTARTS: i64 = 2;

/// The troubles seen during one wait, with when each was first seen.
#[derive(Default)]
pub struct Troubles {
    first_seen: HashMap<String, Duration>,
}

impl Troubles {
    /// Looks at a pod `elapsed` into the wait: why waiting longer is
    /// pointless, if it is.
    pub fn hopeless(&mut self, pod: &Value, elapsed: Duration) -> Option<String> {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        for list in ["initContainerStatuses", "containerStatuses"] {
            for c in pod["status"][list].as_array().into_iter().flatten() {
                let container = c["name"].as_str().unwrap_or_default();
                let waiting = c["state"]["waiting"]["reason"].as_str().unwrap_or_default();
                let restarts = c["restartCount"].as_i64().unwrap_or(0);
                let last = &c["lastState"]["terminated"];
                let story = last_exit(last);
                let said = |what: String| format!("pod {name}, container {container}: {what}");
                if last["reason"].as_str() == Some("OOMKilled") || c["state"]["terminated"]["reason"] == "OOMKilled" {
                    return Some(said(format!(
                        "OOMKilled (the memory limit is too small for what it uses; for Redis, maxmemory must \
                         fit under the limit){}",
                        restarted(restarts)
                    )));
                }
                match waiting {
                    "CrashLoopBackOff" if restarts >= CRASH_LOOP_RESTARTS => {
                        return Some(said(format!("CrashLoopBackOff, restarted {restarts} times{story}")));
                    }
                    "InvalidImageName" | "ErrImageNeverPull" => {
                        let message = c["state"]["waiting"]["message"].as_str().unwrap_or_default();
                        return Some(said(format!("{waiting}: {message}")));
                    }
                    "ImagePullBackOff" | "ErrImagePull" => {
                        let key = format!("{name}/{container}/pull");
                        if self.persisted(&key, elapsed) >= IMAGE_PULL_PATIENCE {
                            let image = c["image"].as_str().unwrap_or_default();
                            return Some(said(format!(
                                "{waiting} for {}s: image {image} cannot be pulled",
                                IMAGE_PULL_PATIENCE.as_secs()
                            )));
                        }
                    }
                    _ => {}
                }
            }
        }
        let unschedulable = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "Unschedulable");
        if let Some(condition) = unschedulable
            && self.persisted(&format!("{name}/unschedulable"), elapsed) >= UNSCHEDULABLE_PATIENCE
        {
            let message = condition["message"].as_str().unwrap_or_default();
            return Some(format!("pod {name}: Unschedulable for {}s: {message}", UNSCHEDULABLE_PATIENCE.as_secs()));
        }
        None
    }

    /// How long a trouble has lasted, from when this wait first saw it.
    fn persisted(&mut self, key: &str, elapsed: Duration) -> Duration {
        elapsed.saturating_sub(*self.first_seen.entry(key.to_string()).or_insert(elapsed))
    }
}

/// How long a container that has restarted must stay up before its pod's
/// Ready counts: a crash-looping container without a readiness probe is
/// Ready for the instant it runs, and a wait must not pass in that instant.
pub const SETTLE_AFTER_RESTART: Duration = Duration::from_secs(5);

/// Why a Ready pod's readiness is not yet to be trusted: one of its
/// containers restarted less than [`SETTLE_AFTER_RESTART`] ago.
pub fn settling(pod: &Value) -> Option<String> {
    let now = jiff::Timestamp::now();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    pod["status"]["containerStatuses"].as_array().into_iter().flatten().find_map(|c| {
        let restarts = c["restartCount"].as_i64().unwrap_or(0);
        let started: jiff::Timestamp = c["state"]["running"]["startedAt"].as_str()?.parse().ok()?;
        let up = now.duration_since(started).unsigned_abs();
        (restarts > 0 && up < SETTLE_AFTER_RESTART).then(|| {
            format!(
                "pod {name}: container {} restarted {restarts} times, up {:.0}s; waiting to see it stay up",
                c["name"].as_str().unwrap_or_default(),
                up.as_secs_f64()
            )
        })
    })
}

fn last_exit(terminated: &Value) -> String {
    match (terminated["reason"].as_str(), terminated["exitCode"].as_i64()) {
        (Some(reason), Some(code)) => format!("; last exit: {reason}, code {code}"),
        (None, Some(code)) => format!("; last exit code {code}"),
        _ => String::new(),
    }
}

fn restarted(restarts: i64) -> String {
    match restarts {
        0 => String::new(),
        1 => ", restarted once".to_string(),
        n => format!(", restarted {n} times"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "redis-0"}, "status": status})
    }

    #[test]
    fn a_crash_loop_ends_the_wait_once_it_has_restarted_twice() {
        let mut t = Troubles::default();
        let looping = |restarts| {
            pod(json!({"containerStatuses": [{"name": "redis", "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}))
        };
        assert_eq!(t.hopeless(&looping(1), Duration::ZERO), None);
        assert_eq!(
            t.hopeless(&looping(2), Duration::ZERO).unwrap(),
            "pod redis-0, container redis: CrashLoopBackOff, restarted 2 times; last exit: Error, code 1"
        );
    }

    #[test]
    fn an_oom_kill_ends_the_wait_at_once() {
        let mut t = Troubles::default();
        let killed = pod(json!({"containerStatuses": [{"name": "redis", "restartCount": 1,
            "state": {"running": {}}, "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}));
        assert!(t.hopeless(&killed, Duration::ZERO).unwrap().contains("container redis: OOMKilled"));
    }

    #[test]
    fn a_container_that_just_restarted_is_not_trusted_yet() {
        let started = |ago: i64| {
            let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(ago);
            pod(json!({"containerStatuses": [{"name": "redis", "restartCount": 2,
                "state": {"running": {"startedAt": at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}}}]}))
        };
        assert!(settling(&started(1)).unwrap().starts_with("pod redis-0: container redis restarted 2 times"));
        assert_eq!(settling(&started(30)), None);
        let fresh = pod(json!({"containerStatuses": [{"name": "redis", "restartCount": 0,
            "state": {"running": {"startedAt": jiff::Timestamp::now().to_string()}}}]}));
        assert_eq!(settling(&fresh), None, "a first start is trusted at once");
    }

    #[test]
    fn pull_back_offs_and_unschedulable_pods_get_patience() {
        let mut t = Troubles::default();
        let pulling = pod(json!({"containerStatuses": [{"name": "redis", "image": "redis:nope",
            "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}));
        assert_eq!(t.hopeless(&pulling, Duration::from_secs(5)), None);
        assert_eq!(t.hopeless(&pulling, Duration::from_secs(60)), None);
        assert!(t.hopeless(&pulling, Duration::from_secs(65)).unwrap().contains("image redis:nope cannot be pulled"));
        let pending = pod(json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu."}]}));
        assert_eq!(t.hopeless(&pending, Duration::from_secs(1)), None);
        assert_eq!(
            t.hopeless(&pending, Duration::from_secs(46)).unwrap(),
            "pod redis-0: Unschedulable for 45s: 0/1 nodes are available: 1 Insufficient cpu."
        );
    }
}

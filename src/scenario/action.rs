//! What a step does, as a type: the file format (`StepFile`) names an action
//! by which one of its fields is set; a loaded step holds exactly one
//! [`Action`], with its durations parsed and their defaults applied here, so
//! every later use is an exhaustive `match` and a new action cannot be
//! half-wired. Adding a field to `StepFile` fails to compile until
//! [`Action::named_in`] handles it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::*;
use super::template;
use runbook_units::parse_duration;

/// How long a `wait` waits unless it says (`kubectl rollout status` waits
/// forever; a scenario should not).
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a `delete` waits for the object to be gone.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a Redis Cluster failover may take to recover.
pub const CLUSTER_FAILOVER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the Sentinels may take to agree on a new master.
pub const SENTINEL_FAILOVER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a restarted Sentinel may take to come back.
pub const SENTINEL_RESTART_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an `httpLoad` disruption may take to settle.
pub const HTTP_LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `httpLoad` keeps the load on after the disruption settled.
pub const HTTP_LOAD_SETTLE: Duration = Duration::from_secs(2);
/// How long a `partition` lasts unless it says (it always says: `for` is
/// required; this is what an unreadable one falls back to while the
/// problem is reported).
const PARTITION_DEFAULT: Duration = Duration::from_secs(10);
/// How long a partitioned group may take to converge once healed.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node taken down may take to be Ready again once back.
pub const NODE_BACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a `command` may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One step's action.
#[derive(Debug, Clone)]
pub enum Action {
    /// Server-side apply of manifests.
    Apply(Apply),
    /// Wait for a rollout, ready pods or a deletion.
    Wait { spec: Wait, timeout: Duration },
    /// A command in a pod, its output checked.
    Exec(Exec),
    /// A field of a live object compared.
    Assert(Assert),
    /// A Redis command through a port-forward, its reply checked.
    Redis(Redis),
    /// Delete an object and wait until it is gone.
    Delete { spec: Delete, timeout: Duration },
    /// A value read for later steps.
    Capture(Capture),
    /// A parameter filled with the name of what plays a role.
    Discover(Discover),
    /// Keys written to or read from Redis.
    RedisKeys(RedisKeys),
    /// Redis Cluster failover drill.
    ClusterFailover { spec: ClusterFailover, timeout: Duration },
    /// Sentinel failover drill.
    SentinelFailover { spec: SentinelFailover, timeout: Duration },
    /// A Sentinel restarted; the master must stay.
    SentinelRestart { spec: SentinelRestart, timeout: Duration },
    /// One master, its replicas linked.
    Replication(Replication),
    /// What every Sentinel says about a master.
    Sentinels(Sentinels),
    /// `SENTINEL RESET` on every Sentinel.
    SentinelReset(SentinelReset),
    /// A network partition between groups of pods, for `lasts`.
    Partition { spec: Partition, lasts: Duration },
    /// The Sentinel master cut off for `lasts`; convergence within `timeout`.
    SentinelPartition { spec: SentinelPartition, lasts: Duration, timeout: Duration },
    /// A lab node down for `lasts`; Ready again within `timeout`.
    NodeDown { spec: NodeDown, lasts: Duration, timeout: Duration },
    /// A Redis Cluster master faulted for `lasts`; converged within `timeout`.
    ClusterFault { spec: ClusterFault, lasts: Duration, timeout: Duration },
    /// HTTP GETs against a LoadBalancer.
    Http(Http),
    /// HTTP load kept on while a pod is deleted or a rollout runs.
    HttpLoad {
        /// The step's fields.
        spec: HttpLoad,
        /// How long the load may last.
        timeout: Duration,
        /// How long it goes on after the disruption settled.
        settle: Duration,
        /// `autoscale.scaleInWithin` (zero: not waited).
        scale_in: Duration,
    },
    /// A program run on the host, its output checked.
    Command { spec: HostCommand, timeout: Duration },
}

impl Action {
    /// Whether the action talks to pods (a port-forward, an exec, a request
    /// through a Service): it means nothing until the pods it needs are
    /// ready, so by default it needs the wait before it.
    pub fn talks_to_pods(&self) -> bool {
        !matches!(
            self,
            Action::Apply(_)
                | Action::Wait { .. }
                | Action::Assert(_)
                | Action::Delete { .. }
                | Action::Capture(_)
                | Action::Discover(_)
                | Action::Command { .. }
                | Action::NodeDown { .. }
        )
    }
}

/// Parses the durations of one action, noting every one that is not a
/// duration (all of them, not only the first). A duration may be a template
/// (`"{{ scale_in_within }}"`): it is rendered with the parameter values
/// first, so the same step reads differently with `--set`.
#[derive(Default)]
struct Durations<'a> {
    vars: Option<&'a Vars>,
    problems: Vec<String>,
}

/// Parameter values by name.
pub type Vars = BTreeMap<String, String>;

impl Durations<'_> {
    /// `text` parsed, or `default` when the step leaves it out.
    fn read(&mut self, field: &str, text: &Option<String>, default: Duration) -> Duration {
        let Some(text) = text.as_deref() else { return default };
        let rendered = match self.vars {
            Some(vars) if text.contains("{{") => template::render(text, vars).unwrap_or_else(|_| text.to_string()),
            _ => text.to_string(),
        };
        match parse_duration(&rendered) {
            Some(d) => d,
            None if rendered != text => {
                self.problems
                    .push(format!("{field} {text:?} is {rendered:?}, which is not a duration (90s, 2m, 500ms)"));
                default
            }
            None => {
                self.problems.push(format!("{field} {text:?} is not a duration (90s, 2m, 500ms)"));
                default
            }
        }
    }
}

impl Action {
    /// An action for every action field a step sets (exactly one is valid),
    /// durations read into `d`. Every field of `StepFile` is named here (no
    /// `..`): a new one does not compile until it is placed, and one named
    /// but not used is an unused variable, which CI's clippy refuses.
    fn every_in(step: &StepFile, d: &mut Durations) -> Vec<Action> {
        let StepFile {
            id: _,
            title: _,
            explanation: _,
            kind: _,
            points: _,
            hint: _,
            requirement: _,
            seed: _,
            unless: _,
            needs: _,
            retry_for: _,
            on_failure: _,
            apply,
            wait,
            exec,
            assert,
            redis,
            delete,
            capture,
            discover,
            redis_keys,
            cluster_failover,
            sentinel_failover,
            sentinel_restart,
            replication,
            sentinels,
            http,
            http_load,
            sentinel_reset,
            partition,
            sentinel_partition,
            node_down,
            cluster_fault,
            command,
        } = step.clone();
        [
            apply.map(Action::Apply),
            wait.map(|spec| Action::Wait { timeout: d.read("wait.timeout", &spec.timeout, WAIT_TIMEOUT), spec }),
            exec.map(Action::Exec),
            assert.map(Action::Assert),
            redis.map(Action::Redis),
            delete
                .map(|spec| Action::Delete { timeout: d.read("delete.timeout", &spec.timeout, DELETE_TIMEOUT), spec }),
            capture.map(Action::Capture),
            discover.map(Action::Discover),
            redis_keys.map(Action::RedisKeys),
            cluster_failover.map(|spec| Action::ClusterFailover {
                timeout: d.read("clusterFailover.timeout", &spec.timeout, CLUSTER_FAILOVER_TIMEOUT),
                spec,
            }),
            sentinel_failover.map(|spec| Action::SentinelFailover {
                timeout: d.read("sentinelFailover.timeout", &spec.timeout, SENTINEL_FAILOVER_TIMEOUT),
                spec,
            }),
            sentinel_restart.map(|spec| Action::SentinelRestart {
                timeout: d.read("sentinelRestart.timeout", &spec.timeout, SENTINEL_RESTART_TIMEOUT),
                spec,
            }),
            replication.map(Action::Replication),
            sentinels.map(Action::Sentinels),
            sentinel_reset.map(Action::SentinelReset),
            partition.map(|spec| Action::Partition {
                lasts: d.read("partition.for", &Some(spec.lasts.clone()), PARTITION_DEFAULT),
                spec,
            }),
            sentinel_partition.map(|spec| Action::SentinelPartition {
                lasts: d.read("sentinelPartition.for", &Some(spec.lasts.clone()), PARTITION_DEFAULT),
                timeout: d.read("sentinelPartition.timeout", &spec.timeout, CONVERGE_TIMEOUT),
                spec,
            }),
            node_down.map(|spec| Action::NodeDown {
                lasts: d.read("nodeDown.for", &Some(spec.lasts.clone()), PARTITION_DEFAULT),
                timeout: d.read("nodeDown.timeout", &spec.timeout, NODE_BACK_TIMEOUT),
                spec,
            }),
            cluster_fault.map(|spec| Action::ClusterFault {
                lasts: d.read("clusterFault.for", &Some(spec.lasts.clone()), PARTITION_DEFAULT),
                timeout: d.read("clusterFault.timeout", &spec.timeout, CONVERGE_TIMEOUT),
                spec,
            }),
            http.map(Action::Http),
            http_load.map(|spec| Action::HttpLoad {
                timeout: d.read("httpLoad.timeout", &spec.timeout, HTTP_LOAD_TIMEOUT),
                settle: d.read("httpLoad.settle", &spec.settle, HTTP_LOAD_SETTLE),
                scale_in: d.read(
                    "httpLoad.autoscale.scaleInWithin",
                    &spec.autoscale.as_ref().and_then(|a| a.scale_in_within.clone()),
                    Duration::ZERO,
                ),
                spec,
            }),
            command.map(|spec| Action::Command {
                timeout: d.read("command.timeout", &spec.timeout, COMMAND_TIMEOUT),
                spec,
            }),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Which actions a step sets, by their names in the file.
    pub fn named_in(step: &StepFile) -> Vec<&'static str> {
        Self::every_in(step, &mut Durations::default()).iter().map(Action::name).collect()
    }

    /// The one action of a step, its durations rendered with `vars` and
    /// parsed; or every problem.
    pub fn of(step: &StepFile, vars: &Vars) -> Result<Action, Vec<String>> {
        let mut d = Durations { vars: Some(vars), problems: Vec::new() };
        let mut actions = Self::every_in(step, &mut d);
        if actions.len() != 1 {
            let named: Vec<&str> = actions.iter().map(Action::name).collect();
            let found = if named.is_empty() { "none".to_string() } else { named.join(", ") };
            return Err(vec![format!("a step needs exactly one action ({}); found {found}", ALL.join(", "))]);
        }
        if d.problems.is_empty() { Ok(actions.remove(0)) } else { Err(d.problems) }
    }

    /// The read-only check of an `unless` probe.
    pub fn of_probe(probe: &Probe) -> Result<Action, String> {
        let Probe { redis, exec, assert } = probe.clone();
        match (redis, exec, assert) {
            (Some(r), None, None) => Ok(Action::Redis(r)),
            (None, Some(e), None) => Ok(Action::Exec(e)),
            (None, None, Some(a)) => Ok(Action::Assert(a)),
            _ => Err("unless needs exactly one of redis, exec, assert".into()),
        }
    }

    /// The action's name as the file writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Apply(_) => "apply",
            Action::Wait { .. } => "wait",
            Action::Exec(_) => "exec",
            Action::Assert(_) => "assert",
            Action::Redis(_) => "redis",
            Action::Delete { .. } => "delete",
            Action::Capture(_) => "capture",
            Action::Discover(_) => "discover",
            Action::RedisKeys(_) => "redisKeys",
            Action::ClusterFailover { .. } => "clusterFailover",
            Action::SentinelFailover { .. } => "sentinelFailover",
            Action::SentinelRestart { .. } => "sentinelRestart",
            Action::Replication(_) => "replication",
            Action::Sentinels(_) => "sentinels",
            Action::SentinelReset(_) => "sentinelReset",
            Action::Partition { .. } => "partition",
            Action::SentinelPartition { .. } => "sentinelPartition",
            Action::NodeDown { .. } => "nodeDown",
            Action::ClusterFault { .. } => "clusterFault",
            Action::Http(_) => "http",
            Action::HttpLoad { .. } => "httpLoad",
            Action::Command { .. } => "command",
        }
    }

    /// Whether the action changes the cluster (a check must not: `verify`
    /// runs checks and never writes).
    pub fn writes(&self) -> bool {
        match self {
            Action::Apply(_)
            | Action::Delete { .. }
            | Action::ClusterFailover { .. }
            | Action::SentinelFailover { .. }
            | Action::SentinelRestart { .. }
            | Action::SentinelReset(_)
            | Action::Partition { .. }
            | Action::SentinelPartition { .. }
            | Action::NodeDown { .. }
            | Action::ClusterFault { .. }
            | Action::HttpLoad { .. } => true,
            Action::Replication(r) => r.write_probe,
            Action::RedisKeys(k) => k.write.is_some(),
            // runbook cannot see what a program does: it writes unless its
            // author says it only reads.
            Action::Command { spec, .. } => !spec.read_only,
            Action::Wait { .. }
            | Action::Exec(_)
            | Action::Assert(_)
            | Action::Redis(_)
            | Action::Capture(_)
            | Action::Discover(_)
            | Action::Sentinels(_)
            | Action::Http(_) => false,
        }
    }

    /// The kind a step has when it does not say: drills are disruptive;
    /// apply, delete, capture and whatever writes keys are setup; the rest
    /// are checks.
    pub fn default_kind(&self) -> StepKind {
        match self {
            Action::ClusterFailover { .. }
            | Action::SentinelFailover { .. }
            | Action::SentinelRestart { .. }
            | Action::Partition { .. }
            | Action::SentinelPartition { .. }
            | Action::NodeDown { .. }
            | Action::ClusterFault { .. }
            | Action::HttpLoad { .. } => StepKind::Disruptive,
            Action::Apply(_)
            | Action::Delete { .. }
            | Action::Capture(_)
            | Action::Discover(_)
            | Action::SentinelReset(_) => StepKind::Setup,
            Action::RedisKeys(k) if k.write.is_some() => StepKind::Setup,
            Action::Command { spec, .. } if !spec.read_only => StepKind::Setup,
            Action::Replication(r) if r.write_probe => StepKind::Setup,
            Action::RedisKeys(_)
            | Action::Replication(_)
            | Action::Wait { .. }
            | Action::Exec(_)
            | Action::Assert(_)
            | Action::Redis(_)
            | Action::Sentinels(_)
            | Action::Command { .. }
            | Action::Http(_) => StepKind::Check,
        }
    }

    /// What the action expects of a reply or output, for `plan`.
    pub fn expectation(&self) -> Option<&Expect> {
        match self {
            Action::Assert(a) => Some(&a.expect),
            Action::Redis(r) => Some(&r.expect),
            Action::Exec(e) => Some(&e.expect),
            Action::Command { spec, .. } => Some(&spec.expect),
            Action::Apply(_)
            | Action::Wait { .. }
            | Action::Delete { .. }
            | Action::Capture(_)
            | Action::Discover(_)
            | Action::RedisKeys(_)
            | Action::ClusterFailover { .. }
            | Action::SentinelFailover { .. }
            | Action::SentinelRestart { .. }
            | Action::Replication(_)
            | Action::Sentinels(_)
            | Action::SentinelReset(_)
            | Action::Partition { .. }
            | Action::SentinelPartition { .. }
            | Action::NodeDown { .. }
            | Action::ClusterFault { .. }
            | Action::Http(_)
            | Action::HttpLoad { .. } => None,
        }
    }
}

/// A partition's `latency` (`50ms`, `1s`) in milliseconds, from 1 ms to a
/// minute (the lab's bounds).
pub fn latency_millis(text: &str) -> Result<u32, String> {
    match parse_duration(text).map(|d| d.as_millis()) {
        Some(ms @ 1..=60_000) => Ok(ms as u32),
        _ => Err(format!("partition.latency {text:?} is not a duration from 1ms to 60s")),
    }
}

/// A partition's `loss` (`30%` or `30`) as a percentage from 1 to 99.
pub fn loss_percent(text: &str) -> Result<u8, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<u8>() {
        Ok(p) if (1..=99).contains(&p) => Ok(p),
        _ => Err(format!("partition.loss {text:?} is not a percentage from 1% to 99%")),
    }
}

/// Every action's name, in the order the docs list them.
pub const ALL: [&str; 22] = [
    "apply",
    "wait",
    "exec",
    "assert",
    "redis",
    "delete",
    "capture",
    "discover",
    "redisKeys",
    "clusterFailover",
    "sentinelFailover",
    "sentinelRestart",
    "replication",
    "sentinels",
    "sentinelReset",
    "partition",
    "sentinelPartition",
    "nodeDown",
    "clusterFault",
    "http",
    "httpLoad",
    "command",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> StepFile {
        serde_yaml_ng::from_str(&format!("id: s\ntitle: t\n{yaml}")).unwrap()
    }

    fn action(yaml: &str) -> Result<Action, Vec<String>> {
        Action::of(&step(yaml), &Vars::new())
    }

    #[test]
    fn a_templated_duration_is_read_with_the_values_given() {
        let yaml = "wait: {podsReady: {selector: app=x}, timeout: '{{ patience }}'}";
        let vars = |v: &str| Vars::from([("patience".to_string(), v.to_string())]);
        let Action::Wait { timeout, .. } = Action::of(&step(yaml), &vars("3m")).unwrap() else { panic!("a wait") };
        assert_eq!(timeout, Duration::from_secs(180));
        let err = Action::of(&step(yaml), &vars("a while")).unwrap_err();
        assert_eq!(err, ["wait.timeout \"{{ patience }}\" is \"a while\", which is not a duration (90s, 2m, 500ms)"]);
    }

    #[test]
    fn durations_are_parsed_with_their_defaults() {
        let Action::SentinelFailover { timeout, .. } = action(
            "sentinelFailover: {redis: {selector: app=r}, sentinels: {selector: app=s}, masterName: m, keys: 10, \
             downAfterMs: '5000', failoverTimeoutMs: '10000', timeout: 3m}",
        )
        .unwrap() else {
            panic!("a sentinelFailover")
        };
        assert_eq!(timeout, Duration::from_secs(180));
        let Action::Wait { timeout, .. } = action("wait: {podsReady: {selector: app=x}}").unwrap() else {
            panic!("a wait")
        };
        assert_eq!(timeout, WAIT_TIMEOUT);
    }

    #[test]
    fn a_duration_that_is_not_one_is_refused_naming_the_field() {
        let err = action(
            "sentinelFailover: {redis: {selector: app=r}, sentinels: {selector: app=s}, masterName: m, keys: 10, \
             downAfterMs: '5000', failoverTimeoutMs: '10000', timeout: 3 minutes}",
        )
        .unwrap_err();
        assert_eq!(err, ["sentinelFailover.timeout \"3 minutes\" is not a duration (90s, 2m, 500ms)"]);
        let err =
            action("httpLoad: {service: {kind: Service, name: s}, path: /, timeout: 1 min, settle: soon}").unwrap_err();
        assert_eq!(err.len(), 2, "both named: {err:?}");
    }

    #[test]
    fn a_latency_is_a_duration_from_a_millisecond_to_a_minute() {
        assert_eq!(latency_millis("50ms"), Ok(50));
        assert_eq!(latency_millis("1.5s"), Ok(1500));
        for refused in ["0ms", "2m", "50", "slow"] {
            assert_eq!(
                latency_millis(refused),
                Err(format!("partition.latency {refused:?} is not a duration from 1ms to 60s"))
            );
        }
    }

    #[test]
    fn a_loss_is_a_percentage_short_of_a_cut() {
        assert_eq!(loss_percent("30%"), Ok(30));
        assert_eq!(loss_percent(" 5 "), Ok(5));
        for refused in ["0%", "100%", "lots", "-3%"] {
            assert_eq!(
                loss_percent(refused),
                Err(format!("partition.loss {refused:?} is not a percentage from 1% to 99%"))
            );
        }
    }

    #[test]
    fn a_partition_lasts_what_its_for_says() {
        let yaml = "partition: {isolate: [{name: a}], from: [{selector: app=r}], for: 20s}";
        let Action::Partition { lasts, spec } = action(yaml).unwrap() else { panic!("a partition") };
        assert_eq!((lasts, spec.direction), (Duration::from_secs(20), None));
        let err = action("partition: {isolate: [{name: a}], from: [{name: b}], for: a while}").unwrap_err();
        assert_eq!(err, ["partition.for \"a while\" is not a duration (90s, 2m, 500ms)"]);
        assert!(serde_yaml_ng::from_str::<StepFile>("id: s\ntitle: t\npartition: {isolate: [], from: []}").is_err());
    }

    #[test]
    fn exactly_one_action() {
        let err =
            action("exec: {pod: {name: p}, command: [true]}\nredis: {pod: {name: p}, command: [PING]}").unwrap_err();
        assert!(err[0].ends_with("found exec, redis"), "{err:?}");
        assert!(action("").unwrap_err()[0].ends_with("found none"));
    }
}

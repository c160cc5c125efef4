//! The scenario file format, as written in `scenarios/<name>/scenario.yaml`.
//! Unknown keys are errors everywhere (a silently ignored key is the most
//! painful bug a test author can have). docs/scenario.md describes it and
//! docs/scenario.schema.json is generated from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A scenario: what to deploy and what to prove about it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioFile {
    /// Short name, as given to `runbook run NAME`.
    pub name: String,
    /// Labels for choosing scenarios in a suite (`runbook run -f dir/
    /// --label tier=smoke`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// One-line title (the audit report's heading).
    pub title: String,
    /// What the scenario achieves (the audit report's objective).
    pub objective: String,
    /// Where the scenario comes from (a seed document, a ticket).
    #[serde(default)]
    pub source: Option<String>,
    /// The namespace the scenario works in, unless `-n` says otherwise
    /// (default: the kubeconfig context's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// How many nodes the embedded lab has when this scenario runs on one
    /// that runbook starts (`--lab`, or no kubeconfig at all): a node-loss
    /// drill needs several. `--lab-nodes` says otherwise; default 1.
    #[serde(default)]
    pub lab_nodes: Option<u32>,
    /// Parameters with defaults, overridable with `--set key=value` and
    /// referenced as `{{ key }}` in steps and manifests.
    #[serde(default)]
    pub parameters: BTreeMap<String, Parameter>,
    /// The steps, in order.
    pub steps: Vec<StepFile>,
    /// Steps that always run at the end (after failures and Ctrl-C too) unless `--keep`.
    #[serde(default)]
    pub cleanup: Vec<StepFile>,
    /// What to collect when any step does not pass, added to its automatic
    /// diagnostics (each step may add its own).
    #[serde(default)]
    pub on_failure: Vec<Collector>,
}

/// A scenario parameter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Parameter {
    /// Value used unless `--set` overrides it.
    pub default: String,
    /// What the parameter means.
    #[serde(default)]
    pub description: String,
    /// A secret: redacted from every output and report.
    #[serde(default)]
    pub secret: bool,
}

/// What a step does to the cluster; decides when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Creates or changes things (apply, delete): `run` only.
    Setup,
    /// Reads and compares: `run` and `verify`.
    Check,
    /// Breaks things on purpose (failover drills): `run` only, lab or `--allow-disruption`.
    Disruptive,
}

/// One step: an id, words for the report, and exactly one action.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepFile {
    /// Unique id (used in reports and JUnit test case names).
    pub id: String,
    /// What the step does, in a few words.
    pub title: String,
    /// Why the step matters (the audit report's explanation).
    #[serde(default)]
    pub explanation: String,
    /// setup, check or disruptive; defaults from the action.
    #[serde(default)]
    pub kind: Option<StepKind>,
    /// Points a grader awards when this check passes.
    #[serde(default)]
    pub points: Option<u32>,
    /// What a learner should fix when this check fails.
    #[serde(default)]
    pub hint: Option<String>,
    /// The requirement of the task this check grades, in the task's words
    /// (`describe` shows it): what must hold, not how runbook built it.
    #[serde(default)]
    pub requirement: Option<String>,
    /// Where the requirement is written: `DOC:LINE` in the seed documents
    /// (`000:34` is line 34 of seed 000); `describe` quotes that line.
    #[serde(default)]
    pub seed: Option<String>,
    /// Server-side apply of manifests.
    #[serde(default)]
    pub apply: Option<Apply>,
    /// Wait for a rollout, ready pods or a deletion.
    #[serde(default)]
    pub wait: Option<Wait>,
    /// Run a command in a pod and check its output.
    #[serde(default)]
    pub exec: Option<Exec>,
    /// Compare a field of a live object (or of every object a selector matches).
    #[serde(default)]
    pub assert: Option<Assert>,
    /// Send a Redis command through a port-forward and check the reply.
    #[serde(default)]
    pub redis: Option<Redis>,
    /// Delete an object and wait until it is gone.
    #[serde(default)]
    pub delete: Option<Delete>,
    /// Read a value for later steps' templates (read-only; runs in verify too).
    #[serde(default)]
    pub capture: Option<Capture>,
    /// Find the object that plays a role (the Deployment behind the
    /// LoadBalancer, the pods that run redis-sentinel) when the task leaves its
    /// name open, and put its name in a parameter (read-only; runs in verify too).
    #[serde(default)]
    pub discover: Option<Discover>,
    /// Write keys to Redis (or a Redis Cluster) and read them back.
    #[serde(default)]
    pub redis_keys: Option<RedisKeys>,
    /// Failover drill on a Redis Cluster: delete a master's pod, measure recovery and lost keys.
    #[serde(default)]
    pub cluster_failover: Option<ClusterFailover>,
    /// Failover drill with Sentinel: delete the master's pod, measure until the Sentinels agree.
    #[serde(default)]
    pub sentinel_failover: Option<SentinelFailover>,
    /// Drill: delete a Sentinel's pod; the master must not change.
    #[serde(default)]
    pub sentinel_restart: Option<SentinelRestart>,
    /// Replication across a set of Redis pods: one master, its replicas linked.
    #[serde(default)]
    pub replication: Option<Replication>,
    /// What every Sentinel says about a master.
    #[serde(default)]
    pub sentinels: Option<Sentinels>,
    /// HTTP GETs against a Service's LoadBalancer address, from outside the cluster.
    #[serde(default)]
    pub http: Option<Http>,
    /// Drill: keep HTTP load on a Service while a pod is deleted or a rollout runs.
    #[serde(default)]
    pub http_load: Option<HttpLoad>,
    /// `SENTINEL RESET` on every Sentinel: forget replicas and Sentinels at
    /// addresses that restarted pods no longer have (they are rediscovered).
    #[serde(default)]
    pub sentinel_reset: Option<SentinelReset>,
    /// A network partition between two groups of pods for a while (a
    /// drill): NetworkPolicies that the cluster's network plugin enforces
    /// (the lab does), healed after `for` and always by the end of the run.
    #[serde(default)]
    pub partition: Option<Partition>,
    /// The Sentinel partition drill: the master cut off from its replicas
    /// and the Sentinels while a client writes, then healed; counts the
    /// acknowledged writes lost, as Jepsen measures.
    #[serde(default)]
    pub sentinel_partition: Option<SentinelPartition>,
    /// A lab node down for a while (its pods stop and vanish from the
    /// network, its kubelet falls silent), then back (a drill; lab only).
    #[serde(default)]
    pub node_down: Option<NodeDown>,
    /// The Redis Cluster fault drill: a master cut off from the others, or
    /// its node down, while a client writes; counts what was lost.
    #[serde(default)]
    pub cluster_fault: Option<ClusterFault>,
    /// A program run on this machine (helm, redis-benchmark, a script), with
    /// the run's kubeconfig, context and namespace in its environment.
    #[serde(default)]
    pub command: Option<HostCommand>,
    /// What to collect if this step does not pass, added to its automatic
    /// diagnostics (and to the scenario's `onFailure`).
    #[serde(default)]
    pub on_failure: Vec<Collector>,
    /// Skip the step (as already done) when this read-only probe passes.
    #[serde(default)]
    pub unless: Option<Box<Probe>>,
    /// Steps that must have passed for this one to run (their ids); a step
    /// whose needs did not pass is skipped, saying which. Default: a step
    /// that talks to pods (redis, exec, http, drills) needs the nearest wait
    /// before it; `needs: []` runs it whatever happened before.
    #[serde(default)]
    pub needs: Option<Vec<String>>,
    /// Run a check again until it passes or this much time has gone (`30s`),
    /// for state that settles (cluster gossip); the last result counts.
    #[serde(default)]
    pub retry_for: Option<String>,
}

/// A read-only check used by `unless`: exactly one of these.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    /// A Redis command and its expectation.
    #[serde(default)]
    pub redis: Option<Redis>,
    /// A command in a pod and its expectation.
    #[serde(default)]
    pub exec: Option<Exec>,
    /// A field of an object and its expectation.
    #[serde(default)]
    pub assert: Option<Assert>,
}

/// A value for later steps, referenced as `{{ name }}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Capture {
    /// The name later steps use.
    pub name: String,
    /// Every pod matching a selector (Running ones), formatted with `format` and joined.
    #[serde(default)]
    pub pods: Option<PodRef>,
    /// How each pod is written: `{ip}`, `{name}` (default `{ip}`).
    #[serde(default)]
    pub format: Option<String>,
    /// Between pods; default a space.
    #[serde(default)]
    pub separator: Option<String>,
    /// How many pods must match (Running), else the step fails.
    #[serde(default)]
    pub count: Option<u32>,
    /// Or: an object's field.
    #[serde(default)]
    pub object: Option<ObjectRef>,
    /// The field path, with `object`.
    #[serde(default)]
    pub path: Option<String>,
    /// How the value is written: `selector` turns a label selector
    /// (`spec.selector` of a Deployment or StatefulSet: matchLabels and
    /// matchExpressions) into the text `-l` takes, so later steps find a
    /// workload's pods by its own labels, whatever they are.
    #[serde(default, rename = "as")]
    pub written_as: Option<CaptureAs>,
}

/// A parameter filled with the name of what plays a role. The parameter's
/// value (its default or `--set`) is tried first: given with `--set`, it is
/// kept as given; otherwise, when exactly one object plays the role the
/// parameter takes its name, when none does it stays as it is (the checks
/// that use it then say what is missing), and when several do and the
/// value names none of them the step fails, naming them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Discover {
    /// The parameter the name goes into.
    pub parameter: String,
    /// What is looked for: `Deployment`, `StatefulSet`, `Service`,
    /// `HorizontalPodAutoscaler`, `ConfigMap`, or `Container` (a container of
    /// the workload `within` names).
    #[serde(default)]
    pub kind: Option<String>,
    /// The role, with a workload kind or `Container`: its pods run this program.
    #[serde(default)]
    pub runs: Option<Program>,
    /// The role, with a workload kind: a Service of this type (`LoadBalancer`,
    /// `NodePort`, `ClusterIP`) selects its pods.
    #[serde(default)]
    pub behind_service: Option<String>,
    /// The role, with `Service`: it selects this workload's pods.
    #[serde(default)]
    pub selects: Option<ObjectRef>,
    /// The role, with `HorizontalPodAutoscaler`: it scales this workload.
    #[serde(default)]
    pub scales: Option<ObjectRef>,
    /// The role, with `ConfigMap`: this workload's pods mount it as a volume.
    #[serde(default)]
    pub mounted_by: Option<ObjectRef>,
    /// With `Container`: the workload whose containers are looked at.
    #[serde(default)]
    pub within: Option<ObjectRef>,
    /// The role, with no kind: the master these Sentinels monitor (its name,
    /// as `SENTINEL MASTERS` gives it).
    #[serde(default)]
    pub monitored_by: Option<MonitoredBy>,
}

/// A program a container runs, told by its command, arguments, image and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Program {
    /// Redis itself (not in Sentinel mode).
    #[serde(rename = "redis-server")]
    RedisServer,
    /// Redis Sentinel (`redis-sentinel`, or `redis-server … --sentinel`).
    #[serde(rename = "redis-sentinel")]
    RedisSentinel,
}

impl Program {
    /// The program's name as the file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Program::RedisServer => "redis-server",
            Program::RedisSentinel => "redis-sentinel",
        }
    }
}

/// The Sentinels asked which master they monitor.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MonitoredBy {
    /// The Sentinel pods (the first Running one is asked).
    pub pods: PodRef,
    /// Sentinel's port; default 26379.
    #[serde(default)]
    pub port: Option<u16>,
}

/// How a captured value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CaptureAs {
    /// A label selector as `kubectl get -l` takes it (`app=redis,tier in (cache)`).
    Selector,
}

/// Keys written to Redis and read back, to prove data flows and survives.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisKeys {
    /// A pod to enter by (any node of a cluster).
    pub pod: PodRef,
    /// Follow Redis Cluster redirects (MOVED, ASK) to the node owning each key.
    #[serde(default)]
    pub cluster: bool,
    /// Key prefix; keys are `<prefix>:<n>` with the value `<prefix>-value-<n>`.
    pub prefix: String,
    /// Write this many keys (then read them back).
    #[serde(default)]
    pub write: Option<Count>,
    /// Only read back this many keys written earlier.
    #[serde(default)]
    pub read: Option<Count>,
    /// Password from a Secret.
    #[serde(default)]
    pub auth: Option<SecretKey>,
}

/// The Redis Cluster failover drill.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterFailover {
    /// The cluster's pods.
    pub pods: PodRef,
    /// Keys written before the drill (by a `redisKeys` step) that must all survive.
    pub prefix: String,
    /// How many keys were written.
    pub keys: Count,
    /// The cluster's `cluster-node-timeout` in milliseconds (recovery is judged against it).
    pub node_timeout_ms: String,
    /// How long to wait for full recovery; default 120s.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Keep the master down until its replica is promoted, by cordoning the
    /// schedulable nodes while the pod is deleted (uncordoned afterwards,
    /// whatever happens).
    /// Without it a pod that restarts faster than the node timeout simply
    /// resumes as master and no failover happens. Default true.
    #[serde(default)]
    pub hold_down: Option<bool>,
}

/// Server-side apply of manifest files (templated with the parameters).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Apply {
    /// Manifest files, relative to the scenario file; each may hold several documents.
    #[serde(default)]
    pub files: Vec<String>,
    /// A manifest written in the step itself.
    #[serde(default)]
    pub inline: Option<String>,
}

/// An object in the cluster, by name or label selector.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectRef {
    /// Kind (`Deployment`, `Pod`, …).
    pub kind: String,
    /// apiVersion; defaults by kind for the built-in kinds.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
    /// Label selector (`app=redis`); the first match by name is used.
    #[serde(default)]
    pub selector: Option<String>,
    /// Namespace; defaults to the run's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A pod, by name or label selector (the first Running pod by name).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodRef {
    /// Pod name.
    #[serde(default)]
    pub name: Option<String>,
    /// Label selector.
    #[serde(default)]
    pub selector: Option<String>,
    /// Namespace; defaults to the run's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only the pods that run on this node (with a name or selector: those
    /// of them there; alone: every pod of the namespace there), to cut a
    /// node's pods off from another's.
    #[serde(default)]
    pub node: Option<String>,
}

/// What to wait for; exactly one of the fields.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Wait {
    /// A Deployment or StatefulSet whose rollout must complete.
    #[serde(default)]
    pub rollout: Option<ObjectRef>,
    /// Pods matching a selector, all Ready (at least `count`).
    #[serde(default)]
    pub pods_ready: Option<PodsReady>,
    /// An object that must be gone.
    #[serde(default)]
    pub deleted: Option<ObjectRef>,
    /// A condition of an object (every object a selector matches) with a
    /// status, as `kubectl wait --for=condition=Type=Status` waits for it.
    #[serde(default)]
    pub condition: Option<ConditionWait>,
    /// How long to wait (`90s`, `2m`); default 120s.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A condition to wait for.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionWait {
    /// The object (by name, or every object a selector matches).
    pub object: ObjectRef,
    /// The condition's type (`Ready`, `Available`, `Complete`, `PodScheduled`).
    #[serde(rename = "type")]
    pub condition_type: String,
    /// The status it must have: `"True"` (default), `"False"` or `"Unknown"`.
    #[serde(default)]
    pub status: Option<String>,
}

/// Ready pods.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodsReady {
    /// Label selector (`app=redis`); or `name`.
    #[serde(default)]
    pub selector: Option<String>,
    /// One pod by name (`redis`); or `selector`.
    #[serde(default)]
    pub name: Option<String>,
    /// How many must be Ready; default 1.
    #[serde(default)]
    pub count: Option<u32>,
    /// Namespace; defaults to the run's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A command in a container.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Exec {
    /// The pod.
    pub pod: PodRef,
    /// The container; defaults to the pod's first.
    #[serde(default)]
    pub container: Option<String>,
    /// The command and its arguments (no shell unless you run one).
    pub command: Vec<String>,
    /// Text sent to the command's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// What the output must be.
    #[serde(default)]
    pub expect: Expect,
}

/// One thing to collect when a step does not pass: exactly one of these.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Collector {
    /// The last log lines of the pods a reference names (at most three pods).
    #[serde(default)]
    pub logs: Option<LogsCollector>,
    /// The events of a namespace, newest last.
    #[serde(default)]
    pub events: Option<EventsCollector>,
    /// An object as YAML (`kubectl get -o yaml`, without managedFields).
    #[serde(default)]
    pub get: Option<ObjectRef>,
}

/// Logs to collect.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogsCollector {
    /// The pods.
    pub pod: PodRef,
    /// The container; defaults to every container of the pod.
    #[serde(default)]
    pub container: Option<String>,
    /// How many lines from the end (default 50).
    #[serde(default)]
    pub tail: Option<u32>,
    /// The previous instance's logs (a container that restarted).
    #[serde(default)]
    pub previous: bool,
}

/// Events to collect.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventsCollector {
    /// The namespace; defaults to the run's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// How many, newest last (default 20).
    #[serde(default)]
    pub last: Option<u32>,
}

/// A program run on the machine runbook runs on: `argv` (no shell) or a
/// `script` (`sh -ec`). Its environment holds `KUBECONFIG` (a kubeconfig
/// whose current context is the run's, with the run's namespace),
/// `RUNBOOK_CONTEXT`, `RUNBOOK_NAMESPACE` and `RUNBOOK_RUN_ID`; it starts in
/// the scenario's directory.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostCommand {
    /// The program and its arguments, run without a shell.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// A shell script, run with `sh -ec` (stops at the first failing command).
    #[serde(default)]
    pub script: Option<String>,
    /// Text sent to its standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// More environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How long it may run before it is killed (default 60s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// It only reads: allowed under `verify`, where a command is refused
    /// unless it says so (runbook cannot see what a program does).
    #[serde(default)]
    pub read_only: bool,
    /// Read standard output as JSON and compare the value at this field path
    /// (`items[0].status.phase`) instead of the whole output.
    #[serde(default)]
    pub path: Option<String>,
    /// What the exit code and output must be (as for `exec`).
    #[serde(default)]
    pub expect: Expect,
}

/// A field of a live object (`path` and `expect`), or a part of it (`contains`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Assert {
    /// The object.
    pub object: ObjectRef,
    /// Field path: dots, `[0]` indexes, `[name=x]` list filters
    /// (`spec.containers[name=redis].resources.requests.cpu`).
    #[serde(default)]
    pub path: String,
    /// What the value at `path` must be.
    #[serde(default)]
    pub expect: Expect,
    /// Instead of `path` and `expect`: a partial object the live one must
    /// hold. Every key given must be there with a value that holds what is
    /// given (recursively); a list item given must match an item of the live
    /// list, found by its `name` when it has one, else at the same position;
    /// values compare as `equals` does (`replicas: 2` holds for `"2"` too).
    #[serde(default)]
    pub contains: Option<serde_json::Value>,
    /// Read the object again until the expectation holds, for at most this
    /// long (`30s`); the default is a single reading. Capped at 15 s under
    /// `verify`, as `retryFor` is.
    #[serde(default)]
    pub eventually: Option<String>,
    /// With a selector: every matching object must satisfy it (at least one must match).
    #[serde(default)]
    pub all: bool,
}

/// A Redis command, sent with the Redis protocol through a port-forward.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Redis {
    /// The pod.
    pub pod: PodRef,
    /// Port in the pod; default 6379.
    #[serde(default)]
    pub port: Option<u16>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Authenticate with a password read from a Secret.
    #[serde(default)]
    pub auth: Option<SecretKey>,
    /// Follow Redis Cluster redirects (MOVED, ASK).
    #[serde(default)]
    pub cluster: bool,
    /// What the reply must be.
    #[serde(default)]
    pub expect: Expect,
}

/// One key of a Secret.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKey {
    /// Secret name.
    pub secret: String,
    /// Key in the Secret.
    pub key: String,
}

/// An object to delete.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delete {
    /// The object.
    pub object: ObjectRef,
    /// A missing object is fine (cleanup); default true.
    #[serde(default)]
    pub ignore_missing: Option<bool>,
    /// How long to wait for it to go; default 60s.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Expectations on a value; every one given must hold. Values are compared as
/// values: a number against a number, a quantity against a quantity.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// Exit code of an exec (default 0).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The exact output lines of an exec.
    #[serde(default)]
    pub lines: Option<Vec<String>>,
    /// One output line of an exec equals this exactly.
    #[serde(default)]
    pub line: Option<String>,
    /// An exec of `netstat -ntl` (or `ss -ntl`) shows a listener on this address (`0.0.0.0:6379`).
    #[serde(default)]
    pub listening: Option<String>,
    /// Pick a field of the reply: a key of a Redis key/value reply
    /// (`CONFIG GET`, `HGETALL`) or of `INFO` (`role`).
    #[serde(default)]
    pub field: Option<String>,
    /// Equal to this value (numbers compare as numbers, strings exactly).
    #[serde(default)]
    pub equals: Option<Value>,
    /// Equal to one of these values.
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    /// Different from this value (compared as `equals` compares): with a
    /// captured value, "the replacement is a new pod"
    /// (`notEquals: "{{ old_pod }}"`).
    #[serde(default)]
    pub not_equals: Option<Value>,
    /// Matches this regular expression in full.
    #[serde(default)]
    pub matches: Option<String>,
    /// A config file (a ConfigMap's `redis.conf`) has a line that sets this
    /// (`maxmemory 2mb`): the same words, whatever the spacing, anywhere in
    /// the file; comments and other settings do not matter.
    #[serde(default)]
    pub config_line: Option<String>,
    /// Equal as a Kubernetes quantity (`1` equals `1000m`).
    #[serde(default)]
    pub quantity: Option<String>,
    /// Equal as a Redis memory size in bytes (`2mb` equals 2097152).
    #[serde(default)]
    pub redis_memory: Option<String>,
    /// A number at least this.
    #[serde(default)]
    pub at_least: Option<f64>,
    /// A number at most this.
    #[serde(default)]
    pub at_most: Option<f64>,
    /// The value exists (true) or does not (false).
    #[serde(default)]
    pub exists: Option<bool>,
    /// A `CLUSTER NODES` reply describes this shape.
    #[serde(default)]
    pub cluster_shape: Option<ClusterShape>,
    /// Several fields of a key/value reply, each equal to its value
    /// (`{num-slaves: 2, num-other-sentinels: 2}`).
    #[serde(default)]
    pub fields: Option<BTreeMap<String, Value>>,
}

/// The Sentinel failover drill.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SentinelFailover {
    /// The Redis pods.
    pub redis: PodRef,
    /// The Sentinel pods.
    pub sentinels: PodRef,
    /// Sentinel's port; default 26379.
    #[serde(default)]
    pub sentinel_port: Option<u16>,
    /// The monitored master's name (`mymaster`).
    pub master_name: String,
    /// The Redis password.
    #[serde(default)]
    pub auth: Option<SecretKey>,
    /// Writes the drill's client makes before the master's pod is deleted
    /// (each acknowledged, then confirmed by every replica with `WAIT`):
    /// none of them may be lost.
    pub keys: Count,
    /// Sentinel's `down-after-milliseconds`.
    pub down_after_ms: String,
    /// Sentinel's `failover-timeout` in milliseconds.
    pub failover_timeout_ms: String,
    /// Cordon the schedulable nodes while the master's pod is deleted (default true).
    #[serde(default)]
    pub hold_down: Option<bool>,
    /// What happens to the master: `podDeleted` (the default) or `nodeDown`
    /// (its Kubernetes node down until the Sentinels agree on a new master,
    /// then back: the lab only, with a replica and most Sentinels on other
    /// nodes; elsewhere the step is skipped).
    #[serde(default)]
    pub fault: Option<FailoverFault>,
    /// How long to wait for recovery; default 180s.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Replication across the Redis pods, from `INFO replication` on each.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Replication {
    /// The Redis pods.
    pub pods: PodRef,
    /// The password.
    #[serde(default)]
    pub auth: Option<SecretKey>,
    /// Exactly one master with this many replicas, each linked to it (`master_link_status:up`).
    pub replicas: u32,
    /// Also write a probe key on the master and read it on every replica (writes: setup kind).
    #[serde(default)]
    pub write_probe: bool,
}

/// What every Sentinel says, from `SENTINEL MASTER` and `SENTINEL CKQUORUM`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sentinels {
    /// The Sentinel pods.
    pub pods: PodRef,
    /// Sentinel's port; default 26379.
    #[serde(default)]
    pub port: Option<u16>,
    /// The monitored master's name.
    pub master_name: String,
    /// Replicas each Sentinel must know.
    pub replicas: u32,
    /// Other Sentinels each must know.
    pub other_sentinels: u32,
    /// The configured quorum, which must also be reachable (`CKQUORUM`).
    pub quorum: Count,
}

/// HTTP requests to a LoadBalancer Service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Http {
    /// The Service (type LoadBalancer), by name.
    pub service: ObjectRef,
    /// The path (`/visitor`).
    pub path: String,
    /// Send the request this many times; the last answer is compared.
    #[serde(default)]
    pub repeat: Option<Count>,
    /// The HTTP status every answer must have; default 200.
    #[serde(default)]
    pub status: Option<u16>,
    /// The last answer's body (trimmed).
    #[serde(default)]
    pub expect: Expect,
}

/// Load on a Service during a disruption.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpLoad {
    /// The Service (type LoadBalancer), by name.
    pub service: ObjectRef,
    /// The path each request asks for.
    pub path: String,
    /// Requests in flight at once; default 4.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// At most this many requests in all; default 20000.
    #[serde(default)]
    pub max_requests: Option<u32>,
    /// At most this long (`60s`); default 60s.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Delete the first Running pod this names, one second into the load.
    #[serde(default)]
    pub delete_pod: Option<PodRef>,
    /// Or: a rolling update of this Deployment (as `kubectl set env … UPDATE_TIMESTAMP=…`).
    #[serde(default)]
    pub rolling_update: Option<String>,
    /// Or: the load must make this HorizontalPodAutoscaler scale its target
    /// out (and, with `scaleInWithin`, back in once the load stops).
    #[serde(default)]
    pub autoscale: Option<Autoscale>,
    /// Keep the load on for this long after the disruption settled; default 2s.
    #[serde(default)]
    pub settle: Option<String>,
}

/// The autoscaling drill of `httpLoad`: the load goes on (within `timeout`,
/// with no request limit) until the HPA's target has more Ready replicas than
/// before.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Autoscale {
    /// The HorizontalPodAutoscaler, by name.
    pub hpa: String,
    /// After the load, how long the HPA has to bring its target back to
    /// `minReplicas` (`6m`: its scale-down stabilization window, 5 minutes by
    /// default, and a sync); `0s`, the default, does not wait for it.
    #[serde(default)]
    pub scale_in_within: Option<String>,
}

/// Which Sentinels to reset, for which master.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SentinelReset {
    /// The Sentinel pods.
    pub pods: PodRef,
    /// Sentinel's port; default 26379.
    #[serde(default)]
    pub port: Option<u16>,
    /// The monitored master's name.
    pub master_name: String,
}

/// `partition`: the pods of `isolate` cut off from those of `from`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Partition {
    /// The pods cut off (every Running pod each reference names).
    pub isolate: Vec<PodRef>,
    /// The pods they are cut off from (the isolated pods left out).
    pub from: Vec<PodRef>,
    /// Which connections the cut stops: `both` (the default), `outbound`
    /// (the isolated pods cannot open connections to the others) or
    /// `inbound` (the others cannot open connections to them). Replies on a
    /// connection the cut allows still flow, as NetworkPolicy has it.
    #[serde(default)]
    pub direction: Option<PartitionDirection>,
    /// Packet loss instead of a cut (`30%`): each packet the cut would stop
    /// is dropped at that chance. The lab only (NetworkPolicy has no loss);
    /// elsewhere the step is skipped.
    #[serde(default)]
    pub loss: Option<String>,
    /// Latency instead of a cut (`50ms`, up to `60s`): each packet the cut
    /// would stop, both ways and replies included, waits that long; with
    /// `loss`, what loss spares is delayed. The lab only (NetworkPolicy has
    /// no latency); elsewhere the step is skipped.
    #[serde(default)]
    pub latency: Option<String>,
    /// How long the cut lasts (`20s`), after which it is healed.
    #[serde(rename = "for")]
    pub lasts: String,
}

/// The Sentinel partition drill.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SentinelPartition {
    /// The Redis pods.
    pub redis: PodRef,
    /// The Sentinel pods.
    pub sentinels: PodRef,
    /// Sentinel's port; default 26379.
    #[serde(default)]
    pub sentinel_port: Option<u16>,
    /// The monitored master's name (`mymaster`).
    pub master_name: String,
    /// The Redis password.
    #[serde(default)]
    pub auth: Option<SecretKey>,
    /// How long the master stays cut off (`12s`): longer than
    /// down-after-milliseconds, for the Sentinels to fail over meanwhile.
    #[serde(rename = "for")]
    pub lasts: String,
    /// `min-replicas-to-write` set on every Redis pod for the drill (and put
    /// back after it); left as configured when not given.
    #[serde(default)]
    pub min_replicas_to_write: Option<Count>,
    /// `min-replicas-max-lag` in seconds, set with `minReplicasToWrite`.
    #[serde(default)]
    pub min_replicas_max_lag: Option<Count>,
    /// `WAIT` for this many replicas after each write, 500 ms at most: a
    /// write counts as acknowledged only when they confirmed it, and none of
    /// those may be lost.
    #[serde(default)]
    pub wait_replicas: Option<Count>,
    /// How long the pods may take to agree on one master again once the
    /// cut is healed; default 60s.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// The Redis Cluster fault drill.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterFault {
    /// The cluster's pods.
    pub pods: PodRef,
    /// The Redis password.
    #[serde(default)]
    pub auth: Option<SecretKey>,
    /// What happens to the master: `partition` (cut off from every other
    /// node of the cluster, both ways) or `nodeDown` (its Kubernetes node
    /// down: the lab only).
    pub fault: ClusterFaultKind,
    /// How long the fault lasts (`15s`): longer than cluster-node-timeout,
    /// for a failover meanwhile.
    #[serde(rename = "for")]
    pub lasts: String,
    /// How long the cluster may take to converge once healed; default 60s.
    #[serde(default)]
    pub timeout: Option<String>,
    /// `WAIT` for this many replicas after each write, 500 ms at most: a
    /// write counts as acknowledged only when they confirmed it (as a client
    /// that needs its writes to survive a failover does).
    #[serde(default)]
    pub wait_replicas: Option<Count>,
}

/// What the Sentinel failover drill does to the master.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailoverFault {
    /// Its pod deleted (Redis shuts down gracefully, as on a rollout).
    #[default]
    PodDeleted,
    /// Its node down: the process frozen and unplugged at once, as a
    /// machine that fails.
    NodeDown,
}

/// What the cluster fault drill does to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClusterFaultKind {
    /// The master cut off from the other nodes of the cluster.
    Partition,
    /// The master's Kubernetes node down.
    NodeDown,
}

/// `nodeDown`: a node down for `for`, then back.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeDown {
    /// The node, by name (`runbook-lab-m02`).
    #[serde(default)]
    pub node: Option<String>,
    /// Or the node that runs this pod (its first Running pod).
    #[serde(default)]
    pub pod: Option<PodRef>,
    /// How long the node stays down (`30s`).
    #[serde(rename = "for")]
    pub lasts: String,
    /// How long it may take to be Ready again once back; default 60s.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Which connections a partition stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PartitionDirection {
    /// Neither side reaches the other.
    Both,
    /// The isolated pods reach nothing on the other side.
    Outbound,
    /// Nothing on the other side reaches the isolated pods.
    Inbound,
}

/// The Sentinel restart drill.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SentinelRestart {
    /// The Sentinel pod to delete.
    pub sentinel: PodRef,
    /// All Sentinel pods.
    pub sentinels: PodRef,
    /// Sentinel's port; default 26379.
    #[serde(default)]
    pub sentinel_port: Option<u16>,
    /// The monitored master's name.
    pub master_name: String,
    /// How long to wait for the Sentinel to be back; default 120s.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// The shape of a Redis Cluster, as `CLUSTER NODES` shows it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterShape {
    /// Masters that serve slots.
    pub masters: u32,
    /// Replicas of each master.
    pub replicas_per_master: u32,
}

/// A count written as a number or as a template (`"{{ keys }}"`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Count {
    /// A number.
    Number(u32),
    /// A template that renders to a number.
    Template(String),
}

impl Count {
    /// The number, rendering a template with `render`.
    pub fn value(&self, render: &dyn Fn(&str) -> String) -> Result<u32, String> {
        match self {
            Count::Number(n) => Ok(*n),
            Count::Template(t) => render(t).trim().parse().map_err(|_| format!("{t:?} is not a count")),
        }
    }
}

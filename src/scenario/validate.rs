//! Everything `runbook validate` checks before a scenario touches a cluster:
//! ids, one action per step, read-only checks, templates, manifests, timeouts,
//! expectations. Each problem names its file, line and column.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::template::{self, line_col};
use super::{Action, Expect, Parameter, Problem, Scenario, StepFile, StepKind, suggest};
use super::{locate, manifest, manifest_types};
use runbook_units::{Quantity, parse_redis_memory};

/// The kinds `kubectl rollout status` knows.
const ROLLS_OUT: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

struct Checker<'a> {
    scenario: &'a Scenario,
    problems: Vec<Problem>,
    params: BTreeMap<String, String>,
    /// The JSON pointer of the step being checked (`/steps/3`).
    step: String,
    /// The ids of the steps before the one being checked (what `needs` may name).
    earlier: Vec<String>,
}

impl Checker<'_> {
    /// A problem of the step being checked, at the step's `id:`.
    fn at_step(&mut self, id: &str, message: String) {
        self.at_field(id, "id", message);
    }

    /// A problem of the step being checked, at one of its fields
    /// (`apply/files/0`), or the nearest enclosing node that is written.
    fn at_field(&mut self, id: &str, field: &str, message: String) {
        let (line, column) = self.scenario.location(&format!("{}/{field}", self.step));
        self.problems.push(Problem {
            file: self.scenario.path.clone(),
            line,
            column,
            message: format!("step {id:?}: {message}"),
        });
    }

    fn at_text(&mut self, file: String, text: &str, offset: usize, message: String) {
        let (line, column) = line_col(text, offset);
        self.problems.push(Problem { file, line, column, message });
    }

    fn check_templates(&mut self, step: &StepFile) {
        let value = serde_json::to_value(step).unwrap_or(Value::Null);
        let mut strings = Vec::new();
        collect_strings(&value, &mut strings);
        for s in strings {
            match template::references(&s) {
                Err(e) => self.at_step(&step.id, e.message),
                Ok(refs) => {
                    for (name, _) in refs {
                        if !self.params.contains_key(&name) {
                            let hint = suggest::did_you_mean(&name, self.params.keys().map(String::as_str));
                            // Point at the reference in the scenario file itself.
                            let needle = format!("{{{{ {name} }}}}");
                            match self
                                .scenario
                                .text
                                .find(&needle)
                                .or_else(|| self.scenario.text.find(&format!("{{{{{name}}}}}")))
                            {
                                Some(offset) => {
                                    let text = self.scenario.text.clone();
                                    self.at_text(
                                        self.scenario.path.clone(),
                                        &text,
                                        offset,
                                        format!("unknown parameter `{name}`{hint}"),
                                    );
                                }
                                None => self.at_step(&step.id, format!("unknown parameter `{name}`{hint}")),
                            }
                        }
                    }
                }
            }
        }
    }

    fn check_manifest(&mut self, step_id: &str, file: String, text: &str) {
        let rendered = match manifest::render(text, &self.params) {
            Ok(r) => r,
            Err(e) => return self.at_text(file, text, e.offset, e.message),
        };
        let located = locate::documents(&rendered);
        for (i, doc) in manifest::all_documents(&rendered).enumerate() {
            let value: Value = match doc {
                Ok(Value::Null) => continue,
                Ok(v) => v,
                Err(e) => {
                    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
                    let message =
                        format!("not valid YAML: {}", e.to_string().split(" at line ").next().unwrap_or_default());
                    self.problems.push(Problem { file: file.clone(), line, column, message });
                    return;
                }
            };
            let locations = located.get(i).cloned().unwrap_or_default();
            let at = |pointer: &str| locations.at(pointer).map_or((0, 0), |m| (m.line, m.column));
            let mut found = Vec::new();
            for (field, pointer, present) in [
                ("apiVersion", "", value["apiVersion"].is_string()),
                ("kind", "", value["kind"].is_string()),
                ("metadata.name", "/metadata", value["metadata"]["name"].is_string()),
            ] {
                if !present {
                    found.push((at(pointer), format!("missing {field}, which kubectl requires")));
                }
            }
            if found.is_empty() {
                for problem in manifest_types::check(&value) {
                    found.push((at(&problem.pointer), problem.message));
                }
            }
            for ((line, column), message) in found {
                let params = self.parameters_on_line(text, line);
                self.problems.push(Problem {
                    file: file.clone(),
                    line,
                    column,
                    message: format!("document {} (applied by step {step_id:?}): {message}{params}", i + 1),
                });
            }
        }
    }

    /// `; line 5 uses parameter `replicas` = "two"` when the manifest's line
    /// (as written, before rendering) refers to parameters: the value given
    /// is usually the mistake.
    fn parameters_on_line(&self, text: &str, line: usize) -> String {
        let Some(source) = text.lines().nth(line.wrapping_sub(1)) else { return String::new() };
        let used: Vec<String> = template::references(source)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, _)| self.params.get(&name).map(|v| format!("`{name}` = {v:?}")))
            .collect();
        if used.is_empty() { String::new() } else { format!(" (line {line} uses parameter {})", used.join(", ")) }
    }

    fn check_expect(&mut self, id: &str, action: &str, e: &super::Expect) {
        let exec_only = [
            ("exitCode", e.exit_code.is_some()),
            ("lines", e.lines.is_some()),
            ("line", e.line.is_some()),
            ("listening", e.listening.is_some()),
        ];
        for (name, present) in exec_only {
            if present && action != "exec" && action != "command" {
                self.at_step(id, format!("expect.{name} applies to exec and command steps only"));
            }
        }
        for (name, present) in
            [("field", e.field.is_some()), ("fields", e.fields.is_some()), ("clusterShape", e.cluster_shape.is_some())]
        {
            if present && action != "redis" {
                self.at_step(id, format!("expect.{name} applies to redis steps only"));
            }
        }
        if let Some(re) = &e.matches
            && let Err(err) = regex::Regex::new(&template::render(re, &self.params).unwrap_or_else(|_| re.clone()))
        {
            self.at_step(id, format!("expect.matches is not a valid regular expression: {err}"));
        }
        let params = self.params.clone();
        let render = |t: &str| template::render(t, &params).unwrap_or_else(|_| t.to_string());
        if let Some(q) = e.quantity.as_deref().map(render)
            && Quantity::parse(&q).is_err()
        {
            self.at_step(id, format!("expect.quantity: {q:?} is not a Kubernetes quantity"));
        }
        if let Some(m) = e.redis_memory.as_deref().map(render)
            && parse_redis_memory(&m).is_none()
        {
            self.at_step(id, format!("expect.redisMemory: {m:?} is not a Redis memory size (2mb, 100kb, 1gb)"));
        }
    }

    fn check_step(&mut self, step: &StepFile, seen: &mut HashSet<String>) {
        if step.id.trim().is_empty() {
            self.at_step(&step.id, "the id must not be empty".into());
        }
        if !seen.insert(step.id.clone()) {
            let first = self.scenario.step_line(&step.id);
            self.at_step(&step.id, format!("duplicate step id (first used at line {first})"));
        }
        if let Some(seed) = &step.seed
            && let Err(problem) = super::seeds::SeedLine::parse(seed)
        {
            self.at_field(&step.id, "seed", problem);
        }
        let action = match super::Step::from_file(step, &self.params) {
            Ok(parsed) => Some(parsed.action),
            Err(problems) => {
                for problem in problems {
                    self.at_step(&step.id, problem);
                }
                None
            }
        };
        // A step without exactly one action cannot be checked further.
        if Action::named_in(step).len() != 1 {
            return;
        }
        if let Some(action) = &action
            && step.kind.unwrap_or_else(|| action.default_kind()) == StepKind::Check
            && action.writes()
        {
            let why = if matches!(action, Action::Command { .. }) {
                "a command is a check only with `readOnly: true`: `verify` runs checks and must never write, \
                 and runbook cannot see what a program does"
            } else {
                "a check cannot apply or delete: `verify` runs checks and must never write"
            };
            self.at_step(&step.id, why.into());
        }
        if let Some(c) = &step.command
            && c.argv.as_ref().is_some_and(|a| !a.is_empty()) == c.script.is_some()
        {
            self.at_step(&step.id, "command needs exactly one of argv (a program and its arguments), script".into());
        }
        for (i, need) in step.needs.iter().flatten().enumerate() {
            if !self.earlier.contains(need) {
                let hint = suggest::did_you_mean(need, self.earlier.iter().map(String::as_str));
                let exists = self.scenario.file.steps.iter().chain(&self.scenario.file.cleanup).any(|s| &s.id == need);
                let what = if exists { "is not a step before this one" } else { "is not a step id" };
                self.at_field(&step.id, &format!("needs/{i}"), format!("needs {need:?}, which {what}{hint}"));
            }
        }
        if step.retry_for.is_some() && step.http.is_some() {
            self.at_step(
                &step.id,
                "retryFor cannot repeat an http step: each request may change state (a counter counts again)".into(),
            );
        }
        if let Some(c) = &step.capture {
            if c.pods.is_some() == c.object.is_some() {
                self.at_step(&step.id, "capture needs exactly one of pods, object".into());
            }
            if c.object.is_some() && c.path.is_none() {
                self.at_step(&step.id, "capture.object needs a path".into());
            }
        }
        if let Some(d) = &step.discover {
            for problem in discover_problems(d, &self.scenario.file.parameters) {
                self.at_field(&step.id, "discover", problem);
            }
        }
        if let Some(p) = &step.partition {
            if let Some(loss) = p.loss.as_deref().filter(|l| !l.contains("{{"))
                && let Err(problem) = super::loss_percent(loss)
            {
                self.at_field(&step.id, "partition/loss", problem);
            }
            if let Some(latency) = p.latency.as_deref().filter(|l| !l.contains("{{"))
                && let Err(problem) = super::latency_millis(latency)
            {
                self.at_field(&step.id, "partition/latency", problem);
            }
            for (field, refs) in [("isolate", &p.isolate), ("from", &p.from)] {
                if refs.is_empty() {
                    self.at_field(&step.id, &format!("partition/{field}"), format!("partition.{field} names no pods"));
                }
                if refs.iter().any(|r| r.name.is_none() && r.selector.is_none() && r.node.is_none()) {
                    let problem = format!("each pod of partition.{field} needs a name, a selector or a node");
                    self.at_field(&step.id, &format!("partition/{field}"), problem);
                }
            }
        }
        if let Some(n) = &step.node_down
            && n.node.is_some() == n.pod.is_some()
        {
            self.at_field(&step.id, "nodeDown", "nodeDown needs exactly one of node, pod".into());
        }
        if let Some(k) = &step.redis_keys
            && k.write.is_some() == k.read.is_some()
        {
            self.at_step(&step.id, "redisKeys needs exactly one of write, read".into());
        }
        if let Some(f) = &step.cluster_failover
            && template::render(&f.node_timeout_ms, &self.params).ok().and_then(|t| t.parse::<u64>().ok()).is_none()
        {
            self.at_step(
                &step.id,
                format!("clusterFailover.nodeTimeoutMs {:?} is not a number of milliseconds", f.node_timeout_ms),
            );
        }
        self.check_templates(step);
        if let Some(apply) = &step.apply {
            if apply.files.is_empty() && apply.inline.is_none() {
                self.at_step(&step.id, "apply needs files or inline".into());
            }
            for (i, f) in apply.files.iter().enumerate() {
                match self.scenario.read(f) {
                    Ok(text) => self.check_manifest(&step.id, self.scenario.display_path(f), &text),
                    Err(e) => {
                        self.at_field(&step.id, &format!("apply/files/{i}"), format!("manifest file missing: {e}"))
                    }
                }
            }
            if let Some(inline) = &apply.inline {
                let file = format!("{} (step {:?}, inline)", self.scenario.path, step.id);
                self.check_manifest(&step.id, file, inline);
            }
        }
        if let Some(w) = &step.wait {
            let n = [w.rollout.is_some(), w.pods_ready.is_some(), w.deleted.is_some(), w.condition.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if n != 1 {
                self.at_field(
                    &step.id,
                    "wait",
                    "wait needs exactly one of rollout, podsReady, deleted, condition".into(),
                );
            }
            if let Some(c) = &w.condition {
                if c.object.name.is_some() == c.object.selector.is_some() {
                    self.at_field(
                        &step.id,
                        "wait/condition/object",
                        "wait.condition.object needs exactly one of name, selector".into(),
                    );
                }
                if let Some(status) = &c.status
                    && !matches!(status.as_str(), "True" | "False" | "Unknown")
                {
                    self.at_field(
                        &step.id,
                        "wait/condition/status",
                        format!("wait.condition.status {status:?} is not one of \"True\", \"False\", \"Unknown\""),
                    );
                }
            }
            // `rollout status` means something for these kinds only; on a
            // Pod it would wait out its whole timeout.
            if let Some(r) = &w.rollout
                && !ROLLS_OUT.contains(&r.kind.as_str())
            {
                self.at_step(
                    &step.id,
                    format!(
                        "wait.rollout applies to {}, not {}; for a pod use podsReady with its name or a selector",
                        ROLLS_OUT.join(", "),
                        r.kind
                    ),
                );
            }
            if let Some(p) = &w.pods_ready
                && p.name.is_some() == p.selector.is_some()
            {
                self.at_step(&step.id, "wait.podsReady needs exactly one of name, selector".into());
            }
        }
        for (pod, what) in
            [(step.exec.as_ref().map(|e| &e.pod), "exec.pod"), (step.redis.as_ref().map(|r| &r.pod), "redis.pod")]
        {
            if let Some(p) = pod
                && p.name.is_some() == p.selector.is_some()
            {
                self.at_step(&step.id, format!("{what} needs exactly one of name, selector"));
            }
        }
        for (object, what) in [
            (step.assert.as_ref().map(|a| &a.object), "assert.object"),
            (step.delete.as_ref().map(|d| &d.object), "delete.object"),
        ] {
            if let Some(o) = object
                && o.name.is_some() == o.selector.is_some()
            {
                self.at_step(&step.id, format!("{what} needs exactly one of name, selector"));
            }
        }
        if let Some(exec) = &step.exec {
            if exec.command.is_empty() {
                self.at_step(&step.id, "exec.command must not be empty".into());
            }
            self.check_expect(&step.id, "exec", &exec.expect);
        }
        if let Some(redis) = &step.redis {
            if redis.command.is_empty() {
                self.at_step(&step.id, "redis.command must not be empty".into());
            }
            self.check_expect(&step.id, "redis", &redis.expect);
        }
        if let Some(assert) = &step.assert {
            self.check_expect(&step.id, "assert", &assert.expect);
            let has_expect = serde_json::to_value(&assert.expect).ok() != serde_json::to_value(Expect::default()).ok();
            match (assert.path.is_empty(), &assert.contains) {
                (true, None) => self.at_step(&step.id, "assert needs a path (with expect) or contains".into()),
                (false, Some(_)) => {
                    self.at_step(&step.id, "assert takes a path and expect, or contains, not both".into())
                }
                (true, Some(_)) if has_expect => self.at_step(
                    &step.id,
                    "assert.expect goes with a path; with contains, the object itself says what must hold".into(),
                ),
                _ => {}
            }
        }
        if let Some(command) = &step.command {
            self.check_expect(&step.id, "command", &command.expect);
        }
        for (i, collector) in step.on_failure.iter().enumerate() {
            if let Some(problem) = collector_problem(collector) {
                self.at_field(&step.id, &format!("onFailure/{i}"), problem);
            }
        }
        if step.unless.as_ref().and_then(|u| u.assert.as_ref()).is_some_and(|a| a.eventually.is_some()) {
            self.at_step(&step.id, "unless reads once: its assert takes no eventually".into());
        }
    }
}

/// What is wrong with an `onFailure` collector, if anything.
fn collector_problem(c: &super::Collector) -> Option<String> {
    let given = [c.logs.is_some(), c.events.is_some(), c.get.is_some()].iter().filter(|g| **g).count();
    if given != 1 {
        return Some(format!("an onFailure collector needs exactly one of logs, events, get; found {given}"));
    }
    if let Some(l) = &c.logs
        && l.pod.name.is_some() == l.pod.selector.is_some()
    {
        return Some("onFailure logs.pod needs exactly one of name, selector".into());
    }
    if let Some(o) = &c.get
        && o.name.is_some() == o.selector.is_some()
    {
        return Some("onFailure get needs exactly one of name, selector".into());
    }
    None
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

/// Every problem in a scenario with its parameters' defaults (empty when it is valid).
pub fn validate(scenario: &Scenario) -> Vec<Problem> {
    let params = scenario.file.parameters.iter().map(|(k, p)| (k.clone(), p.default.clone())).collect();
    validate_with(scenario, params)
}

/// Every problem in a scenario with these parameter values (`--set`).
pub fn validate_with(scenario: &Scenario, mut params: BTreeMap<String, String>) -> Vec<Problem> {
    params.insert("run_id".into(), "<run_id>".into());
    let mut checker = Checker { scenario, problems: Vec::new(), params, step: String::new(), earlier: Vec::new() };
    let mut seen = HashSet::new();
    let sections = [("steps", &scenario.file.steps), ("cleanup", &scenario.file.cleanup)];
    for (section, step, index) in
        sections.iter().flat_map(|(name, steps)| steps.iter().enumerate().map(move |(i, s)| (name, s, i)))
    {
        checker.step = format!("/{section}/{index}");
        if index == 0 {
            checker.earlier.clear();
        }
        checker.check_step(step, &mut seen);
        checker.earlier.push(step.id.clone());
        // A captured value may be used by the steps after it.
        if let Some(c) = &step.capture {
            checker.params.insert(c.name.clone(), format!("<{}>", c.name));
        }
    }
    for (index, collector) in scenario.file.on_failure.iter().enumerate() {
        if let Some(problem) = collector_problem(collector) {
            let (line, column) = scenario.location(&format!("/onFailure/{index}"));
            checker.problems.push(Problem { file: scenario.path.clone(), line, column, message: problem });
        }
    }
    for (index, step) in scenario.file.cleanup.iter().enumerate() {
        if step.needs.is_some() {
            checker.step = format!("/cleanup/{index}");
            checker.at_field(&step.id, "needs", "cleanup steps always run; they cannot have needs".into());
        }
        if step.apply.is_some() {
            checker.step = format!("/cleanup/{index}");
            checker.at_field(&step.id, "apply", "cleanup steps delete; they cannot apply".into());
        }
    }
    checker.problems
}

/// What is wrong with a `discover` step: a parameter the scenario does not
/// declare, no role or several, or a kind that cannot play the role.
fn discover_problems(d: &crate::scenario::Discover, parameters: &BTreeMap<String, Parameter>) -> Vec<String> {
    let mut problems = Vec::new();
    if !parameters.contains_key(&d.parameter) {
        problems.push(format!(
            "discover.parameter {:?} is not a parameter of this scenario (declare it under parameters:)",
            d.parameter
        ));
    }
    let roles = [
        ("runs", d.runs.is_some()),
        ("behindService", d.behind_service.is_some()),
        ("selects", d.selects.is_some()),
        ("scales", d.scales.is_some()),
        ("mountedBy", d.mounted_by.is_some()),
        ("monitoredBy", d.monitored_by.is_some()),
    ];
    let named: Vec<&str> = roles.iter().filter(|(_, set)| *set).map(|(name, _)| *name).collect();
    let [role] = named.as_slice() else {
        let all: Vec<&str> = roles.iter().map(|(name, _)| *name).collect();
        problems.push(format!("discover needs exactly one role ({}); found {}", all.join(", "), named.len()));
        return problems;
    };
    let kind = d.kind.as_deref().unwrap_or_default();
    let workload = matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Pod");
    let fits = match *role {
        "runs" if kind == "Container" => d.within.is_some(),
        "runs" | "behindService" => workload,
        "selects" => kind == "Service",
        "scales" => kind == "HorizontalPodAutoscaler",
        "mountedBy" => kind == "ConfigMap",
        _ => d.kind.is_none(),
    };
    if !fits {
        let wanted = match *role {
            "runs" if kind == "Container" => "kind Container needs within: the workload whose containers are looked at",
            "runs" => "kind Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod, or Container (with within)",
            "behindService" => "kind Deployment, StatefulSet, DaemonSet, ReplicaSet or Pod",
            "selects" => "kind Service",
            "scales" => "kind HorizontalPodAutoscaler",
            "mountedBy" => "kind ConfigMap",
            _ => "no kind (the Sentinels name the master)",
        };
        problems.push(format!("discover.{role} with kind {kind:?}: needs {wanted}"));
    }
    if d.within.is_some() && kind != "Container" {
        problems.push("discover.within is for kind Container".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_fills_a_declared_parameter_with_one_role_a_kind_can_play() {
        let problems = |discover: &str| {
            let text = format!(
                "name: t\ntitle: t\nobjective: t\nparameters:\n  app: {{default: a, description: d}}\n\
                 steps:\n- id: f\n  title: t\n  discover: {discover}\n"
            );
            match crate::scenario::Scenario::from_memory("t.yaml", &text, BTreeMap::new()) {
                Ok(_) => Vec::new(),
                Err(p) => p.into_iter().map(|p| p.message).collect::<Vec<_>>(),
            }
        };
        assert!(problems("{parameter: app, kind: Deployment, behindService: LoadBalancer}").is_empty());
        assert!(
            problems("{parameter: app, kind: Container, runs: redis-server, within: {kind: Deployment, name: x}}")
                .is_empty()
        );
        assert!(problems("{parameter: app, monitoredBy: {pods: {selector: a=b}, port: 5000}}").is_empty());
        let wrong = [
            ("{parameter: nope, kind: Deployment, runs: redis-server}", "\"nope\" is not a parameter"),
            ("{parameter: app, kind: Deployment}", "needs exactly one role"),
            ("{parameter: app, kind: Service, runs: redis-server}", "discover.runs with kind \"Service\""),
            ("{parameter: app, kind: Container, runs: redis-server}", "needs within"),
            ("{parameter: app, kind: Deployment, scales: {kind: Deployment, name: x}}", "kind HorizontalPodAutoscaler"),
            ("{parameter: app, kind: Deployment, runs: redis}", "\"redis\" is not one of redis-server, redis-sentinel"),
        ];
        for (discover, says) in wrong {
            let found = problems(discover);
            assert!(found.iter().any(|m| m.contains(says)), "{discover}: {found:?}");
        }
    }

    #[test]
    fn a_partition_names_pods_on_both_sides() {
        let problems = |partition: &str| {
            let text =
                format!("name: t\ntitle: t\nobjective: t\nsteps:\n- id: p\n  title: t\n  partition: {partition}\n");
            match crate::scenario::Scenario::from_memory("t.yaml", &text, BTreeMap::new()) {
                Ok(_) => Vec::new(),
                Err(p) => p.into_iter().map(|p| p.message).collect::<Vec<_>>(),
            }
        };
        assert!(problems("{isolate: [{name: a}], from: [{selector: app=r}], for: 5s}").is_empty());
        let found = problems("{isolate: [], from: [{namespace: x}], for: 5s}");
        assert!(found.iter().any(|m| m.contains("partition.isolate names no pods")), "{found:?}");
        assert!(
            found.iter().any(|m| m.contains("each pod of partition.from needs a name, a selector or a node")),
            "{found:?}"
        );
    }

    #[test]
    fn every_duration_field_is_checked() {
        let text = "name: t\ntitle: t\nobjective: t\nsteps:\n- id: load\n  title: t\n  explanation: t\n  \
                    httpLoad: {service: {kind: Service, name: s}, path: /, timeout: 3 minutes, settle: soon}\n";
        let problems = crate::scenario::Scenario::from_memory("t.yaml", text, BTreeMap::new()).unwrap_err();
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert!(messages.iter().any(|m| m.contains("\"3 minutes\" is not a duration")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("\"soon\" is not a duration")), "{messages:?}");
    }

    #[test]
    fn a_templated_duration_is_checked_with_the_values_given_and_bound_for_the_run() {
        let text = "name: t\ntitle: t\nobjective: t\nparameters:\n  patience: {default: 90s, description: d}\n\
                    steps:\n- id: w\n  title: t\n  wait: {podsReady: {name: p}, timeout: '{{ patience }}'}\n";
        let scenario = crate::scenario::Scenario::from_memory("t.yaml", text, BTreeMap::new()).unwrap();
        let timeout = |s: &crate::scenario::Scenario| match &s.steps()[0].action {
            Action::Wait { timeout, .. } => *timeout,
            other => panic!("a wait: {other:?}"),
        };
        assert_eq!(timeout(&scenario), std::time::Duration::from_secs(90), "the default value");
        let problems = scenario.problems_with(&[("patience".into(), "soon".into())]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("is \"soon\", which is not a duration"), "{problems:?}");
        let values = scenario.parameters(&[("patience".into(), "5m".into())]).unwrap();
        assert_eq!(timeout(&scenario.bound_to(&values).unwrap()), std::time::Duration::from_secs(300));
    }

    #[test]
    fn waits_name_a_pod_and_roll_out_only_what_rolls_out() {
        let scenario = |wait: &str| {
            let text = format!("name: t\ntitle: t\nobjective: t\nsteps:\n- id: w\n  title: t\n  wait: {wait}\n");
            crate::scenario::Scenario::from_memory("t.yaml", &text, BTreeMap::new())
        };
        let problems = scenario("{rollout: {kind: Pod, name: redis}}").unwrap_err();
        assert_eq!(
            problems[0].message,
            "step \"w\": wait.rollout applies to Deployment, StatefulSet, DaemonSet, not Pod; \
             for a pod use podsReady with its name or a selector"
        );
        assert!(scenario("{podsReady: {name: redis}}").is_ok());
        assert!(scenario("{rollout: {kind: StatefulSet, name: redis}}").is_ok());
        let problems = scenario("{podsReady: {name: redis, selector: app=redis}}").unwrap_err();
        assert_eq!(problems[0].message, "step \"w\": wait.podsReady needs exactly one of name, selector");
    }
}

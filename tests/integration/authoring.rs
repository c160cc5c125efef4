//! Writing a scenario: `validate` reports every problem at once, each at its
//! node with "did you mean"; `--set` values are checked before the cluster
//! is touched; manifests of built-in kinds are type-checked offline.

use crate::common::requires;
use crate::common::{output_text, runbook};
use crate::engine::fixture;

async fn validate(args: &[&str]) -> (Option<i32>, String) {
    let home = tempfile::tempdir().unwrap();
    let mut all = vec!["validate"];
    all.extend_from_slice(args);
    let out = runbook(&all, home.path()).await;
    (out.status.code(), output_text(&out))
}

/// Runs a scenario file on a fresh lab with a JSON report: exit code, output, report.
async fn run_on_lab(file: &str, extra: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let home = tempfile::tempdir().unwrap();
    let json = home.path().join("report.json");
    let report = format!("json={}", json.display());
    let mut args = vec!["run", "-f", file, "--lab", "--report", &report];
    args.extend_from_slice(extra);
    let out = runbook(&args, home.path()).await;
    (out.status.code(), output_text(&out), crate::common::report(&json))
}

fn path(file: &str) -> String {
    fixture(&format!("scenarios/{file}")).display().to_string()
}

#[tokio::test]
async fn invalid_scenarios_exit_3_with_file_line_column() {
    requires!(Root);
    let home = tempfile::tempdir().unwrap();
    for (file, message) in [
        (
            "unknown-key.yaml",
            "unknown-key.yaml:10:7: unknown key `expct` in step \"ping\": redis; did you mean `expect`?",
        ),
        ("missing-file.yaml", "missing-file.yaml:8:15: step \"deploy\": manifest file missing: manifests/nope.yaml"),
        ("bad-template.yaml", "bad-template.yaml:12:35: unknown parameter `max_memory`; did you mean `maxmemory`?"),
        ("check-that-writes.yaml", "check-that-writes.yaml:5:5: step \"sneaky\": a check cannot apply or delete"),
        (
            "bad-manifest.yaml",
            "manifests/no-name.yaml:3:1: document 1 (applied by step \"deploy\"): missing metadata.name",
        ),
    ] {
        let (code, out) = validate(&[&path(file)]).await;
        assert_eq!(code, Some(3), "{file}: {out}");
        assert!(out.contains(message), "{file}: expected {message:?} in\n{out}");
        let out = runbook(&["run", "-f", &path(file), "--lab"], home.path()).await;
        assert_eq!(out.status.code(), Some(3), "run refuses {file} before touching a cluster");
    }
    let (code, out) = validate(&["redis-cache"]).await;
    assert_eq!(code, Some(0), "{out}");
}

#[tokio::test]
async fn three_mistakes_are_reported_at_once_each_where_it_is() {
    let (code, out) = validate(&[&path("three-mistakes.yaml")]).await;
    assert_eq!(code, Some(3), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let file = path("three-mistakes.yaml");
    assert_eq!(
        lines,
        [
            format!(
                "{file}:14:46: step \"deploy\": manifest file missing: manifests/redis-typo.yaml: \
                 No such file or directory (os error 2)"
            ),
            format!("{file}:19:7: unknown key `timout` in step \"ready\": wait; did you mean `timeout`?"),
            format!("{file}:20:5: step \"deploy\": duplicate step id (first used at line 11)"),
        ],
        "{out}"
    );
}

#[tokio::test]
async fn a_set_value_that_breaks_a_manifest_is_named_before_the_cluster_is_touched() {
    let file = path("replicas-parameter.yaml");
    let (code, out) = validate(&[&file]).await;
    assert_eq!(code, Some(0), "valid with the default: {out}");
    let manifest = fixture("scenarios/manifests/redis-replicas.yaml").display().to_string();
    for (value, error) in [("two", "invalid type: string \"two\""), ("2.5", "invalid type: floating point `2.5`")] {
        let (code, out) = validate(&[&file, "--set", &format!("replicas={value}")]).await;
        assert_eq!(code, Some(3), "{out}");
        assert!(
            out.contains(&format!(
                "{manifest}:6:3: document 1 (applied by step \"deploy\"): spec.replicas: {error}, expected i32 \
                 (line 6 uses parameter `replicas` = {value:?})"
            )),
            "{out}"
        );
    }
    let (code, out) = validate(&[&file, "--set", "replicsa=2"]).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("no parameter \"replicsa\"; did you mean `replicas`?"), "{out}");
    // `run` refuses the same value with the same words, and no cluster is
    // needed to be refused: the kubeconfig named does not exist.
    let home = tempfile::tempdir().unwrap();
    let out =
        runbook(&["run", "-f", &file, "--set", "replicas=two", "--kubeconfig", "/nonexistent/kubeconfig"], home.path())
            .await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(output_text(&out).contains("spec.replicas: invalid type: string \"two\""), "{}", output_text(&out));
}

#[tokio::test]
async fn a_manifest_with_a_wrong_type_or_an_unknown_field_fails_validate() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = "name: typed\ntitle: t\nobjective: t\nsteps:\n  - id: deploy\n    title: t\n    apply:\n      \
                    files: [deploy.yaml]\n";
    std::fs::write(dir.path().join("s.yaml"), scenario).unwrap();
    let manifest = std::fs::read_to_string(fixture("scenarios/manifests/redis-replicas.yaml"))
        .unwrap()
        .replace("{{ replicas }}", "\"two\"")
        .replace("image: redis:7-alpine", "image: redis:7-alpine\n          imagePullPolicyy: Always");
    std::fs::write(dir.path().join("deploy.yaml"), manifest).unwrap();
    let (code, out) = validate(&[&dir.path().join("s.yaml").display().to_string()]).await;
    assert_eq!(code, Some(3), "{out}");
    // serde stops at the type error; the unknown field is found once it is fixed.
    assert!(
        out.contains("deploy.yaml:6:3: document 1 (applied by step \"deploy\"): spec.replicas: invalid type"),
        "{out}"
    );
    let fixed = std::fs::read_to_string(dir.path().join("deploy.yaml")).unwrap().replace("\"two\"", "2");
    std::fs::write(dir.path().join("deploy.yaml"), fixed).unwrap();
    let (code, out) = validate(&[&dir.path().join("s.yaml").display().to_string()]).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(
            "deploy.yaml:16:11: document 1 (applied by step \"deploy\"): unknown field \
             \"spec.template.spec.containers[0].imagePullPolicyy\""
        ),
        "{out}"
    );
}

#[tokio::test]
async fn a_crash_loop_ends_the_wait_and_skips_the_checks_that_need_it() {
    requires!(Root);
    let (code, out, doc) = run_on_lab(&path("crash-loop.yaml"), &[]).await;
    assert_eq!(code, Some(1), "{out}");
    let ready = crate::common::step(&doc, "ready");
    assert_eq!(ready["status"], "failed");
    let actual = ready["actual"].as_str().unwrap();
    assert!(actual.contains("container redis: CrashLoopBackOff, restarted"), "{actual}");
    assert!(actual.contains("last exit: Error, code 1"), "{actual}");
    // Far from its 120 s timeout: the loop was certain after two restarts.
    assert!(ready["duration"].as_f64().unwrap() < 60_000.0, "{ready}");
    let ping = crate::common::step(&doc, "ping");
    assert_eq!(
        (ping["status"].as_str(), ping["message"].as_str()),
        (Some("skipped"), Some("needs step \"ready\", which failed"))
    );
    // A check of the spec needs no pod and still gives its verdict.
    assert_eq!(crate::common::step(&doc, "image")["status"], "passed");
    // `needs: []` opts out of the default: the PING runs, and fails.
    assert_eq!(crate::common::step(&doc, "ping-anyway")["status"], "failed");
}

#[tokio::test]
async fn an_oom_kill_is_named_as_such() {
    requires!(Root);
    let (code, out, doc) = run_on_lab(&path("oom.yaml"), &[]).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(crate::common::failed(&doc), ["fill", "still-ready"], "{out}");
    let actual = crate::common::step(&doc, "still-ready")["actual"].as_str().unwrap().to_string();
    assert!(
        actual.contains(
            "container redis: OOMKilled (the memory limit is too small for what it uses; for Redis, \
                         maxmemory must fit under the limit), restarted once"
        ),
        "{actual}"
    );
}

#[tokio::test]
async fn needs_must_name_an_earlier_step() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: n\ntitle: t\nobjective: t\nsteps:\n  - id: ping\n    title: t\n    needs: [redy, later]\n    \
                redis: {pod: {selector: app=r}, command: [PING]}\n  - id: later\n    title: t\n    \
                wait: {podsReady: {selector: app=r}}\n";
    std::fs::write(dir.path().join("s.yaml"), text).unwrap();
    let file = dir.path().join("s.yaml").display().to_string();
    let (code, out) = validate(&[&file]).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains(&format!("{file}:7:13: step \"ping\": needs \"redy\", which is not a step id")), "{out}");
    assert!(
        out.contains(&format!("{file}:7:19: step \"ping\": needs \"later\", which is not a step before this one")),
        "{out}"
    );
}

/// The examples/ scenarios, as a user runs them.
fn example(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("scenario.yaml")
        .display()
        .to_string()
}

#[tokio::test]
async fn the_examples_validate_and_run_green_on_the_lab() {
    requires!(Root);
    for name in ["configmap-tutorial", "durability"] {
        let (code, out) = validate(&[&example(name)]).await;
        assert_eq!(code, Some(0), "{name}: {out}");
        let (code, out, doc) = run_on_lab(&example(name), &[]).await;
        assert_eq!(code, Some(0), "{name}: {out}");
        let steps = doc["steps"].as_array().unwrap();
        assert!(steps.iter().all(|s| s["status"] == "passed"), "{name}: {out}");
    }
}

#[tokio::test]
async fn the_tutorial_with_a_bad_policy_stops_at_the_crash_loop() {
    requires!(Root);
    // A policy Redis does not know: the new Redis refuses to start, the wait
    // says so as soon as the crash loop is certain, the checks of the new
    // Redis are skipped, and the checks before the change still pass.
    let (code, out, doc) = run_on_lab(&example("configmap-tutorial"), &["--set", "policy=volatile-lfu-typo"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(crate::common::failed(&doc), ["ready-again"], "{out}");
    assert_eq!(crate::common::step(&doc, "new-policy")["status"], "skipped");
    assert_eq!(crate::common::step(&doc, "default-policy")["status"], "passed");
    let actual = crate::common::step(&doc, "ready-again")["actual"].as_str().unwrap().to_string();
    assert!(actual.contains("CrashLoopBackOff"), "{actual}");
}

#[tokio::test]
async fn condition_waits_hold_for_a_name_and_a_selector_and_say_what_they_saw() {
    requires!(Root);
    let (code, out, doc) = run_on_lab(&path("condition.yaml"), &[]).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(crate::common::failed(&doc), ["never"], "{out}");
    let pods = crate::common::step(&doc, "pods-ready");
    assert_eq!(pods["output"].as_str().unwrap().lines().count(), 2, "{pods}");
    let never = crate::common::step(&doc, "never");
    assert_eq!(never["actual"], "deployment/conditioned: Available is True", "{never}");
    assert_eq!(never["command"], "kubectl wait --for=condition=Available=False deployment/conditioned --timeout=2s");
}

#[tokio::test]
async fn a_partial_object_assert_waits_for_convergence_and_names_each_difference() {
    requires!(Root);
    let (code, out, doc) = run_on_lab(&path("partial-object.yaml"), &[]).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(crate::common::failed(&doc), ["never"], "{out}");
    let converged = crate::common::step(&doc, "converges");
    assert_eq!(converged["status"], "passed", "{converged}");
    assert!(converged["message"].as_str().is_some_and(|m| m.starts_with("held after ")), "{converged}");
    assert!(converged["duration"].as_u64().unwrap() >= 2000, "not before the readiness delay: {converged}");
    let never = crate::common::step(&doc, "never");
    assert_eq!(never["expected"], "every field given in contains", "{never}");
    let differences: Vec<&str> = never["output"].as_str().unwrap().lines().collect();
    assert_eq!(
        differences,
        [
            "spec.replicas: expected 3, found 2",
            "spec.template.spec.containers[name=redis].image: expected redis:8, found redis:7-alpine",
            "spec.template.spec.containers[name=exporter]: expected an item named exporter, found none",
        ],
        "{never}"
    );
    assert!(never["actual"].as_str().unwrap().starts_with("3 field(s) differ: spec.replicas: expected 3, found 2"));
    assert!(never["duration"].as_u64().unwrap() >= 2000, "read again for its 2 s: {never}");
    assert_eq!(never["command"], "kubectl get deployment/shaped -o yaml   # holds every field given in contains");
}

#[tokio::test]
async fn contains_and_path_do_not_mix_and_eventually_is_a_duration() {
    let steps = [
        ("{object: {kind: Pod, name: p}, path: status.phase, contains: {status: {}}}", "not both"),
        ("{object: {kind: Pod, name: p}}", "needs a path (with expect) or contains"),
        ("{object: {kind: Pod, name: p}, contains: {a: 1}, expect: {equals: 1}}", "expect goes with a path"),
        (
            "{object: {kind: Pod, name: p}, contains: {a: 1}, eventually: soon}",
            "assert.eventually \"soon\" is not a duration",
        ),
    ];
    for (assert, says) in steps {
        let text = format!("name: s\ntitle: t\nobjective: o\nsteps:\n  - id: a\n    title: a\n    assert: {assert}\n");
        let (code, out) = crate::common::validate_text(&text).await;
        assert_eq!(code, Some(3), "{assert}: {out}");
        assert!(out.contains(says), "{assert}: {out}");
    }
}

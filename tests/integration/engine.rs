//! The runbook binary against the lab: `run` end to end with reports,
//! `verify` on deliberately broken deployments, invalid scenarios, no cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::requires;
use crate::common::{TestLab, output_text, runbook};

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)
}

/// Step id → (status, expected, actual) from a JSON report.
fn statuses(report: &Path) -> BTreeMap<String, (String, String, String)> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (field("id"), (field("status"), field("expected"), field("actual")))
        })
        .collect()
}

#[tokio::test]
async fn run_without_a_kubeconfig_uses_the_lab_and_passes_with_reports() {
    requires!(Root, Chromium);
    let home = tempfile::tempdir().unwrap();
    let (json, junit, audit) = (home.path().join("r.json"), home.path().join("r.xml"), home.path().join("r.md"));
    let html = home.path().join("r.html");
    let args = [
        "run",
        "redis-cache",
        "--report",
        &format!("json={}", json.display()),
        "--report",
        &format!("junit={}", junit.display()),
        "--report",
        &format!("audit={}", audit.display()),
        "--report",
        &format!("html={}", html.display()),
    ];
    let out = runbook(&args, home.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(output_text(&out).contains("no kubeconfig found: running on the embedded lab"), "{}", output_text(&out));
    let steps = statuses(&json);
    assert_eq!(steps.len(), 17);
    assert!(steps.values().all(|(s, _, _)| s == "passed"), "{steps:?}");

    // JUnit: well-formed XML with one test case per check, read by a real parser.
    let parsed = std::process::Command::new("python3")
        .args(["-c", "import sys,xml.etree.ElementTree as E; r=E.parse(sys.argv[1]).getroot(); s=r.find('testsuite'); print(s.get('tests'), s.get('failures'), len(s.findall('testcase')))"])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "11 0 11",
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );

    // The audit report reads like the seed: command, real output, explanation.
    let md = std::fs::read_to_string(&audit).unwrap();
    assert!(md.starts_with("# Deploying and Verifying Redis as an In-Memory Cache on Kubernetes\n"));
    let step = md
        .split("## Step 11: Verify Redis configuration (maxmemory)")
        .nth(1)
        .expect("step 11")
        .split("---")
        .next()
        .unwrap();
    assert!(step.contains("-- redis-cli CONFIG GET maxmemory\n"), "{step}");
    assert!(step.contains("1) \"maxmemory\"\n2) \"2097152\""), "{step}");
    assert!(step.contains("### Result: PASSED"), "{step}");
    assert!(md.contains("**PASSED**: 17 passed, 0 failed"), "{md}");
    crate::browser::assert_html_report(home.path(), "r", &crate::common::report(&json), None).await;
}

/// Applies a fixture as a learner would, then grades it with `verify`.
async fn verify_fixture(
    name: &str,
    wait_for_rollout: bool,
) -> (Option<i32>, BTreeMap<String, (String, String, String)>, String) {
    let t = TestLab::with_pods().await;
    crate::common::deploy_redis_cache_fixture(&t, name, wait_for_rollout).await;
    let report = t.dir.path().join("verify.json");
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let before = t.revision().await;
    let out = runbook(
        &["verify", "redis-cache", "--kubeconfig", &kubeconfig, "--report", &format!("json={}", report.display())],
        t.dir.path(),
    )
    .await;
    if wait_for_rollout {
        assert_eq!(t.revision().await, before, "verify changed the cluster:\n{}", output_text(&out));
    }
    (out.status.code(), statuses(&report), output_text(&out))
}

fn failed(steps: &BTreeMap<String, (String, String, String)>) -> Vec<&str> {
    steps.iter().filter(|(_, (s, _, _))| s == "failed").map(|(id, _)| id.as_str()).collect()
}

#[tokio::test]
async fn verify_passes_a_good_deployment_and_changes_nothing() {
    requires!(Root, Kubectl);
    let (code, steps, out) = verify_fixture("good", true).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        steps.len(),
        15,
        "verify runs the checks only (and the discoveries and the capture that find the objects)"
    );
    assert!(failed(&steps).is_empty(), "{out}");
}

#[tokio::test]
async fn verify_maxmemory_4mb_fails_exactly_the_memory_checks() {
    requires!(Root, Kubectl);
    let (code, steps, out) = verify_fixture("maxmemory-4mb", true).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(failed(&steps), ["maxmemory", "verify-configmap"], "{out}");
    assert_eq!(steps["maxmemory"], ("failed".into(), "2097152 (2mb)".into(), "4194304".into()));
    assert_eq!(steps["verify-configmap"].2, "maxmemory 4mb");
}

#[tokio::test]
async fn verify_cpu_500m_fails_exactly_the_cpu_check() {
    requires!(Root, Kubectl);
    let (code, steps, out) = verify_fixture("cpu-500m", true).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(failed(&steps), ["cpu-request"], "{out}");
    assert_eq!(steps["cpu-request"], ("failed".into(), "1 (as a quantity)".into(), "500m".into()));
}

#[tokio::test]
async fn verify_unmounted_configmap_fails_the_mount_and_memory_checks() {
    requires!(Root, Kubectl);
    let (code, steps, out) = verify_fixture("configmap-not-mounted", true).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(failed(&steps), ["config-mounted", "maxmemory"], "{out}");
    assert_eq!(steps["maxmemory"].2, "0");
    // busybox's ls (redis:alpine) exits 1 for a missing path; GNU ls would say 2.
    assert!(steps["config-mounted"].2.starts_with("exit code 1"), "{:?}", steps["config-mounted"]);
}

#[tokio::test]
async fn verify_wrong_image_fails_the_image_and_skips_the_runtime_checks() {
    requires!(Root, Kubectl);
    let (code, steps, out) = verify_fixture("wrong-image", false).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(failed(&steps), ["container-image", "deployment-ready", "rollout-complete"], "{out}");
    // The checks that talk to Redis need the rollout: without a running pod
    // they prove nothing, so they are skipped, saying why, and lose their points.
    for runtime in ["config-mounted", "data-writable", "maxmemory", "ping", "port-listening"] {
        assert_eq!(steps[runtime].0, "skipped", "{runtime}: {out}");
    }
    assert!(out.contains("needs step \"rollout-complete\", which failed"), "{out}");
    assert!(out.contains("What to fix (9 points lost):"), "{out}");
    assert!(
        out.contains(
            "Verify Redis configuration (maxmemory) (2 pt): not checked: needs step \"rollout-complete\", which failed"
        ),
        "{out}"
    );
    assert_eq!(steps["container-image"], ("failed".into(), "redis:alpine".into(), "nginx:1.27".into()));
    assert!(steps["rollout-complete"].2.contains("updated replicas are available"), "{:?}", steps["rollout-complete"]);
    assert!(out.contains("ImagePullBackOff") || out.contains("ErrImagePull"), "diagnostics name the cause:\n{out}");
    for passing in ["verify-configmap", "cpu-request", "qos-class"] {
        assert_eq!(steps[passing].0, "passed", "{passing}");
    }
}

#[tokio::test]
async fn a_manifest_the_server_rejects_exits_3_and_cleans_up() {
    requires!(Root);
    let t = TestLab::with_pods().await;
    let path = fixture("scenarios/server-rejects.yaml");
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let out = runbook(&["run", "-f", &path.display().to_string(), "--kubeconfig", &kubeconfig], t.dir.path()).await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(output_text(&out).contains("the server rejected Deployment \"mismatched\""), "{}", output_text(&out));
    assert!(t.api_get("configmaps", "default", "first").await.is_none(), "what the run applied was removed");
}

#[tokio::test]
async fn an_unreachable_cluster_exits_2_quickly() {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = runbook(&["verify", "redis-cache", "--kubeconfig", &kubeconfig.display().to_string()], home.path()).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("cannot reach the cluster at https://127.0.0.1:1/"), "{}", output_text(&out));
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn unknown_parameters_and_scenarios_exit_3() {
    requires!(Root);
    let home = tempfile::tempdir().unwrap();
    let out = runbook(&["plan", "redis-cache", "--set", "nope=1"], home.path()).await;
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let out = runbook(&["run", "no-such-scenario", "--lab"], home.path()).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(output_text(&out).contains("no scenario named \"no-such-scenario\""), "{}", output_text(&out));
}

/// Regression: a `redis` check right after a rollout failed with "broken pipe"
/// because a pod without a readiness probe is Ready before Redis listens.
#[tokio::test]
async fn redis_check_waits_for_a_server_that_starts_late() {
    requires!(Root);
    let t = TestLab::with_pods().await;
    let path = fixture("scenarios/late-redis.yaml");
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let out = runbook(&["run", "-f", &path.display().to_string(), "--kubeconfig", &kubeconfig], t.dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

/// Verify reads from one LIST per kind (`engine::read_cache`): after a wait
/// that had to look again, later checks must read the state it waited for,
/// not the LIST taken before the first step (which saw no ready replica).
#[tokio::test]
async fn verify_reads_afresh_after_a_wait_that_waited() {
    requires!(Root);
    let t = TestLab::with_pods().await;
    crate::common::deploy_redis_cache_fixture(&t, "good", false).await;
    let path = fixture("scenarios/fresh-after-wait.yaml").display().to_string();
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let report = t.dir.path().join("r.json");
    let report_arg = format!("json={}", report.display());
    let out =
        runbook(&["verify", "-f", &path, "--kubeconfig", &kubeconfig, "--report", &report_arg], t.dir.path()).await;
    let doc = crate::common::report(&report);
    let waited = crate::common::measurement(crate::common::step(&doc, "rolled-out"), "rollout time");
    // Otherwise the first LIST already saw it ready, and this proves nothing.
    assert!(waited >= 50.0, "the rollout was over before verify looked ({waited} ms)");
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(crate::common::step(&doc, "ready-replicas")["output"], "1");
}

/// `runbook plan redis-cache | head -1` used to panic (exit 101). A reader
/// that has gone away ends every listing quietly with 141, as a shell reports
/// SIGPIPE. The pipe's reading end is closed before runbook starts, so every
/// write fails.
#[test]
fn a_closed_stdout_ends_quietly_with_141() {
    for args in [
        &["list"][..],
        &["describe", "redis-cluster"],
        &["plan", "redis-cache"],
        &["validate", "redis-cache"],
        &["schema"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "runbook {args:?}: {stderr}");
        assert_eq!(stderr, "", "runbook {args:?} says nothing");
    }
}

/// `notEquals` against a captured value: the replacement of a deleted pod is
/// a new pod. With nothing deleted (the delete's selector matches no pod),
/// the same check fails and names the pod that stayed.
#[tokio::test]
async fn not_equals_tells_a_replacement_from_the_same_pod() {
    requires!(Root);
    let t = TestLab::with_pods().await;
    let path = fixture("scenarios/replacement.yaml").display().to_string();
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let run = async |name: &str, extra: &[&str]| {
        let report = t.dir.path().join(format!("{name}.json"));
        let report_arg = format!("json={}", report.display());
        let mut args = vec!["run", "-f", &path, "--kubeconfig", &kubeconfig, "--report", &report_arg];
        args.extend(extra);
        let out = runbook(&args, t.dir.path()).await;
        (out.status.code(), crate::common::report(&report), output_text(&out))
    };
    let (code, doc, text) = run("replaced", &[]).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(crate::common::step(&doc, "new-pod")["status"], "passed");

    let (code, doc, text) = run("kept", &["--set", "delete_selector=app=nobody"]).await;
    assert_eq!(code, Some(1), "{text}");
    let check = crate::common::step(&doc, "new-pod");
    assert_eq!(check["status"], "failed", "{text}");
    let stayed = check["actual"].as_str().unwrap();
    assert!(stayed.starts_with("replaced-"), "{check}");
    assert_eq!(check["expected"], format!("not {stayed}"));
}

/// A Pod waited for by name (a selector `metadata.name=redis` used to wait
/// forever with "0 of 0 Ready"); a name that matches nothing says so.
#[tokio::test]
async fn pods_ready_by_name_and_a_name_that_matches_nothing() {
    requires!(Root);
    let t = TestLab::with_pods().await;
    let path = fixture("scenarios/pod-by-name.yaml").display().to_string();
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let report = t.dir.path().join("r.json");
    let report_arg = format!("json={}", report.display());
    let args = ["run", "-f", &path, "--kubeconfig", &kubeconfig, "--report", &report_arg];
    let out = runbook(&args, t.dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let doc = crate::common::report(&report);
    assert_eq!(
        crate::common::step(&doc, "ready")["command"],
        "kubectl wait --for=condition=Ready pod/solo --timeout=5s"
    );

    let out = runbook(&[&args[..], &["--set", "wait_for=nobody"]].concat(), t.dir.path()).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let ready = crate::common::step(&crate::common::report(&report), "ready").clone();
    assert_eq!(ready["status"], "failed");
    assert_eq!(ready["actual"], "no pod matches (pod/nobody)", "{ready}");
}

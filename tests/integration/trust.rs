//! What makes a verdict trustworthy and a run safe: interrupted runs leave
//! nothing behind, `runbook cleanup` finds what a killed run left, scenarios
//! run side by side in namespaces of their own, verify gives the same verdict
//! every time, and drills run only where they are allowed to.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};

use crate::common::requires;
use crate::common::{TestLab, report, runbook, step};

/// `runbook ARGS` started in the background, as the tests' `runbook()` runs it.
fn spawn_runbook(args: &[&str], home: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env("TMPDIR", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("runbook starts")
}

/// Objects in the lab labelled as runbook's, as `kind/namespace/name`.
async fn labelled(t: &TestLab) -> Vec<String> {
    let mut found = Vec::new();
    for resource in ["namespaces", "configmaps", "secrets", "services", "deployments", "statefulsets", "pods"] {
        for object in t.api_list(resource, "").await {
            let labels = &object["metadata"]["labels"];
            if labels["app.kubernetes.io/managed-by"] == "runbook" {
                found.push(format!(
                    "{resource}/{}/{}",
                    object["metadata"]["namespace"].as_str().unwrap_or_default(),
                    object["metadata"]["name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    found
}

/// Waits until only the lab's network holder runs: every pod process is gone.
async fn wait_for_no_pod_processes(t: &TestLab) {
    let started = Instant::now();
    while t.lab.process_ids().len() > 1 {
        assert!(started.elapsed() < Duration::from_secs(60), "pod processes remain: {:?}", t.lab.process_ids());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn seeded_rng(what: &str) -> rand::rngs::StdRng {
    let seed = std::env::var("RUNBOOK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    eprintln!("{what}: RUNBOOK_TEST_SEED={seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

#[tokio::test]
async fn twenty_runs_interrupted_at_random_points_leave_nothing_behind() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    // How long a whole run takes here: the signals fall within it. The
    // second run is measured: the first also pays for what a lab does once
    // (an image's root, the first pod network), which would stretch the
    // window past the runs that follow.
    let mut whole = Duration::ZERO;
    for _ in 0..2 {
        let began = Instant::now();
        let out = runbook(&["run", "redis-cache", "--kubeconfig", &kubeconfig], t.dir.path()).await;
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        whole = began.elapsed();
    }
    eprintln!("an uninterrupted run takes {whole:?}");
    let mut rng = seeded_rng("interrupted runs");
    let mut interrupted = 0;
    for i in 0..20 {
        let delay = whole.mul_f64(rng.random_range(0.0..1.0));
        let json = t.dir.path().join(format!("interrupted-{i}.json"));
        let report_arg = format!("json={}", json.display());
        let child =
            spawn_runbook(&["run", "redis-cache", "--kubeconfig", &kubeconfig, "--report", &report_arg], t.dir.path());
        let pid = Pid::from_raw(child.id().unwrap() as i32);
        tokio::time::sleep(delay).await;
        let signal = if i % 4 == 3 { Signal::SIGTERM } else { Signal::SIGINT };
        let _ = kill(pid, signal);
        let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
            .await
            .expect("an interrupted run ends")
            .unwrap();
        let text = crate::common::output_text(&out);
        match out.status.code() {
            Some(130) => {
                interrupted += 1;
                // The partial reports are written, if the run got as far as starting.
                if json.exists() {
                    assert_eq!(report(&json)["summary"]["verdict"], "interrupted", "{text}");
                }
            }
            Some(0) => {}
            // Before its handlers are installed (the first milliseconds), the
            // signal ends runbook as it ends any process; it has touched nothing.
            None => {}
            other => panic!("run {i} interrupted after {delay:?} exited {other:?}:\n{text}"),
        }
        assert!(!text.contains("left behind"), "run {i} after {delay:?}:\n{text}");
        assert_eq!(
            labelled(&t).await,
            Vec::<String>::new(),
            "run {i} interrupted after {delay:?} left objects:\n{text}"
        );
        wait_for_no_pod_processes(&t).await;
    }
    eprintln!("{interrupted} of 20 runs were interrupted (the others had finished)");
    assert!(interrupted >= 10, "most runs should be caught mid-way: {interrupted}");
}

#[tokio::test]
async fn interrupted_runs_on_their_own_lab_remove_it_entirely() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    let home = tempfile::tempdir().unwrap();
    for delay_ms in [100u64, 200, 300, 450, 700, 1_500, 4_000] {
        let mut child = spawn_runbook(&["run", "redis-cache", "--lab"], home.path());
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGINT);
        let status = tokio::time::timeout(Duration::from_secs(180), child.wait()).await.unwrap().unwrap();
        assert!(matches!(status.code(), Some(130) | Some(0) | None), "{status}");
        // The lab's state dir (kubeconfig, volumes) went with it...
        let left: Vec<_> = std::fs::read_dir(home.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "after {delay_ms} ms: {left:?}");
        // ...and so did every process that ran from it.
        let marker = home.path().display().to_string();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&marker),
                "after {delay_ms} ms a process remains: {}",
                String::from_utf8_lossy(&cmdline)
            );
        }
    }
}

/// The cause of a CI failure: a run interrupted while its lab was starting
/// left the lab's state dir behind. `Lab::start` cut short at any point (its
/// future dropped, as Ctrl-C drops it), or a lab dropped just after it
/// started (while its userland prebuild still writes), leaves no state dir.
#[tokio::test]
async fn a_lab_start_cut_short_or_dropped_at_once_leaves_no_state_dir() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    let home = tempfile::tempdir().unwrap();
    let mut cut = 0;
    for (i, after_ms) in [0u64, 1, 2, 5, 10, 20, 40, 80, 160, 320].into_iter().enumerate() {
        let state_dir = home.path().join(format!("lab-{i}"));
        let config = runbook::lab::LabConfig {
            discard_state: true,
            sandbox_program: Some(env!("CARGO_BIN_EXE_runbook").into()),
            ..runbook::lab::LabConfig::new(state_dir.clone())
        };
        match tokio::time::timeout(Duration::from_millis(after_ms), runbook::lab::Lab::start(config)).await {
            Err(_) => cut += 1,
            Ok(lab) => drop(lab.expect("the lab starts")),
        }
        assert!(!state_dir.exists(), "a lab start cut after {after_ms} ms left {}", state_dir.display());
    }
    assert!(cut >= 2, "some starts should be cut short: {cut}");
}

#[tokio::test]
async fn cleanup_finds_and_removes_what_a_killed_run_left() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let mut child = spawn_runbook(&["run", "redis-cache", "--kubeconfig", &kubeconfig], t.dir.path());
    let started = Instant::now();
    while t.api_get("deployments", "default", "redis-deployment").await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "the run deploys Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No chance to clean up: as if the machine running it died.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let configmap = t.api_get("configmaps", "default", "my-redis-config").await.expect("the run created it");
    let run_id = configmap["metadata"]["labels"]["runbook.dev/run-id"].as_str().unwrap().to_string();
    assert_eq!(run_id.len(), 8);

    let out = runbook(&["cleanup", "--kubeconfig", &kubeconfig, "--dry-run"], t.dir.path()).await;
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{listed}");
    // Each object on a line of its own, with the run that made it.
    let lines: Vec<&str> = listed.lines().map(str::trim).collect();
    assert!(lines.contains(&format!("configmap/my-redis-config -n default (run {run_id})").as_str()), "{listed}");
    assert!(
        lines.contains(&format!("deployment.apps/redis-deployment -n default (run {run_id})").as_str()),
        "{listed}"
    );
    assert!(t.api_get("configmaps", "default", "my-redis-config").await.is_some(), "a dry run removes nothing");

    // Another namespace, or another run's id, finds nothing of this run.
    let out = runbook(&["cleanup", "--kubeconfig", &kubeconfig, "-n", "kube-system"], t.dir.path()).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("nothing labelled app.kubernetes.io/managed-by=runbook in namespace kube-system"),
        "{text}"
    );
    let out = runbook(&["cleanup", "--kubeconfig", &kubeconfig, "--run-id", "zzzzzzzz"], t.dir.path()).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing labelled"));
    assert!(t.api_get("configmaps", "default", "my-redis-config").await.is_some());

    let out = runbook(&["cleanup", "--kubeconfig", &kubeconfig, "--run-id", &run_id], t.dir.path()).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().last(), Some("removed 2; nothing left"), "{text}");
    assert_eq!(labelled(&t).await, Vec::<String>::new());
    wait_for_no_pod_processes(&t).await;
}

#[tokio::test]
async fn scenarios_run_side_by_side_in_namespaces_of_their_own() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    // redis-cache asks for a whole CPU by default; two of them and
    // counter-service would not fit on a two-core node (the lab's scheduler
    // refuses what a real one would), so these ask for less.
    let runs = ["redis-cache", "redis-cache", "counter-service"].map(|scenario| {
        let mut args = vec!["run", scenario, "--kubeconfig", &kubeconfig, "--ephemeral-namespace"];
        if scenario == "redis-cache" {
            args.extend(["--set", "cpu_request=250m"]);
        }
        spawn_runbook(&args, t.dir.path())
    });
    let outputs = futures::future::join_all(runs.into_iter().map(|c| c.wait_with_output())).await;
    let mut namespaces = Vec::new();
    for out in outputs {
        let out = out.unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let ns = text.lines().find_map(|l| l.strip_prefix("namespace ")).unwrap().split(' ').next().unwrap();
        namespaces.push(ns.to_string());
    }
    namespaces.sort();
    namespaces.dedup();
    assert_eq!(namespaces.len(), 3, "each run had a namespace of its own: {namespaces:?}");
    for ns in &namespaces {
        assert!(t.api_get("namespaces", "", ns).await.is_none(), "{ns} removed at cleanup");
    }
    assert_eq!(labelled(&t).await, Vec::<String>::new());
}

/// What a grader compares: every step's id, status, expected and actual, the score.
fn verdict(doc: &serde_json::Value) -> String {
    let steps: Vec<String> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {} {} {}", s["id"], s["status"], s["expected"], s["actual"]))
        .collect();
    format!("{}\n{} {}", steps.join("\n"), doc["summary"]["verdict"], doc["summary"]["score"])
}

#[tokio::test]
async fn verify_gives_the_same_verdict_twenty_times() {
    requires!(Root, Kubectl);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    crate::common::deploy_redis_cache_fixture(&t, "maxmemory-4mb", true).await;
    let (code, first) = crate::common::verify_report(&t, "redis-cache").await;
    assert_eq!(code, Some(1), "the 4mb deployment fails the memory checks");
    let expected = verdict(&first);
    for i in 1..20 {
        let (again, doc) = crate::common::verify_report(&t, "redis-cache").await;
        assert_eq!(again, code, "verify #{i}");
        assert_eq!(verdict(&doc), expected, "verify #{i} differs");
    }
    let fixes: Vec<&str> =
        first["summary"]["to_fix"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(!fixes.is_empty() && fixes.iter().all(|id| step(&first, id)["status"] == "failed"), "{fixes:?}");
}

#[tokio::test]
async fn drills_are_refused_on_a_context_that_is_not_the_lab() {
    let t = TestLab::start().await;
    // The same cluster under another context name: runbook cannot tell it is the lab.
    let staging = t.dir.path().join("staging-kubeconfig");
    std::fs::write(&staging, std::fs::read_to_string(&t.lab.kubeconfig).unwrap().replace("runbook-lab", "staging"))
        .unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/scenarios/disruptive.yaml");
    let json = t.dir.path().join("d.json");
    let report_arg = format!("json={}", json.display());
    let staging_arg = staging.display().to_string();
    let out =
        runbook(&["run", "-f", scenario, "--kubeconfig", &staging_arg, "--report", &report_arg], t.dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let drill = step(&report(&json), "drill").clone();
    assert_eq!(drill["status"], "skipped");
    assert!(drill["message"].as_str().unwrap().contains("--allow-disruption"), "{drill}");

    let out = runbook(
        &["run", "-f", scenario, "--kubeconfig", &staging_arg, "--allow-disruption", "--report", &report_arg],
        t.dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(step(&report(&json), "drill")["status"], "passed");

    // On the lab's own context, it runs without asking.
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let out =
        runbook(&["run", "-f", scenario, "--kubeconfig", &kubeconfig, "--report", &report_arg], t.dir.path()).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(step(&report(&json), "drill")["status"], "passed");
}

#[tokio::test]
async fn a_run_that_leaves_something_behind_says_so() {
    requires!(Kubectl);
    let t = TestLab::start().await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/scenarios/held.yaml");
    let json = t.dir.path().join("held.json");
    let report_arg = format!("json={}", json.display());
    let args = ["run", "-f", scenario, "--kubeconfig", &kubeconfig, "--cleanup-timeout", "2s", "--report", &report_arg];
    let out = runbook(&args, t.dir.path()).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let doc = report(&json);
    let run_id = doc["run"]["run_id"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "left behind in the cluster: configmap/held (remove with `runbook cleanup --run-id {run_id}`)"
        )),
        "{text}"
    );
    assert_eq!(doc["summary"]["leftovers"], serde_json::json!(["configmap/held"]));
    // Once the finalizer is cleared, `runbook cleanup` finishes the job.
    t.kubectl(&["patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]).await;
    let out = runbook(&["cleanup", "--kubeconfig", &kubeconfig, "--run-id", run_id], t.dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(t.api_get("configmaps", "default", "held").await.is_none());
}

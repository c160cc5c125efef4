//! The grading corpus (fixtures/grading/<scenario>/<variant>/): what learners
//! build, from runbook's own manifests to the seed's text followed to the
//! letter, other correct routes, and variants that each break one
//! requirement. Every variant is deployed with kubectl into a namespace of
//! one lab; `verify` must give exactly the expected verdict (the checks that
//! fail, the score, the hint for each) and write nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::common::{TestLab, output_text, report, requires, runbook};

/// A variant's `variant.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Variant {
    /// What the learner did, in a sentence.
    about: String,
    /// How the learner built it, in order.
    build: Vec<Command>,
    /// Deployed alone, after the others, and removed after grading: for a
    /// variant with cluster-scoped objects (PersistentVolumes) of fixed names.
    #[serde(default)]
    exclusive: bool,
    /// With `exclusive`: what removes it besides its namespace.
    #[serde(default)]
    teardown: Vec<Command>,
    /// `--set` for verify (what a grader tells runbook about the learner's names).
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// Points earned, as `earned/possible`.
    score: String,
    /// Every graded check that must fail, with (a part of) the hint shown.
    #[serde(default)]
    failed: BTreeMap<String, String>,
}

/// A command of a variant, run in its directory.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Command {
    /// kubectl with these arguments and `-n NAMESPACE` (a file of the
    /// variant's directory may be named by its file name).
    Kubectl(Vec<String>),
    /// A shell script (`sh -ec`), with KUBECONFIG, NAMESPACE and LAB_STATE
    /// (the lab's state dir) set: what a learner typed by hand.
    Shell {
        /// The script.
        sh: String,
    },
}

struct Loaded {
    scenario: String,
    name: String,
    dir: PathBuf,
    variant: Variant,
}

fn corpus() -> Vec<Loaded> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/grading");
    let mut all = Vec::new();
    for scenario in sorted_dirs(&root) {
        for dir in sorted_dirs(&scenario) {
            let file = dir.join("variant.yaml");
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let variant: Variant = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            all.push(Loaded { scenario: file_name(&scenario), name: file_name(&dir), dir, variant });
        }
    }
    all
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The namespace a variant is deployed in.
fn namespace(v: &Loaded) -> String {
    format!("{}-{}", v.scenario, v.name).chars().take(63).collect()
}

/// What verify must not change: every object of the namespace by kind and
/// name, with its uid and what it declares (spec or data), not its status;
/// and the workloads that have not made all their pods yet.
async fn declared(t: &TestLab, ns: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let kinds = "configmaps,secrets,services,deployments,statefulsets,pods,persistentvolumeclaims,\
                 horizontalpodautoscalers,serviceaccounts";
    let text = t.kubectl(&["get", kinds, "-n", ns, "-o", "json"]).await;
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    let items = list["items"].as_array().unwrap();
    let key =
        |o: &serde_json::Value| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap());
    let objects = items
        .iter()
        .map(|o| {
            let declared = [&o["metadata"]["uid"], &o["metadata"]["labels"], &o["spec"], &o["data"]];
            (key(o), serde_json::to_string(&declared).unwrap())
        })
        .collect();
    let unfinished = items
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("StatefulSet" | "Deployment")))
        .filter(|o| o["status"]["replicas"].as_i64().unwrap_or(0) < o["spec"]["replicas"].as_i64().unwrap_or(1))
        .map(key)
        .collect();
    (objects, unfinished)
}

/// The namespace's declared objects once they stop changing: the build
/// returns before a StatefulSet has made its pods one by one (each waits
/// for the one before to be Ready, which can take longer than a second),
/// which would otherwise count as verify changing the namespace. Every
/// workload has all its pods and two readings a second apart agree, or 60 s
/// pass.
async fn settled(t: &TestLab, ns: &str) -> BTreeMap<String, String> {
    let (mut last, _) = declared(t, ns).await;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let (now, unfinished) = declared(t, ns).await;
        if now == last && unfinished.is_empty() {
            break;
        }
        last = now;
    }
    last
}

#[tokio::test]
async fn every_variant_of_the_corpus_gets_exactly_its_expected_verdict_and_verify_writes_nothing() {
    requires!(Root, Kubectl);
    // Dozens of Redis pods at once: timed drills of other tests must not share the machine with them.
    let _serial = crate::common::DRILLS.lock().await;
    let corpus = corpus();
    let t = TestLab::with_pods().await;
    t.enlarge_node(32).await;
    let (shared, exclusive): (Vec<&Loaded>, Vec<&Loaded>) = corpus.iter().partition(|v| !v.variant.exclusive);
    let mut table =
        vec![format!("{:<16} {:<26} {:<10} {:<10} {:>7}  verdict", "scenario", "variant", "expected", "got", "verify")];
    let mut wrong = Vec::new();
    // A scenario's variants side by side, then removed: all 25 at once (60
    // Redis processes) slowed a busy CI machine enough to fail requests.
    let mut scenarios: Vec<&str> = shared.iter().map(|v| v.scenario.as_str()).collect();
    scenarios.dedup();
    for scenario in scenarios {
        let group: Vec<&&Loaded> = shared.iter().filter(|v| v.scenario == scenario).collect();
        for v in &group {
            build(&t, v).await;
        }
        for v in &group {
            grade(&t, v, &mut table, &mut wrong).await;
        }
        let mut delete = vec!["delete".to_string(), "namespace".into(), "--wait=true".into(), "--timeout=120s".into()];
        delete.extend(group.iter().map(|v| namespace(v)));
        t.kubectl(&delete.iter().map(String::as_str).collect::<Vec<_>>()).await;
    }
    for v in exclusive {
        build(&t, v).await;
        grade(&t, v, &mut table, &mut wrong).await;
        t.kubectl(&["delete", "namespace", &namespace(v), "--wait=true", "--timeout=120s"]).await;
        for command in &v.variant.teardown {
            run(&t, v, command).await;
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let per_scenario = |name: &str| corpus.iter().filter(|v| v.scenario == name).count();
    for scenario in ["redis-cache", "counter-service", "redis-sentinel", "redis-cluster"] {
        assert!(per_scenario(scenario) >= 6, "{scenario} needs at least 6 variants");
    }
}

/// Creates the variant's namespace and builds it there.
async fn build(t: &TestLab, v: &Loaded) {
    t.kubectl(&["create", "namespace", &namespace(v)]).await;
    for command in &v.variant.build {
        run(t, v, command).await;
    }
}

async fn run(t: &TestLab, v: &Loaded, command: &Command) {
    let ns = namespace(v);
    match command {
        Command::Kubectl(args) => {
            let mut args: Vec<String> = args
                .iter()
                .map(|a| if v.dir.join(a).is_file() { v.dir.join(a).display().to_string() } else { a.clone() })
                .collect();
            args.extend(["-n".into(), ns]);
            t.kubectl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        }
        Command::Shell { sh } => {
            let out = tokio::process::Command::new("sh")
                .args(["-ec", sh])
                .current_dir(&v.dir)
                .env("KUBECONFIG", &t.lab.kubeconfig)
                .env("NAMESPACE", &ns)
                .env("LAB_STATE", t.dir.path().join("state"))
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}/{}: `{sh}` failed:\n{}", v.scenario, v.name, output_text(&out));
        }
    }
}

/// Runs verify on the variant and compares its verdict with the expected
/// one: a row of the table, and what was wrong (if anything) in `wrong`.
async fn grade(t: &TestLab, v: &Loaded, table: &mut Vec<String>, wrong: &mut Vec<String>) {
    let ns = namespace(v);
    let before = settled(t, &ns).await;
    let json = t.dir.path().join(format!("{ns}.json"));
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let json_arg = format!("json={}", json.display());
    let mut args = vec!["verify", &v.scenario, "--kubeconfig", &kubeconfig, "-n", &ns, "--report", &json_arg];
    let sets: Vec<String> = v.variant.set.iter().map(|(k, val)| format!("{k}={val}")).collect();
    for set in &sets {
        args.extend(["--set", set]);
    }
    let started = std::time::Instant::now();
    let out = runbook(&args, t.dir.path()).await;
    let took = started.elapsed();
    let text = output_text(&out);
    assert!(json.exists(), "{}/{}: no report:\n{text}", v.scenario, v.name);
    let doc = report(&json);
    let summary = &doc["summary"];
    let got_score = format!("{}/{}", summary["score"][0], summary["score"][1]);
    let to_fix: BTreeMap<String, String> = summary["to_fix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap().to_string(), f["advice"].as_str().unwrap().to_string()))
        .collect();
    let mut problems = Vec::new();
    if got_score != v.variant.score {
        problems.push(format!("score {got_score}, expected {}", v.variant.score));
    }
    let expected_ids: Vec<&String> = v.variant.failed.keys().collect();
    let got_ids: Vec<&String> = to_fix.keys().collect();
    if expected_ids != got_ids {
        problems.push(format!("failed checks {got_ids:?}, expected {expected_ids:?}"));
    }
    for (id, hint) in &v.variant.failed {
        if let Some(advice) = to_fix.get(id)
            && !advice.contains(hint.as_str())
        {
            problems.push(format!("{id}: hint {advice:?} does not say {hint:?}"));
        }
    }
    let expected_code = if v.variant.failed.is_empty() { 0 } else { 1 };
    if out.status.code() != Some(expected_code) {
        problems.push(format!("exit {:?}, expected {expected_code}", out.status.code()));
    }
    for step in doc["steps"].as_array().unwrap() {
        if step["status"] == "error" {
            problems.push(format!("{} could not run: {}", step["id"], step["message"]));
        }
    }
    let (after, _) = declared(t, &ns).await;
    if after != before {
        let changed: Vec<&String> =
            before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
        problems.push(format!("verify changed the namespace: {changed:?}"));
    }
    let verdict = if problems.is_empty() { "as expected".to_string() } else { problems.join("; ") };
    table.push(format!(
        "{:<16} {:<26} {:<10} {:<10} {:>6.1}s  {verdict}",
        v.scenario,
        v.name,
        v.variant.score,
        got_score,
        took.as_secs_f64()
    ));
    if !problems.is_empty() {
        wrong.push(format!("{}/{} ({}): {}\n{text}", v.scenario, v.name, v.variant.about, problems.join("; ")));
    }
}

//! Every scenario end to end on upstream Kubernetes: `run --keep` passes with
//! every check (drills included, with `--allow-disruption`: this is not the
//! lab), `verify` then passes on what it left, and gives the same verdict as
//! `verify` on a lab where the same run was kept (step by step: status and
//! expected value; the actual values name pods and addresses), and a second
//! `run` over the kept objects passes and cleans everything up.
//!
//! The scenarios run one at a time: each takes the node's two cores for its
//! drills, and two at once would measure each other.

use crate::cluster::Upstream;
use crate::common::{TestLab, output_text, report, runbook};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `runbook ARGS --kubeconfig K --report json=NAME.json`; returns the
/// exit code, the report and the terminal output.
async fn runbook_json(u: &Upstream, args: &[&str], name: &str) -> (Option<i32>, serde_json::Value, String) {
    let json = u.dir.path().join(format!("{name}.json"));
    let (kubeconfig, report_arg) = (u.kubeconfig_arg(), format!("json={}", json.display()));
    let all = [args, &["--kubeconfig", &kubeconfig, "--report", &report_arg]].concat();
    let out = runbook(&all, u.dir.path()).await;
    (out.status.code(), report(&json), output_text(&out))
}

/// Exit 0, no failed step, full score; `all_steps`: none skipped either
/// (verify leaves out the drills, which write), but the partition drills
/// (the test bed's network plugin, the CNI bridge, ignores NetworkPolicy)
/// and the node-loss drills (the bed has one node, and not a lab one): they
/// must say so and be left out.
fn assert_passed(what: &str, (code, doc, out): &(Option<i32>, serde_json::Value, String), all_steps: bool) {
    assert_eq!(*code, Some(0), "{what} failed:\n{out}");
    assert_eq!(doc["summary"]["failed"], 0, "{what}:\n{out}");
    if all_steps {
        let skipped: Vec<&serde_json::Value> =
            doc["steps"].as_array().unwrap().iter().filter(|s| s["status"] == "skipped").collect();
        for step in skipped {
            let message = step["message"].as_str().unwrap_or_default();
            let not_here = message.contains("does not seem to enforce NetworkPolicy")
                || (step["id"] == "node-loss-drill" && message.contains(": losing it loses "));
            assert!(not_here, "{what} skipped {}:\n{out}", step["id"]);
        }
    }
    let score = &doc["summary"]["score"];
    assert_eq!(score[0], score[1], "{what}: score {score}\n{out}");
}

/// A verify report's verdict, without what differs between clusters by
/// nature (pod names, addresses, durations): id → (status, expected), and the score.
fn verdict(doc: &serde_json::Value) -> (Vec<(String, String, String)>, serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let steps = doc["steps"].as_array().unwrap();
    let steps = steps.iter().map(|s| (text(&s["id"]), text(&s["status"]), text(&s["expected"]))).collect();
    (steps, doc["summary"]["score"].clone())
}

/// `run --keep` then `verify` on a lab of its own: verify's report.
async fn verify_on_a_lab(u: &Upstream, scenario: &str) -> (serde_json::Value, String) {
    let lab = TestLab::with_pods().await;
    let kubeconfig = lab.lab.kubeconfig.display().to_string();
    let kept = runbook(&["run", scenario, "--keep", "--kubeconfig", &kubeconfig], u.dir.path()).await;
    assert_eq!(kept.status.code(), Some(0), "run {scenario} --keep on the lab:\n{}", output_text(&kept));
    let json = u.dir.path().join("lab-verify.json");
    let report_arg = format!("json={}", json.display());
    let out = runbook(&["verify", scenario, "--kubeconfig", &kubeconfig, "--report", &report_arg], u.dir.path()).await;
    (report(&json), output_text(&out))
}

/// What the node's pod network looks like: every pod's IP as the API has it,
/// and every pod network namespace's address and listening TCP ports as the
/// kernel has them. When a probe is refused at a pod IP where the pod's
/// process listens, this tells a stale or duplicated address from the rest.
async fn pod_network(u: &Upstream) -> String {
    let pods = u.kubectl(&["get", "pods", "-A", "-o", "wide"]).await;
    let script = r#"for ns in $(ip netns list | cut -d' ' -f1); do
        echo "$ns: $(ip -n "$ns" -4 -o addr show eth0 2>/dev/null | awk '{print $4}') listening $(ip netns exec "$ns" ss -Htln 2>/dev/null | awk '{print $4}' | tr '\n' ' ')"
    done"#;
    let netns = std::process::Command::new("sh").args(["-c", script]).output();
    let netns = netns.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_else(|e| e.to_string());
    format!("pods:\n{pods}\nnetwork namespaces:\n{netns}")
}

async fn run_verify_rerun(scenario: &str) {
    let _one = ONE_AT_A_TIME.lock().await;
    let u = Upstream::get();
    let mut kept = runbook_json(&u, &["run", scenario, "--allow-disruption", "--keep"], "kept").await;
    if kept.0 != Some(0) {
        kept.2.push_str(&format!("\n--- the node's pod network after the run ---\n{}", pod_network(&u).await));
    }
    assert_passed(&format!("run {scenario} --keep"), &kept, true);
    let verified = runbook_json(&u, &["verify", scenario], "verify").await;
    assert_passed(&format!("verify {scenario}"), &verified, false);
    let (lab_doc, lab_out) = verify_on_a_lab(&u, scenario).await;
    assert_eq!(
        verdict(&verified.1),
        verdict(&lab_doc),
        "verify {scenario}: upstream and lab differ\nupstream:\n{}\nlab:\n{lab_out}",
        verified.2
    );
    let again = runbook_json(&u, &["run", scenario, "--allow-disruption"], "again").await;
    assert_passed(&format!("run {scenario} over the kept objects"), &again, true);
    assert!(again.1["summary"]["leftovers"].as_array().is_none_or(|l| l.is_empty()), "{}", again.2);
}

#[tokio::test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up)"]
async fn redis_cache() {
    run_verify_rerun("redis-cache").await;
}

#[tokio::test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up)"]
async fn redis_cluster() {
    run_verify_rerun("redis-cluster").await;
}

#[tokio::test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up)"]
async fn redis_sentinel() {
    run_verify_rerun("redis-sentinel").await;
}

#[tokio::test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up)"]
async fn counter_service() {
    run_verify_rerun("counter-service").await;
}

//! Every scenario end to end on upstream Kubernetes: `run --keep` passes with
//! every check (drills included, with `--allow-disruption`: this is not the
//! lab), `verify` then passes on what it left, and a second `run` over the kept
//! objects passes and cleans everything up.
//!
//! The scenarios run one at a time: each takes the node's two cores for its
//! drills, and two at once would measure each other.

use crate::cluster::Upstream;
use crate::common::{output_text, report, runbook};

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
/// (verify leaves out the drills, which write).
fn assert_passed(what: &str, (code, doc, out): &(Option<i32>, serde_json::Value, String), all_steps: bool) {
    assert_eq!(*code, Some(0), "{what} failed:\n{out}");
    assert_eq!(doc["summary"]["failed"], 0, "{what}:\n{out}");
    if all_steps {
        assert_eq!(doc["summary"]["skipped"], 0, "{what} skipped steps:\n{out}");
    }
    let score = &doc["summary"]["score"];
    assert_eq!(score[0], score[1], "{what}: score {score}\n{out}");
}

async fn run_verify_rerun(scenario: &str) {
    let _one = ONE_AT_A_TIME.lock().await;
    let u = Upstream::get();
    let kept = runbook_json(&u, &["run", scenario, "--allow-disruption", "--keep"], "kept").await;
    assert_passed(&format!("run {scenario} --keep"), &kept, true);
    let verified = runbook_json(&u, &["verify", scenario], "verify").await;
    assert_passed(&format!("verify {scenario}"), &verified, false);
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

//! The redis-sentinel scenario (seed 004) on the lab: two runs in a row (the
//! second on what the first kept), the drills' figures, and verify against a
//! Sentinel quorum of 4 and a replica with the wrong masterauth.

use serde_json::Value;

use crate::common::requires;
use crate::common::{TestLab, assert_no_secret, failed, measurement, run_scenario, step, verify_report};

const PASSWORD: &str = "a-very-complex-password-here";

async fn run(t: &TestLab, name: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    run_scenario(t, "redis-sentinel", name, extra).await
}

#[tokio::test]
async fn runs_twice_in_a_row_and_reports_the_failover() {
    requires!(Root, Chromium);
    let _serial = crate::common::DRILLS.lock().await;
    // Three nodes, as `runbook run redis-sentinel --lab` starts (labNodes):
    // the node-loss drill needs the pods spread.
    let t = TestLab::with_nodes(3, std::time::Duration::from_secs(50)).await;
    let (code, first, text) = run(&t, "first", &["--keep"]).await;
    assert_eq!(code, Some(0), "{text}");
    let drill = step(&first, "failover-drill");
    assert_eq!(measurement(drill, "lost keys"), 0.0, "{drill}");
    assert_eq!(measurement(drill, "acknowledged by replicas"), 2.0);
    let failover = measurement(drill, "failover time");
    let bound = measurement(drill, "down-after-milliseconds") + measurement(drill, "failover-timeout");
    assert!(
        failover >= measurement(drill, "down-after-milliseconds") && failover <= bound,
        "failover {failover} ms, bound {bound}"
    );
    // The leader's switch comes first; the other Sentinels hear of it after.
    let promotion = measurement(drill, "promotion time");
    assert!(
        promotion >= measurement(drill, "down-after-milliseconds") && promotion <= failover,
        "promotion {promotion} ms, failover {failover} ms"
    );
    assert_eq!(step(&first, "sentinel-restart-drill")["status"], "passed");
    // Only the Sentinels that list an address the drills left are reset: the
    // restarted one started after both drills and knows none.
    let reset = step(&first, "reset-sentinels")["output"].as_str().unwrap().to_string();
    let lines: Vec<&str> = reset.lines().collect();
    assert!(lines.contains(&"sentinel-1: no replica or Sentinel down, not reset"), "{reset}");
    let sentinel_0 = lines.iter().find(|l| l.starts_with("sentinel-0: ")).unwrap();
    assert!(sentinel_0.ends_with("; SENTINEL RESET mymaster -> (integer) 1"), "{reset}");
    assert_no_secret(&t, "first", &text, PASSWORD);
    // The drill as a client lived it: writes failed while no master was named.
    assert!(measurement(drill, "failed writes") > 0.0 && measurement(drill, "writes during the drill") > 20.0);
    // Those writes, read back from the new master and tallied.
    assert_eq!(
        measurement(drill, "acknowledged writes"),
        measurement(drill, "writes") - measurement(drill, "failed writes")
    );
    assert!(measurement(drill, "time without a writable master") > 0.0, "{drill}");
    assert_eq!(
        drill["timeline"].as_array().unwrap().len(),
        4,
        "first writes acknowledged, deleted, new master, back: {drill}"
    );
    crate::browser::assert_html_report(t.dir.path(), "first", &first, Some("redis-sentinel-report.png")).await;

    // The partition drills, as Jepsen measures: with the seed's configuration
    // the cut-off master's acknowledged writes are lost; with
    // min-replicas-to-write only those of the cut's first seconds can be.
    let open = step(&first, "partition-drill");
    assert_eq!(open["status"], "passed", "{open}");
    assert!(measurement(open, "acknowledged writes lost") > 0.0, "{open}");
    assert!(measurement(open, "split brain") > 0.0, "{open}");
    let bounded = step(&first, "partition-drill-bounded");
    assert_eq!(bounded["status"], "passed", "{bounded}");
    assert!(measurement(bounded, "time without a writable master") > 0.0, "the master refused writes: {bounded}");
    let configured = bounded["output"].as_str().unwrap().lines().nth(1);
    assert_eq!(configured, Some("min-replicas-to-write 1, min-replicas-max-lag 2 (set for the drill)"));
    // Healed: no policy, no label, though the run kept everything else.
    assert_eq!(t.kubectl(&["get", "networkpolicy", "-n", "redis", "-o", "name"]).await.trim(), "");
    assert_eq!(
        t.kubectl(&["get", "pods", "-n", "redis", "-l", "runbook.dev/partition", "-o", "name"]).await.trim(),
        ""
    );

    // The master's node down: the failover without Redis' graceful shutdown,
    // then the same pod back as a replica; the first writes all there.
    let node_loss = step(&first, "node-loss-drill");
    assert_eq!(node_loss["status"], "passed", "{node_loss}");
    assert_eq!(measurement(node_loss, "lost keys"), 0.0, "{node_loss}");
    let down_after = measurement(node_loss, "down-after-milliseconds");
    assert!(measurement(node_loss, "failover time") >= down_after, "{node_loss}");
    assert!(measurement(node_loss, "recovery time") >= measurement(node_loss, "failover time"), "{node_loss}");
    let said = node_loss["output"].as_str().unwrap();
    assert!(said.contains("all Sentinels that are up name the new master"), "{said}");
    assert!(said.lines().any(|l| l.starts_with("node runbook-lab") && l.contains(" back after ")), "{said}");
    let nodes = t.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.annotations}"]).await;
    assert!(!nodes.contains("runbook.dev/down"), "every node is back: {nodes}");

    // With WAIT 1 after each write, only writes a replica confirmed count,
    // and none of them is lost (the fixture, on what the first run kept).
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/sentinel-partition-wait.yaml");
    let (fixture, kubeconfig) = (fixture.display().to_string(), t.lab.kubeconfig.display().to_string());
    let waited = t.dir.path().join("waited.json");
    let waited_arg = format!("json={}", waited.display());
    let out = crate::common::runbook(
        &["run", "-f", &fixture, "--kubeconfig", &kubeconfig, "--report", &waited_arg, "--keep"],
        t.dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let waited = crate::common::report(&waited);
    let waited = step(&waited, "partition-wait");
    assert_eq!(measurement(waited, "acknowledged writes lost"), 0.0, "{waited}");
    assert!(measurement(waited, "acknowledged writes") > 0.0, "{waited}");
    assert!(
        measurement(waited, "acknowledged writes") < measurement(waited, "writes"),
        "the cut-off master's writes are not confirmed: {waited}"
    );

    // Again, on the state the first run left (the master is now another pod).
    let (code, _, text) = run(&t, "second", &[]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(t.api_get("namespaces", "", "redis").await.is_none(), "cleanup removed the namespace");
}

async fn deployed(t: &TestLab) {
    let (code, _, text) = run(t, "deploy", &["--keep"]).await;
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn verify_fails_sentinels_with_quorum_4() {
    requires!(Root, Kubectl);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    deployed(&t).await;
    for i in 0..3 {
        t.kubectl(&[
            "exec",
            "-n",
            "redis",
            &format!("sentinel-{i}"),
            "--",
            "redis-cli",
            "-p",
            "5000",
            "sentinel",
            "set",
            "mymaster",
            "quorum",
            "4",
        ])
        .await;
    }
    let (code, doc) = verify_report(&t, "redis-sentinel").await;
    assert_eq!(code, Some(1));
    assert_eq!(failed(&doc), ["sentinels-agree"]);
    let actual = step(&doc, "sentinels-agree")["actual"].as_str().unwrap().to_string();
    assert!(actual.contains("quorum=4") && actual.contains("NOQUORUM"), "{actual}");
}

#[tokio::test]
async fn verify_fails_a_replica_with_the_wrong_masterauth() {
    requires!(Root, Kubectl);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    deployed(&t).await;
    // Find a replica, give it the wrong masterauth and make it reconnect.
    let mut replica = String::new();
    let mut master_ip = String::new();
    for i in 0..3 {
        let pod = format!("redis-{i}");
        let info = t
            .kubectl(&[
                "exec",
                "-n",
                "redis",
                &pod,
                "--",
                "redis-cli",
                "--no-auth-warning",
                "-a",
                PASSWORD,
                "info",
                "replication",
            ])
            .await;
        if info.contains("role:slave") && replica.is_empty() {
            replica = pod;
            master_ip =
                info.lines().find_map(|l| l.trim().strip_prefix("master_host:")).unwrap_or_default().to_string();
        }
    }
    assert!(!replica.is_empty());
    let cli = |args: &[&str]| {
        let mut all =
            vec!["exec", "-n", "redis", replica.as_str(), "--", "redis-cli", "--no-auth-warning", "-a", PASSWORD];
        all.extend_from_slice(args);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for args in [
        cli(&["config", "set", "masterauth", "wrong"]),
        cli(&["replicaof", "no", "one"]),
        cli(&["replicaof", &master_ip, "6379"]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        t.kubectl(&args).await;
    }
    let (code, doc) = verify_report(&t, "redis-sentinel").await;
    assert_eq!(code, Some(1));
    assert!(failed(&doc).contains(&"replication-ok".to_string()), "{:?}", failed(&doc));
    let actual = step(&doc, "replication-ok")["actual"].as_str().unwrap().to_string();
    assert!(actual.contains(&format!("{replica}: master {master_ip}, link down")), "{actual}");
}

/// On a cluster whose network plugin ignores NetworkPolicy a partition
/// cannot be made: the drills say so and are left out, the rest passes.
#[tokio::test]
async fn partition_drills_are_skipped_where_network_policy_is_not_enforced() {
    requires!(Root);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::ignoring_network_policy().await;
    let (code, doc, text) = run(&t, "ignored", &[]).await;
    assert_eq!(code, Some(0), "{text}");
    // One node: taking it down would take every replica and Sentinel too.
    let node_loss = step(&doc, "node-loss-drill");
    assert_eq!(node_loss["status"], "skipped", "{node_loss}");
    let why = node_loss["message"].as_str().unwrap();
    assert_eq!(
        why,
        "every Redis pod runs on node runbook-lab, the master's: losing it loses every replica too \
         (the lab spreads them with --lab --lab-nodes 3)"
    );
    for id in ["partition-drill", "partition-drill-bounded"] {
        let drill = step(&doc, id);
        assert_eq!(drill["status"], "skipped", "{drill}");
        let why = drill["message"].as_str().unwrap();
        assert!(
            why.starts_with("the partition had no effect: 5s after the cut, Sentinels still hear the master: "),
            "{why}"
        );
        assert!(why.ends_with("; the cluster's network plugin does not seem to enforce NetworkPolicy"), "{why}");
    }
    let score = &doc["summary"]["score"];
    assert_eq!(score[0], score[1], "skipped drills are left out of the score: {score}");
}

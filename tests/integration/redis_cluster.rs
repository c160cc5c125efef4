//! The redis-cluster scenario (seed 002) on the lab: the full run with its
//! drills (a pod deleted; a master partitioned; a master's node down, on a
//! lab of three nodes), an idempotent second run, and verify against
//! clusters that were formed wrong.

use std::path::Path;

use crate::common::requires;
use crate::common::{TestLab, failed, measurement, report, runbook, step, verify_report};

#[tokio::test]
async fn run_forms_the_cluster_survives_the_drills_and_is_idempotent() {
    requires!(Root, Chromium);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_nodes(3, std::time::Duration::from_secs(50)).await;
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let first = t.dir.path().join("first.json");
    let out = runbook(
        &[
            "run",
            "redis-cluster",
            "--keep",
            "--kubeconfig",
            &kubeconfig,
            "--report",
            &format!("json={}", first.display()),
            "--report",
            &format!("html={}", t.dir.path().join("first.html").display()),
        ],
        t.dir.path(),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let doc = report(&first);
    let drill = step(&doc, "failover-drill");
    assert_eq!(drill["status"], "passed", "{drill}");
    assert_eq!(measurement(drill, "lost keys"), 0.0);
    assert!(
        measurement(drill, "failover time") >= measurement(drill, "node timeout"),
        "promotion only after the node timeout: {drill}"
    );
    assert!(measurement(drill, "recovery time") >= measurement(drill, "failover time"));
    assert!(measurement(drill, "failed writes") > 0.0, "writes to the stopped master's slots fail: {drill}");
    // Those writes, read back through the cluster once it recovered.
    assert_eq!(
        measurement(drill, "acknowledged writes"),
        measurement(drill, "writes") - measurement(drill, "failed writes")
    );
    assert!(measurement(drill, "time without a writable master") > 0.0, "{drill}");
    crate::browser::assert_html_report(t.dir.path(), "first", &doc, None).await;
    assert!(drill["output"].as_str().unwrap().contains("read back 200/200 keys"), "{drill}");
    // As Jepsen found: the master cut off from the majority acknowledges
    // writes until the node timeout, and they are lost (within that bound,
    // which the drill checks).
    let partition = step(&doc, "partition-drill");
    assert_eq!(partition["status"], "passed", "{partition}");
    assert!(measurement(partition, "acknowledged writes lost") > 0.0, "{partition}");
    assert!(measurement(partition, "split brain") > 0.0, "{partition}");
    assert!(measurement(partition, "promotion time") >= measurement(partition, "node timeout"), "{partition}");
    // A node lost: its master is failed over; the count of lost writes is reported.
    let lost_node = step(&doc, "node-loss-drill");
    assert_eq!(lost_node["status"], "passed", "{lost_node}");
    assert!(measurement(lost_node, "promotion time") >= measurement(lost_node, "node timeout"), "{lost_node}");
    assert!(measurement(lost_node, "time without a writable master") > 0.0, "{lost_node}");
    assert!(measurement(lost_node, "acknowledged writes lost") >= 0.0, "{lost_node}");
    assert!(lost_node["output"].as_str().unwrap().contains("Kubernetes node runbook-lab"), "{lost_node}");

    // With WAIT 1 after each write, only writes a replica confirmed count,
    // and none of them is lost (the fixture, on the cluster kept above).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/cluster-partition-wait.yaml");
    let waited = t.dir.path().join("waited.json");
    let fixture_arg = fixture.display().to_string();
    let waited_arg = format!("json={}", waited.display());
    let out =
        runbook(&["run", "-f", &fixture_arg, "--kubeconfig", &kubeconfig, "--report", &waited_arg], t.dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let waited_drill = step(&report(&waited), "partition-wait").clone();
    assert_eq!(measurement(&waited_drill, "acknowledged writes lost"), 0.0, "{waited_drill}");
    assert!(measurement(&waited_drill, "acknowledged writes") > 0.0, "{waited_drill}");
    assert!(
        measurement(&waited_drill, "acknowledged writes") < measurement(partition, "acknowledged writes"),
        "writes the cut-off master took are not acknowledged: {waited_drill}"
    );

    // A second run on the formed cluster does not create it again.
    let second = t.dir.path().join("second.json");
    let out = runbook(
        &["run", "redis-cluster", "--kubeconfig", &kubeconfig, "--report", &format!("json={}", second.display())],
        t.dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let create = step(&report(&second), "create-cluster").clone();
    assert!(create["message"].as_str().unwrap_or_default().starts_with("already done"), "{create}");
    // The second run had no --keep: nothing is left.
    assert!(t.api_list("statefulsets", "default").await.is_empty());
    assert!(t.api_list("persistentvolumes", "").await.is_empty());
}

/// Applies the scenario's manifests and forms the cluster by hand with `create`.
async fn deploy_by_hand(t: &TestLab, create: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/redis-cluster/manifests");
    for file in ["persistent-volumes.yaml", "configmap.yaml", "service.yaml", "statefulset.yaml"] {
        let text = std::fs::read_to_string(dir.join(file))
            .unwrap()
            .replace("{{ image }}", "redis:5.0.1-alpine")
            .replace("{{ node_timeout_ms }}", "5000")
            .replace("{{ statefulset }}", "redis-cluster")
            .replace("{{ service }}", "redis-cluster-service");
        t.kubectl_stdin(&["apply", "-f", "-"], &text).await;
    }
    t.kubectl(&["rollout", "status", "statefulset/redis-cluster", "--timeout=90s"]).await;
    let ips = t
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app=redis-cluster",
            "-o",
            "jsonpath={range .items[*]}{.status.podIP}:6379 {end}",
        ])
        .await;
    let ips: Vec<&str> = ips.split_whitespace().collect();
    let mut script = create.replace("{ips6}", &ips.join(" "));
    for (i, ip) in ips.iter().enumerate() {
        script = script.replace(&format!("{{ip{i}}}"), ip);
    }
    t.kubectl(&["exec", "redis-cluster-0", "--", "sh", "-c", &script]).await;
}

#[tokio::test]
async fn verify_fails_a_cluster_with_a_missing_replica() {
    requires!(Root, Kubectl);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    // Three masters, then replicas for only two of them; the sixth pod stays out.
    deploy_by_hand(
        &t,
        "redis-cli --cluster create --cluster-replicas 0 --cluster-yes {ip0} {ip1} {ip2} >/dev/null && sleep 1 && \
         redis-cli --cluster add-node {ip3} {ip0} --cluster-slave >/dev/null && sleep 1 && \
         redis-cli --cluster add-node {ip4} {ip0} --cluster-slave >/dev/null",
    )
    .await;
    let (code, doc) = verify_report(&t, "redis-cluster").await;
    assert_eq!(code, Some(1));
    assert_eq!(failed(&doc), ["known-nodes", "masters-and-replicas"]);
    assert_eq!(step(&doc, "known-nodes")["actual"], "5");
    assert!(step(&doc, "masters-and-replicas")["actual"].as_str().unwrap().contains("has 0 replicas"), "{doc}");
}

#[tokio::test]
async fn verify_fails_a_cluster_with_only_two_masters() {
    requires!(Root, Kubectl);
    let _serial = crate::common::DRILLS.lock().await;
    let t = TestLab::with_pods().await;
    // A full cluster, then every slot of one master moved to another.
    deploy_by_hand(
        &t,
        "redis-cli --cluster create --cluster-replicas 1 --cluster-yes {ips6} >/dev/null && sleep 2 && \
         FROM=$(redis-cli cluster nodes | awk '/master/ && / 10923-16383/ {print $1}') && \
         TO=$(redis-cli cluster nodes | awk '/master/ && / 0-5460/ {print $1}') && \
         redis-cli --cluster reshard 127.0.0.1:6379 --cluster-from $FROM --cluster-to $TO --cluster-slots 5461 --cluster-yes >/dev/null",
    )
    .await;
    let (code, doc) = verify_report(&t, "redis-cluster").await;
    assert_eq!(code, Some(1));
    assert_eq!(failed(&doc), ["masters-and-replicas"]);
    assert!(
        step(&doc, "masters-and-replicas")["actual"].as_str().unwrap().starts_with("2 masters serving slots"),
        "{doc}"
    );
}

//! `verify --roster`: twenty learners in namespaces of one lab, with mixed
//! variants and one unreachable cluster, graded four at a time into one
//! class summary.

use crate::common::{TestLab, output_text, requires, runbook};

/// What each learner deployed: `good`, `maxmemory-4mb`, `cpu-500m` (fixtures), or
/// nothing at all.
fn variant(n: usize) -> Option<&'static str> {
    match n {
        1..=8 => Some("good"),
        9..=13 => Some("maxmemory-4mb"),
        14..=16 => Some("cpu-500m"),
        _ => None,
    }
}

#[tokio::test]
async fn twenty_learners_are_graded_into_one_class_summary_with_every_row_right() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    t.enlarge_node(32).await;
    let mut roster = String::from("learners:\n");
    for n in 1..=19 {
        let ns = format!("learner-{n:02}");
        t.kubectl(&["create", "namespace", &ns]).await;
        if let Some(v) = variant(n) {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/redis-cache/{v}.yaml"));
            t.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &std::fs::read_to_string(path).unwrap()).await;
        }
        roster.push_str(&format!("  - {{name: {ns}, kubeconfig: {}, namespace: {ns}}}\n", t.lab.kubeconfig.display()));
    }
    // The twentieth learner's cluster does not answer.
    let unreachable = t.dir.path().join("unreachable.yaml");
    let text = std::fs::read_to_string(&t.lab.kubeconfig).unwrap();
    let server = text.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().to_string();
    std::fs::write(&unreachable, text.replace(&server, "https://127.0.0.1:1")).unwrap();
    roster.push_str("  - {name: learner-20, kubeconfig: unreachable.yaml}\n");
    let roster_file = t.dir.path().join("roster.yaml");
    std::fs::write(&roster_file, roster).unwrap();
    for n in (1..=16).filter(|n| variant(*n).is_some()) {
        let ns = format!("learner-{n:02}");
        t.kubectl(&["rollout", "status", "-n", &ns, "deployment/redis-deployment", "--timeout=120s"]).await;
    }

    let (csv, json) = (t.dir.path().join("class.csv"), t.dir.path().join("class.json"));
    let (csv_arg, json_arg) = (format!("csv={}", csv.display()), format!("json={}", json.display()));
    let roster_arg = roster_file.display().to_string();
    let args = [
        "verify",
        "redis-cache",
        "--roster",
        &roster_arg,
        "--parallel",
        "4",
        "--class-report",
        &csv_arg,
        "--class-report",
        &json_arg,
    ];
    let out = runbook(&args, t.dir.path()).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "some learners failed: {text}");
    assert!(text.contains("Class: 20 learner(s): 8 passed, 11 failed, 1 could not be graded"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains(" learner-")).count(), 20, "a line per learner: {text}");

    let rows: Vec<Vec<String>> = csv::Reader::from_path(&csv)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 20);
    let checks = 11; // worth 12 points
    for (n, row) in (1..=20).zip(&rows) {
        assert_eq!(row[0], format!("learner-{n:02}"), "rows in roster order");
        let (verdict, score, failed) = (row[1].as_str(), row[2].as_str(), row[5].as_str());
        match (n, variant(n)) {
            (20, _) => {
                assert_eq!((verdict, row[4].as_str()), ("error", "2"), "{row:?}");
                assert!(row[6].contains("cannot reach the cluster at https://127.0.0.1:1"), "{row:?}");
            }
            (_, Some("good")) => assert_eq!((verdict, score, failed), ("passed", "12", ""), "{row:?}"),
            (_, Some("maxmemory-4mb")) => {
                assert_eq!((verdict, failed), ("failed", "verify-configmap maxmemory"), "{row:?}")
            }
            (_, Some("cpu-500m")) => {
                assert_eq!((verdict, failed), ("failed", "cpu-request"), "{row:?}");
                // The class summary names the requirement, not only the check.
                assert_eq!(row[7], "The Redis container requests 1 CPU", "{row:?}");
            }
            _ => {
                assert_eq!((verdict, score), ("failed", "0"), "{row:?}");
                assert_eq!(failed.split(' ').count(), checks, "every check lost: {row:?}");
            }
        }
        assert_eq!(row[3], if n == 20 { "0" } else { "12" }, "{row:?}");
    }
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let second = &doc["learners"][9];
    let maxmemory = second["report"]["steps"].as_array().unwrap().iter().find(|s| s["id"] == "maxmemory").unwrap();
    assert_eq!(
        (maxmemory["expected"].as_str(), maxmemory["actual"].as_str()),
        (Some("2097152 (2mb)"), Some("4194304"))
    );
}

#[tokio::test]
async fn a_roster_with_a_mistake_is_refused_before_any_cluster_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.yaml");
    let roster_arg = roster.display().to_string();
    let cases = [
        ("learners:\n  - {name: a, kubeconfig: a.yaml, namepsace: x}\n", "roster.yaml:2:"),
        (
            "learners:\n  - {name: a, kubeconfig: a.yaml}\n  - {name: a, kubeconfig: b.yaml}\n",
            "learner \"a\" is listed twice",
        ),
        ("learners: []\n", "learners is empty"),
    ];
    for (text, says) in cases {
        std::fs::write(&roster, text).unwrap();
        let out = runbook(&["verify", "redis-cache", "--roster", &roster_arg], dir.path()).await;
        let said = output_text(&out);
        assert_eq!(out.status.code(), Some(3), "{text}: {said}");
        assert!(said.contains(says), "{text}: {said}");
    }
}

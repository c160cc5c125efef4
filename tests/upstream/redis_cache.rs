//! redis-cache (seed 000/001) on upstream Kubernetes: the seed's kubectl
//! commands verbatim, `runbook run`, and `runbook verify` giving the same
//! verdict as on the lab while changing nothing.

use std::collections::BTreeMap;

use crate::cluster::Upstream;
use crate::common::{TestLab, output_text, report, runbook};

/// Runs one of the seed's command lines in bash, as the seed's reader would.
async fn seed_command(u: &Upstream, line: &str) -> String {
    let out = tokio::process::Command::new("bash")
        .args(["-c", line])
        .env("KUBECONFIG", &u.kubeconfig)
        .env("KUBECACHEDIR", u.dir.path().join("kube-cache"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "`{line}` failed ({}):\n{}", out.status, output_text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up)"]
async fn seed_000_commands_run_verbatim() {
    let u = Upstream::get();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/seed-000/redis-deployment.yaml"),
        u.dir.path().join("redis-deployment.yaml"),
    )
    .unwrap();
    let cd = format!("cd {} && ", u.dir.path().display());
    seed_command(&u, r#"kubectl create configmap my-redis-config --from-literal=redis-config="maxmemory 2mb""#).await;
    let described = seed_command(&u, "kubectl describe configmaps my-redis-config").await;
    assert!(described.lines().any(|l| l.trim() == "maxmemory 2mb"), "{described}");
    seed_command(&u, &format!("{cd}kubectl apply -f redis-deployment.yaml")).await;
    u.kubectl(&["rollout", "status", "deployment/redis-deployment", "--timeout=120s"]).await;
    let deploy = seed_command(&u, "kubectl get deployment redis-deployment").await;
    let row: Vec<&str> = deploy.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["redis-deployment", "1/1", "1", "1"]);
    let pods = seed_command(&u, "kubectl get pods -l app=redis").await;
    let pod = pods.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();

    let maxmemory = seed_command(&u, &format!("kubectl exec -it {pod} -- redis-cli CONFIG GET maxmemory")).await;
    assert_eq!(maxmemory.lines().collect::<Vec<_>>(), ["maxmemory", "2097152"]);
    let listing = seed_command(&u, &format!("kubectl exec -it {pod} -- ls /redis-master")).await;
    assert_eq!(listing.trim(), "redis-config");
    let netstat = seed_command(&u, &format!("kubectl exec -it {pod} -- netstat -ntupl | grep 6379")).await;
    let fields: Vec<&str> = netstat.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!((fields[3], fields[5]), ("0.0.0.0:6379", "LISTEN"), "{netstat}");
    assert!(fields[6].ends_with("/redis-server"), "the listener's program: {netstat}");
    assert_eq!(seed_command(&u, &format!("kubectl exec -it {pod} -- redis-cli ping")).await.trim(), "PONG");
    seed_command(&u, &format!("kubectl exec -it {pod} -- touch /redis-master-data/testfile")).await;
    let requests = seed_command(&u, &format!("kubectl describe pod {pod} | grep -A3 Requests")).await;
    let cpu = requests.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(cpu, ["cpu:", "1"], "{requests}");
    let qos = seed_command(&u, &format!("kubectl describe pod {pod} | grep QoS")).await;
    assert_eq!(qos.split_whitespace().collect::<Vec<_>>(), ["QoS", "Class:", "Burstable"]);

    u.kubectl(&["delete", "deployment", "redis-deployment"]).await;
    u.kubectl(&["delete", "configmap", "my-redis-config"]).await;
}

#[tokio::test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up)"]
async fn run_redis_cache_passes() {
    let u = Upstream::get();
    let json = u.dir.path().join("run.json");
    let args = ["run", "redis-cache", "--kubeconfig", &u.kubeconfig_arg(), "--ephemeral-namespace", "--report"];
    let report_arg = format!("json={}", json.display());
    let out = runbook(&[&args[..], &[report_arg.as_str()]].concat(), u.dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let doc = report(&json);
    assert_eq!(doc["summary"]["failed"], 0, "{}", output_text(&out));
    assert_eq!(doc["summary"]["score"][0], doc["summary"]["score"][1]);
}

/// A learner's redis-cache with two mistakes: `maxmemory 4mb` and `cpu: 500m`.
fn learner_manifest() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/redis-cache/maxmemory-4mb.yaml"))
        .unwrap();
    assert!(text.contains("cpu: \"1\""), "the fixture requests cpu \"1\"");
    text.replace("cpu: \"1\"", "cpu: 500m")
}

/// Verify's verdict per step: id → (status, expected, actual).
fn verdict(doc: &serde_json::Value) -> BTreeMap<String, (String, String, String)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (text(&s["id"]), (text(&s["status"]), text(&s["expected"]), text(&s["actual"]))))
        .collect()
}

/// resourceVersion of every object in a namespace (and of the namespace).
async fn versions(u: &Upstream, namespace: &str) -> String {
    let kinds = "configmaps,deployments,replicasets,pods,services,secrets";
    let mut out = u
        .kubectl(&[
            "get",
            kinds,
            "-n",
            namespace,
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}",
        ])
        .await;
    out.push_str(&u.kubectl(&["get", "namespace", namespace, "-o", "jsonpath={.metadata.resourceVersion}"]).await);
    out
}

#[tokio::test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up)"]
async fn verify_fails_the_same_checks_as_on_the_lab_and_changes_nothing() {
    let u = Upstream::get();
    let ns = u.namespace("learner-4mb-500m").await;
    u.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], &learner_manifest()).await;
    u.kubectl(&["rollout", "status", "-n", &ns.name, "deployment/redis-deployment", "--timeout=120s"]).await;
    let lab = TestLab::with_pods().await;
    lab.kubectl(&["create", "namespace", &ns.name]).await;
    lab.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], &learner_manifest()).await;
    lab.kubectl(&["rollout", "status", "-n", &ns.name, "deployment/redis-deployment", "--timeout=60s"]).await;

    let before = versions(&u, &ns.name).await;
    let verify = |kubeconfig: String, name: &'static str| {
        let dir = u.dir.path().to_path_buf();
        let namespace = ns.name.clone();
        async move {
            let json = dir.join(name);
            let report_arg = format!("json={}", json.display());
            let args =
                ["verify", "redis-cache", "--kubeconfig", &kubeconfig, "-n", &namespace, "--report", &report_arg];
            let out = runbook(&args, &dir).await;
            (out.status.code(), report(&json), output_text(&out))
        }
    };
    let (up_code, up_doc, up_out) = verify(u.kubeconfig_arg(), "upstream.json").await;
    let (lab_code, lab_doc, lab_out) = verify(lab.lab.kubeconfig.display().to_string(), "lab.json").await;

    assert_eq!(up_code, Some(1), "{up_out}");
    assert_eq!(lab_code, Some(1), "{lab_out}");
    let up = verdict(&up_doc);
    let failed: Vec<&str> = up.iter().filter(|(_, v)| v.0 == "failed").map(|(id, _)| id.as_str()).collect();
    assert_eq!(failed, ["cpu-request", "maxmemory", "verify-configmap"], "{up_out}");
    assert_eq!(up["maxmemory"], ("failed".into(), "2097152 (2mb)".into(), "4194304".into()));
    assert_eq!(up["cpu-request"], ("failed".into(), "1 (as a quantity)".into(), "500m".into()));
    assert_eq!(up, verdict(&lab_doc), "upstream:\n{up_out}\nlab:\n{lab_out}");
    assert_eq!(up_doc["summary"]["score"], lab_doc["summary"]["score"]);
    assert_eq!(versions(&u, &ns.name).await, before, "verify changed the learner's namespace");
}

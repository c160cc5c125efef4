//! The lab API driven by real kubectl, following the seed's own commands.

use std::time::Duration;

use crate::common::requires;
use crate::common::{TestLab, seed_deployment};

#[tokio::test]
async fn create_configmap_from_literal_and_describe_it() {
    requires!(Kubectl);
    let t = TestLab::start().await;
    // kubectl's generators send protobuf: this is the seed's first command.
    let out = t.kubectl(&["create", "configmap", "my-redis-config", "--from-literal=redis-config=maxmemory 2mb"]).await;
    assert_eq!(out.trim(), "configmap/my-redis-config created");
    let described = t.kubectl(&["describe", "configmaps", "my-redis-config"]).await;
    let lines: Vec<&str> = described.lines().map(str::trim_end).collect();
    assert!(lines.contains(&"Name:         my-redis-config"), "{described}");
    assert!(lines.contains(&"Namespace:    default"), "{described}");
    let data_at = lines.iter().position(|l| *l == "redis-config:").expect("data key listed");
    assert_eq!(lines[data_at + 1], "----");
    assert_eq!(lines[data_at + 2], "maxmemory 2mb");
}

#[tokio::test]
async fn other_generators_send_protobuf_too() {
    requires!(Kubectl);
    let t = TestLab::start().await;
    t.kubectl(&["create", "namespace", "redis"]).await;
    t.kubectl(&["create", "secret", "generic", "redis-secret", "-n", "redis", "--from-literal=password=s3cret"]).await;
    t.kubectl(&["create", "deployment", "web", "--image=redis:alpine", "--replicas=2", "--port=6379"]).await;
    let secret = t.kubectl(&["get", "secret", "redis-secret", "-n", "redis", "-o", "jsonpath={.data.password}"]).await;
    assert_eq!(secret, "czNjcmV0");
    let replicas = t
        .kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}",
        ])
        .await;
    assert_eq!(replicas, "2 6379");
}

#[tokio::test]
async fn apply_twice_then_server_side_then_label_and_delete() {
    requires!(Kubectl);
    let t = TestLab::start().await;
    let manifest = seed_deployment();
    let out = t.kubectl_stdin(&["apply", "-f", "-"], &manifest).await;
    assert_eq!(out.trim(), "deployment.apps/redis-deployment created");
    let changed = manifest.replace("replicas: 1", "replicas: 3");
    let out = t.kubectl_stdin(&["apply", "-f", "-"], &changed).await;
    assert_eq!(out.trim(), "deployment.apps/redis-deployment configured");
    let spec = t
        .kubectl(&["get", "deploy", "redis-deployment", "-o", "jsonpath={.spec.replicas}/{.metadata.generation}"])
        .await;
    assert_eq!(spec, "3/2");
    // Applying the same file again changes nothing.
    let out = t.kubectl_stdin(&["apply", "-f", "-"], &changed).await;
    assert_eq!(out.trim(), "deployment.apps/redis-deployment unchanged");

    let out = t.kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &manifest).await;
    assert_eq!(out.trim(), "deployment.apps/redis-deployment serverside-applied");
    let json = t.kubectl(&["get", "deploy", "redis-deployment", "-o", "json"]).await;
    let object: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(object["spec"]["replicas"], 1);
    assert_eq!(object["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"], "1");
    assert_eq!(object["spec"]["strategy"]["type"], "RollingUpdate", "defaults are filled");

    t.kubectl(&["label", "deploy", "redis-deployment", "tier=cache"]).await;
    let labels = t.kubectl(&["get", "deploy", "-l", "tier=cache", "-o", "name"]).await;
    assert_eq!(labels.trim(), "deployment.apps/redis-deployment");

    let table = t.kubectl(&["get", "deploy"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(table.lines().nth(1).unwrap().starts_with("redis-deployment "), "{table}");

    let out = t.kubectl(&["delete", "deploy", "redis-deployment"]).await;
    assert!(out.starts_with("deployment.apps \"redis-deployment\" deleted"), "{out}");
    let missing = t.kubectl_output(&["get", "deploy", "redis-deployment"], None).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));
}

#[tokio::test]
async fn watch_sees_changes_and_wait_for_delete_returns() {
    requires!(Kubectl);
    use tokio::io::AsyncBufReadExt;
    let t = TestLab::start().await;
    // The watch runs until it has seen the deletion (at most 60 s), not for a
    // fixed time: on a busy machine (CI) the kubectl calls below took longer
    // than a 3-second watch, which then missed the DELETED event.
    let mut watch = crate::common::kubectl_command(&t.lab.kubeconfig, &t.dir.path().join("kube-cache"));
    watch
        .args(["get", "configmaps", "--watch", "--output-watch-events", "--request-timeout=60s"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut watcher = watch.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(watcher.stdout.take().unwrap()).lines();
    let watched = async {
        let mut events = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("w1") {
                events.push(line.split_whitespace().next().unwrap().to_string());
                if events.last().map(String::as_str) == Some("DELETED") {
                    break;
                }
            }
        }
        events
    };
    let actions = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        t.kubectl(&["create", "configmap", "w1", "--from-literal=a=b"]).await;
        t.kubectl(&["label", "configmap", "w1", "x=y"]).await;
        let waiter = t.kubectl_output(&["wait", "--for=delete", "configmap/w1", "--timeout=20s"], None);
        let deleter = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            t.kubectl(&["delete", "configmap", "w1"]).await;
        };
        let (waited, _) = tokio::join!(waiter, deleter);
        waited
    };
    let (events, waited) = tokio::join!(tokio::time::timeout(Duration::from_secs(60), watched), actions);
    let _ = watcher.start_kill();
    assert!(waited.status.success(), "{}", String::from_utf8_lossy(&waited.stderr));
    assert_eq!(String::from_utf8_lossy(&waited.stdout).trim(), "configmap/w1 condition met");
    assert_eq!(events.expect("the watch saw the deletion within 60 s"), ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn invalid_objects_are_rejected_as_kubectl_users_expect() {
    requires!(Kubectl);
    let t = TestLab::start().await;
    let bad = seed_deployment().replace("app: redis\n    spec:", "app: other\n    spec:");
    let out = t.kubectl_output(&["apply", "-f", "-"], Some(&bad)).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is invalid") && err.contains("spec.template.metadata.labels"), "{err}");
    assert!(t.kubectl_output(&["get", "widgets"], None).await.status.code() != Some(0));
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    requires!(Kubectl);
    let t = TestLab::start().await;
    t.kubectl(&["create", "namespace", "scratch"]).await;
    t.kubectl(&["create", "configmap", "c", "-n", "scratch", "--from-literal=a=b"]).await;
    t.kubectl(&["delete", "namespace", "scratch", "--timeout=20s"]).await;
    let out = t.kubectl_output(&["get", "namespace", "scratch"], None).await;
    assert!(!out.status.success(), "namespace still there");
    assert!(t.lab.store.list("configmaps", Some("scratch")).0.is_empty());
}

//! Pod benchmarks on a real `runbook lab up` process: time from applying the
//! seed-000 Deployment to its pod Ready, and the lab's own memory with that pod
//! running. `cargo bench --bench pods`; `cargo test` smoke-runs it.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

fn rss_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pod_ready(pod: &Pod) -> bool {
    let value = serde_json::to_value(pod).unwrap();
    value["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
        && value["metadata"]["deletionTimestamp"].is_null()
}

#[tokio::main]
async fn main() {
    let runbook = runbook::lab_host::runbook_binary().expect("runbook binary built");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab");
    let up = std::process::Command::new(&runbook)
        .args(["lab", "up", "--detach", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let pid = std::fs::read_to_string(state.join("lab.pid")).unwrap().trim().to_string();
    let idle_rss = rss_kib(&pid, "VmRSS:");

    let kubeconfig = kube::config::Kubeconfig::read_from(state.join("kubeconfig")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "my-redis-config"},
        "data": {"redis-config": "maxmemory 2mb"}}))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let manifest: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/seed-000/redis-deployment.yaml"))
            .unwrap(),
    )
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let selector = ListParams::default().labels("app=redis");

    let iterations = common::iterations(20);
    let mut samples = Vec::new();
    let mut running_rss = 0;
    for i in 0..iterations {
        let started = Instant::now();
        deployments.patch("redis-deployment", &PatchParams::apply("bench"), &Patch::Apply(&manifest)).await.unwrap();
        loop {
            if pods.list(&selector).await.unwrap().items.iter().any(pod_ready) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "pod never became Ready");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(started.elapsed());
        if i + 1 == iterations {
            running_rss = rss_kib(&pid, "VmRSS:");
            break;
        }
        deployments.delete("redis-deployment", &DeleteParams::background()).await.unwrap();
        while !pods.list(&selector).await.unwrap().items.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    common::report("apply seed-000 Deployment -> pod Ready", samples, Duration::from_secs(1));
    println!(
        "{:<44} idle {idle_rss} KiB, with the seed-000 pod running {running_rss} KiB (VmRSS of `runbook lab up`)",
        "lab memory"
    );
    let down = std::process::Command::new(&runbook).args(["lab", "down", "--state-dir"]).arg(&state).output().unwrap();
    assert!(down.status.success());
}

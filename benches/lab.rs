//! Lab API benchmarks: start-up to first successful request, and listing 1,000
//! ConfigMaps. `cargo bench --bench lab` for figures; `cargo test` smoke-runs it.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use runbook::lab::{Lab, LabConfig};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut startup = Vec::new();
    for i in 0..common::iterations(30) {
        let started = Instant::now();
        let lab = Lab::start(LabConfig { run_pods: false, ..LabConfig::new(dir.path().join(format!("lab{i}"))) })
            .await
            .unwrap();
        let client = runbook::k8s::client::client_for(&lab.kubeconfig).await.unwrap();
        let namespaces: Api<Namespace> = Api::all(client);
        namespaces.list(&ListParams::default()).await.expect("first request succeeds");
        startup.push(started.elapsed());
        lab.shutdown().await;
    }
    common::report("lab start -> first successful request", startup, Duration::from_millis(300));

    let lab = Lab::start(LabConfig { run_pods: false, ..LabConfig::new(dir.path().join("list")) }).await.unwrap();
    let client = runbook::k8s::client::client_for(&lab.kubeconfig).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..1000 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("cm-{i:04}"), "labels": {"app": "bench"}},
            "data": {"redis-config": "maxmemory 2mb"}
        }))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut listing = Vec::new();
    for _ in 0..common::iterations(50) {
        let started = Instant::now();
        // The namespace also holds kube-root-ca.crt, as on a real cluster.
        let list = cms.list(&ListParams::default().labels("app=bench")).await.unwrap();
        listing.push(started.elapsed());
        assert_eq!(list.items.len(), 1000);
    }
    common::report("list 1,000 configmaps (kube-rs, typed)", listing, Duration::from_millis(50));
    lab.shutdown().await;
}

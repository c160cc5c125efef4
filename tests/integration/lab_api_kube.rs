//! The lab API driven by kube-rs typed APIs, and the raw HTTP edge cases.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};
use serde_json::json;

use crate::common::{TestLab, seed_deployment};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn typed_create_get_patch_and_conflict() {
    let t = TestLab::start().await;
    let client = runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms.create(&PostParams::default(), &configmap("a")).await.unwrap();
    let err = cms.create(&PostParams::default(), &configmap("a")).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"), "{err:?}");

    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"m": "1"}}))).await.unwrap();
    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "changed".to_string())].into());
    let err = cms.replace("a", &PostParams::default(), &stale).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"), "{err:?}");

    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    let manifest: serde_json::Value = serde_yaml_ng::from_str(&seed_deployment()).unwrap();
    let ssa = PatchParams::apply("runbook-test");
    deployments.patch("redis-deployment", &ssa, &Patch::Apply(&manifest)).await.unwrap();
    let strategic =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "redis-container", "image": "redis:7"}]}}}});
    let patched =
        deployments.patch("redis-deployment", &PatchParams::default(), &Patch::Strategic(strategic)).await.unwrap();
    let patched = serde_json::to_value(patched).unwrap();
    let container = &patched["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "redis:7");
    assert_eq!(container["command"][0], "redis-server", "strategic merge keeps other fields");
}

#[tokio::test]
async fn await_condition_and_watcher_see_deletion() {
    let t = TestLab::start().await;
    let client = runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &configmap("gone")).await.unwrap();
    let events = watcher(cms.clone(), watcher::Config::default()).applied_objects().take(1);
    let first: Vec<ConfigMap> =
        tokio::time::timeout(Duration::from_secs(10), events.try_collect()).await.unwrap().unwrap();
    assert!(first.iter().any(|c| c.metadata.name.as_deref() == Some("gone")));
    let uid = first[0].metadata.uid.clone().unwrap();
    let waiter = cms.clone();
    let waiting = tokio::spawn(async move { await_condition(waiter, "gone", conditions::is_deleted(&uid)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cms.delete("gone", &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let t = TestLab::start().await;
    let client = runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..25 {
        cms.create(&PostParams::default(), &configmap(&format!("c{i:02}"))).await.unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(10);
    loop {
        let page = cms.list(&params).await.unwrap();
        // Every namespace also holds kube-root-ca.crt, as on a real cluster.
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()).filter(|n| n != "kube-root-ca.crt"));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn owner_deletion_collects_dependents() {
    let t = TestLab::start().await;
    let client = runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = cms.create(&PostParams::default(), &configmap("owner")).await.unwrap();
    let mut dependent = configmap("dependent");
    dependent.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        ..Default::default()
    }]);
    let uid = cms.create(&PostParams::default(), &dependent).await.unwrap().metadata.uid.unwrap();
    cms.delete("owner", &DeleteParams::background()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), await_condition(cms, "dependent", conditions::is_deleted(&uid)))
        .await
        .expect("dependent collected")
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(client);
    assert!(namespaces.get("default").await.is_ok());
}

/// Raw HTTP: authentication, malformed bodies, unknown paths, 410 Gone.
mod raw {
    use super::*;

    /// Sends one request; `token` replaces the kubeconfig's token when given
    /// (`Some("")` sends none at all).
    async fn request(
        t: &TestLab,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let kubeconfig = kube::config::Kubeconfig::read_from(&t.lab.kubeconfig).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        if let Some(token) = token {
            config.auth_info.token = (!token.is_empty()).then(|| token.to_string().into());
        }
        let client = kube::Client::try_from(config).unwrap();
        let builder = http::Request::builder().method(method).uri(path).header("content-type", "application/json");
        let request = builder.body(body.as_bytes().to_vec()).unwrap();
        let response = client.send(request.map(kube::client::Body::from)).await.unwrap();
        let status = response.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn missing_or_wrong_token_is_401_with_status_body() {
        let t = TestLab::start().await;
        for token in ["wrong", ""] {
            let (code, body) = request(&t, "GET", "/api/v1/namespaces", Some(token), "").await;
            assert_eq!(code, 401, "token {token:?}");
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["reason"], "Unauthorized");
        }
        let (code, _) = request(&t, "GET", "/api/v1/namespaces", None, "").await;
        assert_eq!(code, 200, "the kubeconfig's own token works");
    }

    #[tokio::test]
    async fn malformed_body_is_400_naming_the_problem() {
        let t = TestLab::start().await;
        let (code, body) = request(&t, "POST", "/api/v1/namespaces/default/configmaps", None, "{\"metadata\": ").await;
        assert_eq!(code, 400);
        assert!(body["message"].as_str().unwrap().contains("not valid JSON"), "{body}");
    }

    #[tokio::test]
    async fn unknown_resources_are_404() {
        let t = TestLab::start().await;
        for path in ["/api/v1/namespaces/default/widgets", "/apis/example.com/v1/things", "/nothing"] {
            let (code, body) = request(&t, "GET", path, None, "").await;
            assert_eq!(code, 404, "{path}");
            assert_eq!(body["reason"], "NotFound");
        }
    }

    #[tokio::test]
    async fn watch_from_compacted_history_is_gone() {
        let t = TestLab::start().await;
        let client = runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        cms.create(&PostParams::default(), &configmap("x")).await.unwrap();
        t.lab.store.compact();
        cms.create(&PostParams::default(), &configmap("y")).await.unwrap();
        let params = kube::api::WatchParams::default().timeout(2);
        let mut stream = cms.watch(&params, "1").await.unwrap().boxed();
        match stream.next().await {
            Some(Ok(kube::api::WatchEvent::Error(e))) => assert_eq!(e.code, 410),
            Some(Err(kube::Error::Api(e))) => assert_eq!(e.code, 410),
            other => panic!("expected 410, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn aggregated_and_per_group_discovery_agree() {
    let t = TestLab::start().await;
    let client = runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap();
    let kinds = |d: &kube::Discovery| {
        let mut kinds: Vec<String> = d
            .groups()
            .flat_map(|g| g.recommended_resources().into_iter().map(|(r, _)| format!("{}/{}", r.api_version, r.kind)))
            .collect();
        kinds.sort();
        kinds
    };
    let aggregated = kinds(&kube::Discovery::new(client.clone()).run_aggregated().await.unwrap());
    let per_group = kinds(&kube::Discovery::new(client).run().await.unwrap());
    assert!(aggregated.contains(&"apps/v1/Deployment".to_string()), "{aggregated:?}");
    assert!(aggregated.contains(&"v1/PersistentVolume".to_string()), "{aggregated:?}");
    assert_eq!(aggregated, per_group);
}

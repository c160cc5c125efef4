//! Namespaces: every new namespace gets its `default` ServiceAccount and
//! the ConfigMap `kube-root-ca.crt`; a
//! namespace being deleted has its contents deleted, and goes when it is empty.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::api::objects::{self, Propagation};
use crate::api::resources::{RESOURCES, by_key};
use crate::api::store::{Change, ChangeType, Store};
use crate::bootstrap::ROOT_CA_CONFIGMAP;

/// Reacts to namespace changes.
pub fn on_change(store: &Arc<Store>, change: &Change) {
    if change.resource != "namespaces" {
        return;
    }
    let name = change.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    match change.kind {
        ChangeType::Added => {
            if let Some(sa) = by_key("serviceaccounts") {
                let _ = objects::create(store, sa, &name, json!({"metadata": {"name": "default"}}), false);
            }
            publish_root_ca(store, &name);
        }
        ChangeType::Modified if !change.object["metadata"]["deletionTimestamp"].is_null() => {
            let store = store.clone();
            tokio::spawn(async move { empty_and_remove(&store, &name).await });
        }
        _ => {}
    }
}

/// Copies the API server's CA (kube-system's `kube-root-ca.crt`) into
/// namespace `ns`, as the root-ca-cert-publisher does.
fn publish_root_ca(store: &Store, ns: &str) {
    let Some(configmaps) = by_key("configmaps") else { return };
    if let Some(source) = store.get(configmaps.key(), "kube-system", ROOT_CA_CONFIGMAP) {
        let copy = json!({"metadata": {"name": ROOT_CA_CONFIGMAP}, "data": source["data"].clone()});
        let _ = objects::create(store, configmaps, ns, copy, false);
    }
}

fn remaining(store: &Store, ns: &str) -> usize {
    RESOURCES.iter().filter(|rt| rt.namespaced).map(|rt| store.list(rt.key(), Some(ns)).0.len()).sum()
}

async fn empty_and_remove(store: &Store, ns: &str) {
    // Pods may take their grace period to go; give up after a generous bound
    // rather than leaving a namespace Terminating forever.
    for _ in 0..600 {
        for rt in RESOURCES.iter().filter(|rt| rt.namespaced) {
            for object in store.list(rt.key(), Some(ns)).0 {
                let (_, name) = objects::ns_name(&object);
                if object["metadata"]["deletionTimestamp"].is_null() {
                    let _ = objects::delete(store, rt, ns, &name, Propagation::Background, None);
                }
            }
        }
        if remaining(store, ns) == 0 {
            if let Some(rt) = by_key("namespaces") {
                let _ = objects::finalize_delete(store, rt, "", ns);
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

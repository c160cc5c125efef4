//! Namespaces: every new namespace gets its `default` ServiceAccount; a
//! namespace being deleted has its contents deleted, and goes when it is empty.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::lab::api::objects::{self, Propagation};
use crate::lab::api::resources::{RESOURCES, by_key};
use crate::lab::api::store::{Change, ChangeType, Store};

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
        }
        ChangeType::Modified if !change.object["metadata"]["deletionTimestamp"].is_null() => {
            let store = store.clone();
            tokio::spawn(async move { empty_and_remove(&store, &name).await });
        }
        _ => {}
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

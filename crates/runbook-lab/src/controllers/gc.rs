//! Garbage collection: when an owner is deleted in the background, its
//! dependents go too (ReplicaSets of a Deployment, Pods of a ReplicaSet, …).

use std::sync::Arc;

use crate::api::objects::{self, Propagation};
use crate::api::store::{Change, ChangeType, Store};

/// Deletes the dependents of a deleted object, unless another owner remains.
pub fn on_change(store: &Arc<Store>, change: &Change) {
    if change.kind != ChangeType::Deleted {
        return;
    }
    let Some(uid) = change.object["metadata"]["uid"].as_str() else { return };
    for (rt, dependent) in objects::dependents(store, uid) {
        let refs = dependent["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        let other_owner_alive = refs.iter().filter(|r| r["uid"] != uid).any(|r| owner_exists(store, &dependent, r));
        if other_owner_alive {
            continue;
        }
        let (ns, name) = objects::ns_name(&dependent);
        let _ = objects::delete(store, rt, &ns, &name, Propagation::Background, None);
    }
}

fn owner_exists(store: &Store, dependent: &serde_json::Value, owner_ref: &serde_json::Value) -> bool {
    let api_version = owner_ref["apiVersion"].as_str().unwrap_or_default();
    let kind = owner_ref["kind"].as_str().unwrap_or_default();
    let Some(rt) = crate::api::resources::by_kind(api_version, kind) else { return false };
    let ns = if rt.namespaced { dependent["metadata"]["namespace"].as_str().unwrap_or_default() } else { "" };
    let name = owner_ref["name"].as_str().unwrap_or_default();
    store.get(rt.key(), ns, name).is_some_and(|o| o["metadata"]["uid"] == owner_ref["uid"])
}

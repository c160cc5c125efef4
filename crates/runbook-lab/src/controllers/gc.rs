//! Garbage collection: when an owner is deleted in the background, its
//! dependents go too (ReplicaSets of a Deployment, Pods of a ReplicaSet, …).

use std::sync::Arc;

use crate::api::objects::{self, Propagation};
use crate::api::store::{Change, ChangeType, Store};

/// Deletes the dependents of a deleted object, unless another owner remains;
/// and an object made after all its owners were deleted (a controller that
/// read its owner just before the deletion), as the garbage collector
/// deletes a dependent whose owners are all absent.
pub fn on_change(store: &Arc<Store>, change: &Change) {
    if change.kind == ChangeType::Added {
        delete_if_orphaned(store, change);
        return;
    }
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

/// Deletes a new object whose owners, all of kinds the lab serves, are all gone.
fn delete_if_orphaned(store: &Arc<Store>, change: &Change) {
    let refs = change.object["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    let known = |r: &serde_json::Value| {
        crate::api::resources::by_kind(
            r["apiVersion"].as_str().unwrap_or_default(),
            r["kind"].as_str().unwrap_or_default(),
        )
        .is_some()
    };
    if refs.is_empty() || !refs.iter().all(known) || refs.iter().any(|r| owner_exists(store, &change.object, r)) {
        return;
    }
    let Some(rt) = crate::api::resources::by_key(change.resource) else { return };
    let (ns, name) = objects::ns_name(&change.object);
    // Only the object that was made, not one of the same name made since.
    let same =
        store.get(rt.key(), &ns, &name).is_some_and(|o| o["metadata"]["uid"] == change.object["metadata"]["uid"]);
    if same {
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

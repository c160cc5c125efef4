//! Deployments: one ReplicaSet per pod template (named by its hash), rolled
//! out by the strategy (RollingUpdate with maxSurge/maxUnavailable, or
//! Recreate), with the status and conditions `kubectl rollout status` reads.

use std::sync::Arc;

use serde_json::{Value, json};

use super::replicaset::{controller_ref, owned_by, write_status};
use crate::api::objects::{self, Part, Propagation};
use crate::api::resources::by_key;
use crate::api::store::Store;

const REVISION: &str = "deployment.kubernetes.io/revision";

/// The `pod-template-hash` of a template: FNV-1a of its JSON, in the
/// alphabet Kubernetes uses for safe names.
pub fn template_hash(template: &Value) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in template.to_string().bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    let mut n = hash;
    for _ in 0..10 {
        out.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
        n /= ALPHABET.len() as u64;
    }
    out
}

/// Resolves an int-or-percent against `total` (percent rounds up when `up`).
pub fn int_or_percent(value: &Value, total: i64, up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

fn replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(0)
}

fn status_count(rs: &Value, key: &str) -> i64 {
    rs["status"][key].as_i64().unwrap_or(0)
}

/// Reconciles every Deployment.
pub fn reconcile_all(store: &Store) {
    for d in store.list("deployments", None).0 {
        if d["metadata"]["deletionTimestamp"].is_null() {
            reconcile(store, &d);
        }
    }
}

fn scale(store: &Store, d: &Value, rs: &Value, to: i64) {
    let Some(rs_rt) = by_key("replicasets") else { return };
    let from = replicas(rs);
    if from == to {
        return;
    }
    let (ns, name) = objects::ns_name(rs);
    let mut next = rs.clone();
    next["spec"]["replicas"] = json!(to);
    next["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
        json!(d["spec"]["replicas"].as_i64().unwrap_or(1).to_string());
    if objects::update(store, rs_rt, &ns, &name, next, Part::Main).is_ok() {
        let verb = if to > from { "up" } else { "down" };
        objects::record_event(
            store,
            d,
            "Normal",
            "ScalingReplicaSet",
            &format!("Scaled {verb} replica set {name} from {from} to {to}"),
            "deployment-controller",
        );
    }
}

fn reconcile(store: &Store, d: &Value) {
    let Some(rs_rt) = by_key("replicasets") else { return };
    let (ns, name) = objects::ns_name(d);
    let uid = d["metadata"]["uid"].as_str().unwrap_or_default();
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let template = &d["spec"]["template"];
    let hash = template_hash(template);
    let mut sets = owned_by(store, "replicasets", &ns, uid);
    let revision =
        |rs: &Value| rs["metadata"]["annotations"][REVISION].as_str().and_then(|r| r.parse::<i64>().ok()).unwrap_or(0);
    let max_revision = sets.iter().map(|rs| revision(rs)).max().unwrap_or(0);
    let new_rs = match sets.iter().find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == hash.as_str()) {
        Some(rs) => {
            // A rollback to an older template makes its ReplicaSet the newest revision.
            if revision(rs) < max_revision {
                let mut next = (**rs).clone();
                next["metadata"]["annotations"][REVISION] = json!((max_revision + 1).to_string());
                let _ = objects::update(
                    store,
                    rs_rt,
                    &ns,
                    rs["metadata"]["name"].as_str().unwrap_or_default(),
                    next,
                    Part::Main,
                );
            }
            rs.clone()
        }
        None => {
            let mut tmpl = template.clone();
            tmpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("{name}-{hash}"), "labels": tmpl["metadata"]["labels"],
                    "annotations": {REVISION: (max_revision + 1).to_string(),
                                    "deployment.kubernetes.io/desired-replicas": desired.to_string()},
                    "ownerReferences": [controller_ref(d)]},
                "spec": {"replicas": 0, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                         "selector": selector, "template": tmpl},
            });
            match objects::create(store, rs_rt, &ns, rs, false) {
                Ok(created) => {
                    sets.push(created.clone());
                    created
                }
                Err(_) => return,
            }
        }
    };
    let new_name = new_rs["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let olds: Vec<Arc<Value>> = sets.iter().filter(|rs| rs["metadata"]["name"] != new_name.as_str()).cloned().collect();
    let strategy = &d["spec"]["strategy"];
    let (max_surge, mut max_unavailable) = if strategy["type"] == "Recreate" {
        (0, desired)
    } else {
        let ru = &strategy["rollingUpdate"];
        (int_or_percent(&ru["maxSurge"], desired, true), int_or_percent(&ru["maxUnavailable"], desired, false))
    };
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    if d["spec"]["paused"] != true {
        if strategy["type"] == "Recreate" {
            for old in &olds {
                scale(store, d, old, 0);
            }
            let old_pods: usize = olds
                .iter()
                .map(|o| owned_by(store, "pods", &ns, o["metadata"]["uid"].as_str().unwrap_or_default()).len())
                .sum();
            if old_pods == 0 {
                scale(store, d, &new_rs, desired);
            }
        } else {
            roll(store, d, &new_rs, &olds, desired, max_surge, max_unavailable);
        }
        prune_history(store, d, &olds);
    }
    let sets = owned_by(store, "replicasets", &ns, uid);
    let new_now = sets.iter().find(|rs| rs["metadata"]["name"] == new_name.as_str()).cloned();
    let sum = |key: &str| -> i64 { sets.iter().map(|rs| status_count(rs, key)).sum() };
    let updated = new_now.as_ref().map(|rs| status_count(rs, "replicas")).unwrap_or(0);
    let (total, ready, available) = (sum("replicas"), sum("readyReplicas"), sum("availableReplicas"));
    let complete = updated == desired
        && total == desired
        && available == desired
        && new_now.as_ref().is_some_and(|rs| rs["status"]["observedGeneration"] == rs["metadata"]["generation"]);
    let previous = &d["status"];
    let now = objects::now();
    let condition = |kind: &str, ok: bool, reason: &str, message: String| -> Value {
        let old = previous["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == kind)).cloned();
        let status = if ok { "True" } else { "False" };
        let same = old.as_ref().is_some_and(|c| c["status"] == status && c["reason"] == reason);
        let transition =
            if same { old.as_ref().map(|c| c["lastTransitionTime"].clone()).unwrap_or(json!(now)) } else { json!(now) };
        let update =
            if same { old.as_ref().map(|c| c["lastUpdateTime"].clone()).unwrap_or(json!(now)) } else { json!(now) };
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastUpdateTime": update, "lastTransitionTime": transition})
    };
    let min_available = available >= desired - max_unavailable;
    let status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (total.max(desired) - available).max(0),
        "conditions": [
            condition("Available", min_available,
                if min_available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                if min_available { "Deployment has minimum availability.".into() } else { "Deployment does not have minimum availability.".into() }),
            condition("Progressing", true,
                if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                if complete { format!("ReplicaSet \"{new_name}\" has successfully progressed.") } else { format!("ReplicaSet \"{new_name}\" is progressing.") }),
        ],
    });
    let mut status = status;
    for key in ["readyReplicas", "availableReplicas", "updatedReplicas", "unavailableReplicas"] {
        if status[key] == 0 {
            status.as_object_mut().map(|m| m.remove(key));
        }
    }
    if let Some(rt) = by_key("deployments") {
        write_status(store, rt, d, status);
    }
}

/// One step of a rolling update: surge the new ReplicaSet, then scale the old
/// ones down as far as availability allows (unhealthy old pods first).
fn roll(
    store: &Store,
    d: &Value,
    new_rs: &Value,
    olds: &[Arc<Value>],
    desired: i64,
    max_surge: i64,
    max_unavailable: i64,
) {
    let all: i64 = replicas(new_rs) + olds.iter().map(|o| replicas(o)).sum::<i64>();
    let new_spec = replicas(new_rs);
    if new_spec > desired {
        scale(store, d, new_rs, desired);
    } else if new_spec < desired {
        let room = desired + max_surge - all;
        if room > 0 {
            scale(store, d, new_rs, new_spec + room.min(desired - new_spec));
        }
    }
    let new_rs = store.get(
        "replicasets",
        new_rs["metadata"]["namespace"].as_str().unwrap_or_default(),
        new_rs["metadata"]["name"].as_str().unwrap_or_default(),
    );
    let Some(new_rs) = new_rs else { return };
    let all: i64 = replicas(&new_rs) + olds.iter().map(|o| replicas(o)).sum::<i64>();
    let min_available = desired - max_unavailable;
    let new_unavailable = (replicas(&new_rs) - status_count(&new_rs, "availableReplicas")).max(0);
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return;
    }
    let mut olds: Vec<Arc<Value>> = olds.to_vec();
    olds.sort_by_key(|o| o["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_string());
    let mut scaled: Vec<(Arc<Value>, i64)> = olds.iter().map(|o| (o.clone(), replicas(o))).collect();
    for (old, target) in scaled.iter_mut() {
        let unhealthy = (*target - status_count(old, "availableReplicas")).max(0);
        let cut = unhealthy.min(budget);
        *target -= cut;
        budget -= cut;
    }
    let available: i64 = status_count(&new_rs, "availableReplicas")
        + scaled.iter().map(|(o, _)| status_count(o, "availableReplicas")).sum::<i64>();
    let mut available_budget = (available - min_available).max(0).min(budget.max(0));
    for (_, target) in scaled.iter_mut() {
        let cut = (*target).min(available_budget);
        *target -= cut;
        available_budget -= cut;
    }
    for (old, target) in scaled {
        scale(store, d, &old, target);
    }
}

/// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit`.
fn prune_history(store: &Store, d: &Value, olds: &[Arc<Value>]) {
    let Some(rs_rt) = by_key("replicasets") else { return };
    let limit = d["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10).max(0) as usize;
    let mut empty: Vec<&Arc<Value>> =
        olds.iter().filter(|o| replicas(o) == 0 && status_count(o, "replicas") == 0).collect();
    if empty.len() <= limit {
        return;
    }
    empty.sort_by_key(|o| o["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_string());
    for old in &empty[..empty.len() - limit] {
        let (ns, name) = objects::ns_name(old);
        let _ = objects::delete(store, rs_rt, &ns, &name, Propagation::Background, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_kubernetes() {
        assert_eq!(int_or_percent(&json!("25%"), 1, true), 1);
        assert_eq!(int_or_percent(&json!("25%"), 1, false), 0);
        assert_eq!(int_or_percent(&json!("25%"), 4, false), 1);
        assert_eq!(int_or_percent(&json!(2), 4, false), 2);
    }

    #[test]
    fn hash_is_stable_and_template_sensitive() {
        let a = json!({"spec": {"containers": [{"image": "redis:7"}]}});
        let b = json!({"spec": {"containers": [{"image": "redis:6"}]}});
        assert_eq!(template_hash(&a), template_hash(&a));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
    }
}

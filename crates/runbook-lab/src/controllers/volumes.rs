//! Persistent volumes: claims bind to Available volumes as Kubernetes matches
//! them (storage class, access modes, capacity, smallest first, claimRef), the
//! default class `standard` provisions a volume when none matches, and a
//! volume whose claim is gone is Released (Retain) or removed (Delete).

use serde_json::{Value, json};

use crate::api::defaults;
use crate::api::objects::{self, Part, Propagation};
use crate::api::resources::by_key;
use crate::api::store::Store;
use runbook_units::Quantity;

/// The provisioner of the lab's default StorageClass.
pub const PROVISIONER: &str = "runbook.lab/local-path";

fn quantity(v: &Value) -> Option<Quantity> {
    v.as_str().and_then(|s| Quantity::parse(s).ok())
}

fn class_of(spec: &Value) -> &str {
    spec["storageClassName"].as_str().unwrap_or_default()
}

fn matches(pv: &Value, pvc: &Value) -> bool {
    let (pv_spec, pvc_spec) = (&pv["spec"], &pvc["spec"]);
    if class_of(pv_spec) != class_of(pvc_spec) {
        return false;
    }
    let claim_ref = &pv_spec["claimRef"];
    let free = pv["status"]["phase"] == "Available" || pv["status"]["phase"] == "Pending";
    let reserved =
        claim_ref["name"] == pvc["metadata"]["name"] && claim_ref["namespace"] == pvc["metadata"]["namespace"];
    if !(claim_ref.is_null() && free
        || reserved && claim_ref["uid"].is_null()
        || reserved && claim_ref["uid"] == pvc["metadata"]["uid"])
    {
        return false;
    }
    let modes = pv_spec["accessModes"].as_array().cloned().unwrap_or_default();
    let wanted = pvc_spec["accessModes"].as_array().cloned().unwrap_or_default();
    if !wanted.iter().all(|m| modes.contains(m)) {
        return false;
    }
    if pv_spec["volumeMode"].as_str().unwrap_or("Filesystem") != pvc_spec["volumeMode"].as_str().unwrap_or("Filesystem")
    {
        return false;
    }
    match (quantity(&pv_spec["capacity"]["storage"]), quantity(&pvc_spec["resources"]["requests"]["storage"])) {
        (Some(have), Some(want)) => have >= want,
        _ => false,
    }
}

fn bind(store: &Store, pv: &Value, pvc: &Value) {
    let (Some(pvs), Some(pvcs)) = (by_key("persistentvolumes"), by_key("persistentvolumeclaims")) else { return };
    let (ns, claim) = objects::ns_name(pvc);
    let volume = pv["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut next_pv = pv.clone();
    next_pv["spec"]["claimRef"] = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": claim,
        "uid": pvc["metadata"]["uid"], "resourceVersion": pvc["metadata"]["resourceVersion"]});
    let Ok(stored_pv) = objects::update(store, pvs, "", &volume, next_pv, Part::Main) else { return };
    let mut pv_status = (*stored_pv).clone();
    pv_status["status"] = json!({"phase": "Bound"});
    let _ = objects::update(store, pvs, "", &volume, pv_status, Part::Status);
    let mut next_pvc = pvc.clone();
    next_pvc["spec"]["volumeName"] = json!(volume);
    let Ok(stored_pvc) = objects::update(store, pvcs, &ns, &claim, next_pvc, Part::Main) else { return };
    let mut pvc_status = (*stored_pvc).clone();
    pvc_status["status"] =
        json!({"phase": "Bound", "accessModes": pv["spec"]["accessModes"], "capacity": pv["spec"]["capacity"]});
    let _ = objects::update(store, pvcs, &ns, &claim, pvc_status, Part::Status);
}

fn provision(store: &Store, pvc: &Value) -> Option<Value> {
    let pvs = by_key("persistentvolumes")?;
    let uid = pvc["metadata"]["uid"].as_str()?;
    let class = class_of(&pvc["spec"]).to_string();
    let sc = store.get("storageclasses", "", &class)?;
    if sc["provisioner"] != PROVISIONER {
        return None;
    }
    let name = format!("pvc-{uid}");
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
            "accessModes": pvc["spec"]["accessModes"],
            "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
            "storageClassName": class,
            "hostPath": {"path": format!("/runbook-provisioned/{name}"), "type": "DirectoryOrCreate"},
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": pvc["metadata"]["namespace"],
                         "name": pvc["metadata"]["name"], "uid": uid},
        }
    });
    let created = objects::create(store, pvs, "", pv, false).ok()?;
    objects::record_event(
        store,
        pvc,
        "Normal",
        "ProvisioningSucceeded",
        &format!("Successfully provisioned volume {name}"),
        PROVISIONER,
    );
    Some((*created).clone())
}

/// Lifts the protection of claims being deleted that no pod uses any more,
/// and of volumes being deleted that no claim is bound to, as Kubernetes'
/// pvc-protection and pv-protection controllers do: a volume's data is not
/// removed under a running pod.
fn lift_protections(store: &Store) {
    let (Some(pvcs_rt), Some(pvs_rt)) = (by_key("persistentvolumeclaims"), by_key("persistentvolumes")) else {
        return;
    };
    let pods = store.list("pods", None).0;
    for pvc in store.list("persistentvolumeclaims", None).0 {
        let (ns, name) = objects::ns_name(&pvc);
        let in_use = pods.iter().any(|pod| {
            pod["metadata"]["namespace"] == ns.as_str()
                && !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                && pod["spec"]["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v["persistentVolumeClaim"]["claimName"] == name.as_str())
        });
        if !in_use {
            drop_finalizer(store, pvcs_rt, &pvc, defaults::PVC_PROTECTION);
        }
    }
    let claims = store.list("persistentvolumeclaims", None).0;
    for pv in store.list("persistentvolumes", None).0 {
        let claim = &pv["spec"]["claimRef"];
        let bound = claims.iter().any(|c| c["metadata"]["uid"] == claim["uid"] && !claim["uid"].is_null());
        if !bound {
            drop_finalizer(store, pvs_rt, &pv, defaults::PV_PROTECTION);
        }
    }
}

fn drop_finalizer(store: &Store, rt: &'static crate::api::resources::ResourceType, object: &Value, finalizer: &str) {
    let listed = object["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == finalizer));
    if object["metadata"]["deletionTimestamp"].is_null() || !listed {
        return;
    }
    let mut next = object.clone();
    if let Some(list) = next["metadata"]["finalizers"].as_array_mut() {
        list.retain(|f| f != finalizer);
    }
    let (ns, name) = objects::ns_name(object);
    let _ = objects::update(store, rt, &ns, &name, next, Part::Main);
}

/// Binds pending claims and releases volumes whose claims are gone.
pub fn reconcile_all(store: &Store) {
    lift_protections(store);
    let Some(pvs_rt) = by_key("persistentvolumes") else { return };
    // New volumes become Available.
    for pv in store.list("persistentvolumes", None).0 {
        if pv["status"]["phase"] == "Pending" && pv["spec"]["claimRef"].is_null() {
            let mut next = (*pv).clone();
            next["status"] = json!({"phase": "Available"});
            let _ = objects::update(
                store,
                pvs_rt,
                "",
                pv["metadata"]["name"].as_str().unwrap_or_default(),
                next,
                Part::Status,
            );
        }
    }
    for pvc in store.list("persistentvolumeclaims", None).0 {
        if pvc["status"]["phase"] != "Pending" || !pvc["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let volumes = store.list("persistentvolumes", None).0;
        let mut candidates: Vec<&Value> = volumes.iter().map(|v| v.as_ref()).filter(|pv| matches(pv, &pvc)).collect();
        // A volume reserved for this claim wins; otherwise the smallest that fits.
        candidates.sort_by_key(|pv| {
            (
                pv["spec"]["claimRef"].is_null(),
                quantity(&pv["spec"]["capacity"]["storage"]),
                pv["metadata"]["name"].as_str().map(String::from),
            )
        });
        match candidates.first() {
            Some(pv) => bind(store, pv, &pvc),
            None => {
                if let Some(pv) = provision(store, &pvc) {
                    bind(store, &pv, &pvc);
                }
            }
        }
    }
    for pv in store.list("persistentvolumes", None).0 {
        let claim = &pv["spec"]["claimRef"];
        if pv["status"]["phase"] != "Bound" || claim.is_null() {
            continue;
        }
        let ns = claim["namespace"].as_str().unwrap_or_default();
        let name = claim["name"].as_str().unwrap_or_default();
        let alive = store.get("persistentvolumeclaims", ns, name).is_some_and(|c| c["metadata"]["uid"] == claim["uid"]);
        if alive {
            continue;
        }
        let volume = pv["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
            let _ = objects::delete(store, pvs_rt, "", &volume, Propagation::Background, None);
        } else {
            let mut next = (*pv).clone();
            next["status"] = json!({"phase": "Released"});
            let _ = objects::update(store, pvs_rt, "", &volume, next, Part::Status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, size: &str, class: Option<&str>) -> Value {
        let mut v = json!({"metadata": {"name": name}, "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"]},
                           "status": {"phase": "Available"}});
        if let Some(c) = class {
            v["spec"]["storageClassName"] = json!(c);
        }
        v
    }

    #[test]
    fn matching_follows_class_modes_and_capacity() {
        let pvc = json!({"metadata": {"name": "data-redis-0", "namespace": "default", "uid": "u"},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        assert!(matches(&pv("redis01", "1Gi", None), &pvc));
        assert!(!matches(&pv("small", "500Mi", None), &pvc));
        assert!(!matches(&pv("classy", "1Gi", Some("standard")), &pvc));
        let mut rwx = pv("rwx", "1Gi", None);
        rwx["spec"]["accessModes"] = json!(["ReadOnlyMany"]);
        assert!(!matches(&rwx, &pvc));
    }
}

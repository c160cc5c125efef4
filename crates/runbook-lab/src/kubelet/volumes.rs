//! Volumes made real under the pod's directory in the state dir: configMap and
//! secret files (items, defaultMode), emptyDir, hostPath (kept under the state
//! dir, never at the host's root), downwardAPI, and persistentVolumeClaim (the
//! bound volume's directory).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use super::sandbox::SandboxMount;
use crate::api::store::Store;

/// Where a hostPath volume's data lives: under the state dir, mirroring the path.
pub fn host_path_dir(state_dir: &Path, path: &str) -> PathBuf {
    state_dir.join("hostpath").join(path.trim_start_matches('/'))
}

/// Brings a running pod's configMap and secret volumes up to date with their
/// objects, as the kubelet's periodic volume sync does. Each file is
/// replaced by a new one (write, then rename), so a subPath mount, bound to
/// the old file, keeps its content, as on a real cluster.
pub fn refresh_projected(store: &Store, pod_dir: &Path, pod: &Value) {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let (data, source) = if let Some(name) = volume["configMap"]["name"].as_str() {
            (store.get("configmaps", ns, name).map(|o| configmap_data(&o)), &volume["configMap"])
        } else if let Some(name) = volume["secret"]["secretName"].as_str() {
            (store.get("secrets", ns, name).map(|o| secret_data(&o)), &volume["secret"])
        } else {
            continue;
        };
        let Some(data) = data else { continue }; // gone: the kubelet keeps the last content
        let dir = pod_dir.join("volumes").join(volume["name"].as_str().unwrap_or_default());
        let fresh = dir.with_extension("refresh");
        let _ = fs::remove_dir_all(&fresh);
        if fs::create_dir_all(&fresh).is_err()
            || project_keys(&fresh, &data, &source["items"], mode_of(&source["defaultMode"], 0o644)).is_err()
        {
            let _ = fs::remove_dir_all(&fresh);
            continue;
        }
        sync_dir(&fresh, &dir);
        let _ = fs::remove_dir_all(&fresh);
    }
}

/// Makes `dir` hold what `fresh` holds, file by file, by rename.
fn sync_dir(fresh: &Path, dir: &Path) {
    let names = |d: &Path| -> Vec<std::ffi::OsString> {
        fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.file_name()).collect()
    };
    let wanted = names(fresh);
    for name in names(dir) {
        if !wanted.contains(&name) {
            let path = dir.join(&name);
            let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir_all(&path));
        }
    }
    for name in wanted {
        let (from, to) = (fresh.join(&name), dir.join(&name));
        if from.is_dir() {
            let _ = fs::create_dir_all(&to);
            sync_dir(&from, &to);
        } else if fs::read(&from).ok() != fs::read(&to).ok()
            || fs::metadata(&from).map(|m| m.permissions()).ok() != fs::metadata(&to).map(|m| m.permissions()).ok()
        {
            let _ = fs::rename(&from, &to);
        }
    }
}

/// Removes the data of a volume the lab's provisioner made, once the volume
/// is deleted (reclaim policy Delete), as a real provisioner deletes the disk.
pub fn remove_provisioned_data(state_dir: &Path, pv: &serde_json::Value) {
    let provisioned =
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == crate::controllers::volumes::PROVISIONER;
    if let (true, Some(path)) = (provisioned, pv["spec"]["hostPath"]["path"].as_str()) {
        let _ = std::fs::remove_dir_all(host_path_dir(state_dir, path));
    }
}

/// Why a volume could not be prepared (a FailedMount event).
pub type MountError = String;

fn write_file(dir: &Path, rel: &str, bytes: &[u8], mode: u32) -> Result<(), MountError> {
    if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
        return Err(format!("invalid item path {rel:?}"));
    }
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    fs::write(&path, bytes).map_err(|e| e.to_string())?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

fn mode_of(v: &Value, default: u32) -> u32 {
    v.as_u64().map(|m| m as u32).unwrap_or(default)
}

/// Writes the keys of a ConfigMap or Secret (all, or the listed items).
fn project_keys(dir: &Path, data: &[(String, Vec<u8>)], items: &Value, default_mode: u32) -> Result<(), MountError> {
    match items.as_array() {
        Some(items) if !items.is_empty() => {
            for item in items {
                let key = item["key"].as_str().unwrap_or_default();
                let (_, bytes) = data.iter().find(|(k, _)| k == key).ok_or_else(|| format!("key {key:?} not found"))?;
                let path = item["path"].as_str().unwrap_or(key);
                write_file(dir, path, bytes, mode_of(&item["mode"], default_mode))?;
            }
        }
        _ => {
            for (key, bytes) in data {
                write_file(dir, key, bytes, default_mode)?;
            }
        }
    }
    Ok(())
}

fn configmap_data(object: &Value) -> Vec<(String, Vec<u8>)> {
    let mut data: Vec<(String, Vec<u8>)> = object["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().as_bytes().to_vec()))
        .collect();
    for (k, v) in object["binaryData"].as_object().into_iter().flatten() {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).unwrap_or_default();
        data.push((k.clone(), bytes));
    }
    data
}

fn secret_data(object: &Value) -> Vec<(String, Vec<u8>)> {
    object["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Prepares every volume of `pod` under `pod_dir/volumes/NAME`; returns the
/// host directory of each volume by name.
pub fn prepare(
    store: &Store,
    state_dir: &Path,
    pod_dir: &Path,
    pod: &Value,
) -> Result<Vec<(String, PathBuf)>, MountError> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut out = Vec::new();
    for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or_default().to_string();
        let dir = pod_dir.join("volumes").join(&name);
        let path = if volume["emptyDir"].is_object() {
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            dir
        } else if let Some(cm) = volume["configMap"].as_object() {
            let cm_name = cm.get("name").and_then(Value::as_str).unwrap_or_default();
            let optional = cm.get("optional").and_then(Value::as_bool).unwrap_or(false);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            match store.get("configmaps", ns, cm_name) {
                Some(object) => project_keys(
                    &dir,
                    &configmap_data(&object),
                    &volume["configMap"]["items"],
                    mode_of(&volume["configMap"]["defaultMode"], 0o644),
                )
                .map_err(|e| format!("configmap \"{cm_name}\": {e}"))?,
                None if optional => {}
                None => return Err(format!("configmap \"{cm_name}\" not found")),
            }
            dir
        } else if let Some(secret) = volume["secret"].as_object() {
            let secret_name = secret.get("secretName").and_then(Value::as_str).unwrap_or_default();
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            match store.get("secrets", ns, secret_name) {
                Some(object) => project_keys(
                    &dir,
                    &secret_data(&object),
                    &volume["secret"]["items"],
                    mode_of(&volume["secret"]["defaultMode"], 0o644),
                )
                .map_err(|e| format!("secret \"{secret_name}\": {e}"))?,
                None if secret.get("optional").and_then(Value::as_bool).unwrap_or(false) => {}
                None => return Err(format!("secret \"{secret_name}\" not found")),
            }
            dir
        } else if let Some(host) = volume["hostPath"]["path"].as_str() {
            let dir = host_path_dir(state_dir, host);
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            dir
        } else if volume["downwardAPI"].is_object() {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            for item in volume["downwardAPI"]["items"].as_array().into_iter().flatten() {
                let field = item["fieldRef"]["fieldPath"].as_str().unwrap_or_default();
                let value = match field {
                    "metadata.labels" | "metadata.annotations" => {
                        let key = field.rsplit('.').next().unwrap_or_default();
                        pod["metadata"][key]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| format!("{k}=\"{}\"\n", v.as_str().unwrap_or_default()))
                            .collect::<String>()
                    }
                    path => path.split('.').fold(pod, |v, k| &v[k]).as_str().unwrap_or_default().to_string(),
                };
                write_file(&dir, item["path"].as_str().unwrap_or("value"), value.as_bytes(), 0o644)?;
            }
            dir
        } else if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
            claim_dir(store, state_dir, ns, claim)?
        } else {
            return Err(format!("volume {name:?}: this volume type is not supported by the runbook lab"));
        };
        out.push((name, path));
    }
    Ok(out)
}

/// The directory behind a bound claim: its PersistentVolume's hostPath (under
/// the state dir) or the lab's local-path provisioner directory.
fn claim_dir(store: &Store, state_dir: &Path, ns: &str, claim: &str) -> Result<PathBuf, MountError> {
    let pvc = store
        .get("persistentvolumeclaims", ns, claim)
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
    let volume = pvc["spec"]["volumeName"].as_str().filter(|v| !v.is_empty());
    let (Some(volume), Some("Bound")) = (volume, pvc["status"]["phase"].as_str()) else {
        return Err(format!("persistentvolumeclaim \"{claim}\" is not bound"));
    };
    let pv =
        store.get("persistentvolumes", "", volume).ok_or_else(|| format!("persistentvolume \"{volume}\" not found"))?;
    let dir = match pv["spec"]["hostPath"]["path"].as_str().or(pv["spec"]["local"]["path"].as_str()) {
        Some(path) => host_path_dir(state_dir, path),
        None => state_dir.join("volumes").join(volume),
    };
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// The bind mounts for one container from its volumeMounts.
pub fn mounts_for(container: &Value, volumes: &[(String, PathBuf)]) -> Result<Vec<SandboxMount>, MountError> {
    let mut mounts = Vec::new();
    for vm in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = vm["name"].as_str().unwrap_or_default();
        let (_, source) = volumes
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("volume {name:?} is not defined in the pod"))?;
        let mut source = source.clone();
        if let Some(sub) = vm["subPath"].as_str().filter(|s| !s.is_empty()) {
            if sub.split('/').any(|c| c == "..") {
                return Err(format!("subPath {sub:?} must not contain '..'"));
            }
            source = source.join(sub);
            if !source.exists() {
                fs::create_dir_all(&source).map_err(|e| e.to_string())?;
            }
        }
        mounts.push(SandboxMount {
            source,
            target: vm["mountPath"].as_str().unwrap_or_default().to_string(),
            read_only: vm["readOnly"].as_bool().unwrap_or(false),
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{objects, resources::by_key};
    use serde_json::json;

    #[test]
    fn configmap_items_and_modes() {
        let store = Store::new();
        objects::create(&store, by_key("namespaces").unwrap(), "", json!({"metadata": {"name": "default"}}), false)
            .unwrap();
        objects::create(
            &store,
            by_key("configmaps").unwrap(),
            "default",
            json!({"metadata": {"name": "c"},
            "data": {"update-node.sh": "#!/bin/sh\n", "redis.conf": "cluster-enabled yes\n"}}),
            false,
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"namespace": "default"}, "spec": {"volumes": [
            {"name": "conf", "configMap": {"name": "c", "defaultMode": 0o755}},
            {"name": "missing", "configMap": {"name": "nope", "optional": true}}
        ]}});
        let vols = prepare(&store, tmp.path(), &tmp.path().join("pod"), &pod).unwrap();
        let script = vols[0].1.join("update-node.sh");
        assert_eq!(fs::metadata(&script).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(fs::read_to_string(vols[0].1.join("redis.conf")).unwrap(), "cluster-enabled yes\n");
        let bad = json!({"metadata": {"namespace": "default"}, "spec": {"volumes": [{"name": "x", "configMap": {"name": "nope"}}]}});
        assert_eq!(
            prepare(&store, tmp.path(), &tmp.path().join("pod2"), &bad).unwrap_err(),
            "configmap \"nope\" not found"
        );
    }

    #[test]
    fn host_paths_stay_under_the_state_dir() {
        assert_eq!(host_path_dir(Path::new("/s"), "/redis01"), PathBuf::from("/s/hostpath/redis01"));
    }
}

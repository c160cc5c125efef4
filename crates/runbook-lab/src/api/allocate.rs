//! Admission that needs the store: ClusterIPs and NodePorts for Services, the
//! default StorageClass for claims without one; and keeping those on update.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::resources::ResourceType;
use super::status::{ApiError, ApiResult};
use super::store::Store;

/// The Service CIDR's first address; ClusterIPs are allocated after it.
pub const SERVICE_BASE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 0);

fn used_cluster_ips(store: &Store) -> HashSet<String> {
    store.list("services", None).0.iter().filter_map(|s| s["spec"]["clusterIP"].as_str().map(String::from)).collect()
}

fn used_node_ports(store: &Store) -> HashSet<i64> {
    store
        .list("services", None)
        .0
        .iter()
        .flat_map(|s| s["spec"]["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["nodePort"].as_i64())
        .collect()
}

/// Fills what a create needs from the rest of the cluster.
pub fn on_create(store: &Store, rt: &ResourceType, object: &mut Value) -> ApiResult<()> {
    match rt.kind {
        "Service" => {
            let spec = &mut object["spec"];
            if spec["clusterIP"].as_str().is_none_or(str::is_empty) {
                let used = used_cluster_ips(store);
                let base = u32::from(SERVICE_BASE);
                let ip = (10..65534)
                    .map(|i| Ipv4Addr::from(base + i).to_string())
                    .find(|ip| !used.contains(ip))
                    .ok_or_else(|| ApiError::internal("no ClusterIP left in 10.96.0.0/16"))?;
                spec["clusterIP"] = json!(ip);
            }
            spec["clusterIPs"] = json!([spec["clusterIP"]]);
            spec["ipFamilies"] = json!(["IPv4"]);
            spec["ipFamilyPolicy"] = json!("SingleStack");
            if matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
                let mut used = used_node_ports(store);
                for port in spec["ports"].as_array_mut().into_iter().flatten() {
                    match port["nodePort"].as_i64() {
                        Some(p) if used.contains(&p) => {
                            return Err(ApiError::invalid(
                                "Service",
                                "",
                                vec![(
                                    "spec.ports[].nodePort".into(),
                                    format!("Invalid value: {p}: provided port is already allocated"),
                                )],
                            ));
                        }
                        Some(p) => {
                            used.insert(p);
                        }
                        None => {
                            let p = (30000..=32767)
                                .find(|p| !used.contains(p))
                                .ok_or_else(|| ApiError::internal("no NodePort left"))?;
                            used.insert(p);
                            port["nodePort"] = json!(p);
                        }
                    }
                }
                if spec["externalTrafficPolicy"].is_null() {
                    spec["externalTrafficPolicy"] = json!("Cluster");
                }
            }
        }
        "PersistentVolumeClaim" if object["spec"].get("storageClassName").is_none() => {
            let default = store
                .list("storageclasses", None)
                .0
                .into_iter()
                .find(|sc| sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true");
            if let Some(sc) = default {
                object["spec"]["storageClassName"] = sc["metadata"]["name"].clone();
            }
        }
        _ => {}
    }
    Ok(())
}

/// Keeps allocated fields a writer left out (kubectl apply does not send them).
pub fn on_update(rt: &ResourceType, current: &Value, next: &mut Value) {
    if rt.kind == "Service" {
        for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if next["spec"][key].is_null() {
                next["spec"][key] = current["spec"][key].clone();
            }
        }
        let old_ports = current["spec"]["ports"].as_array().cloned().unwrap_or_default();
        for port in next["spec"]["ports"].as_array_mut().into_iter().flatten() {
            if port["nodePort"].is_null()
                && let Some(old) = old_ports.iter().find(|o| o["port"] == port["port"])
            {
                port["nodePort"] = old["nodePort"].clone();
            }
            if port["nodePort"].is_null() {
                port.as_object_mut().map(|m| m.remove("nodePort"));
            }
        }
    }
    if rt.kind == "PersistentVolumeClaim" {
        for key in ["storageClassName", "volumeName"] {
            if next["spec"][key].is_null() && !current["spec"][key].is_null() {
                next["spec"][key] = current["spec"][key].clone();
            }
        }
    }
}

//! `meta.k8s.io/v1 Table` replies, so `kubectl get` shows the usual columns.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// Whether the client asked for a Table (kubectl get does).
pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

type Cell = fn(&Value, i64) -> Value;

struct Column {
    name: &'static str,
    priority: u8,
    cell: Cell,
}

const fn col(name: &'static str, cell: Cell) -> Column {
    Column { name, priority: 0, cell }
}

const fn wide(name: &'static str, cell: Cell) -> Column {
    Column { name, priority: 1, cell }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn name(o: &Value, _: i64) -> Value {
    o["metadata"]["name"].clone()
}

fn age(o: &Value, now: i64) -> Value {
    let created = o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or(now);
    json!(human_duration(now - created))
}

/// Kubernetes' short human duration (`45s`, `3m10s`, `5h`, `2d3h`).
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10800 => format!("{}m", s / 60),
        10800..28800 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        28800..172800 => format!("{}h", s / 3600),
        172800..691200 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn count(v: &Value) -> usize {
    v.as_object().map(|m| m.len()).unwrap_or(0)
}

fn pod_ready(o: &Value, _: i64) -> Value {
    let statuses = o["status"]["containerStatuses"].as_array();
    let total = o["spec"]["containers"].as_array().map(Vec::len).unwrap_or(0);
    let ready = statuses.into_iter().flatten().filter(|c| c["ready"] == true).count();
    json!(format!("{ready}/{total}"))
}

fn pod_status(o: &Value, _: i64) -> Value {
    if !o["metadata"]["deletionTimestamp"].is_null() {
        return json!("Terminating");
    }
    let waiting = ["initContainerStatuses", "containerStatuses"].iter().find_map(|list| {
        o["status"][list]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["state"]["waiting"]["reason"].as_str().filter(|r| *r != "PodInitializing"))
            .map(String::from)
    });
    let terminated = o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| c["state"]["terminated"]["reason"].as_str().map(String::from));
    json!(waiting.or(terminated).unwrap_or_else(|| s(&o["status"]["phase"])))
}

fn pod_restarts(o: &Value, _: i64) -> Value {
    let total: i64 = o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    json!(total)
}

fn ready_of(o: &Value, _: i64) -> Value {
    json!(format!(
        "{}/{}",
        o["status"]["readyReplicas"].as_i64().unwrap_or(0),
        o["spec"]["replicas"].as_i64().unwrap_or(0)
    ))
}

fn images(o: &Value, _: i64) -> Value {
    let list: Vec<String> =
        o["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten().map(|c| s(&c["image"])).collect();
    json!(list.join(","))
}

fn containers(o: &Value, _: i64) -> Value {
    let list: Vec<String> =
        o["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten().map(|c| s(&c["name"])).collect();
    json!(list.join(","))
}

fn selector(o: &Value, _: i64) -> Value {
    let labels: Vec<String> = o["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    json!(labels.join(","))
}

/// A label selector as kubectl prints it (metav1.FormatLabelSelector: the
/// requirements sorted by key, values sorted): `app=redis,tier in (a,b)`,
/// `<none>` when it selects everything.
fn selector_text(selector: &Value) -> String {
    let mut parts: Vec<(String, String)> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={}", s(v))))
        .collect();
    for e in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = s(&e["key"]);
        let mut values: Vec<String> = e["values"].as_array().into_iter().flatten().map(s).collect();
        values.sort();
        let text = match s(&e["operator"]).as_str() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        };
        parts.push((key, text));
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    if parts.is_empty() { "<none>".into() } else { parts.into_iter().map(|p| p.1).collect::<Vec<_>>().join(",") }
}

fn service_ports(o: &Value, _: i64) -> Value {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| match p["nodePort"].as_i64() {
            Some(np) => format!("{}:{np}/{}", p["port"], s(&p["protocol"])),
            None => format!("{}/{}", p["port"], s(&p["protocol"])),
        })
        .collect();
    json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") })
}

fn external_ip(o: &Value, _: i64) -> Value {
    let ingress: Vec<String> =
        o["status"]["loadBalancer"]["ingress"].as_array().into_iter().flatten().map(|i| s(&i["ip"])).collect();
    match (s(&o["spec"]["type"]).as_str(), ingress.is_empty()) {
        ("LoadBalancer", true) => json!("<pending>"),
        (_, false) => json!(ingress.join(",")),
        _ => json!("<none>"),
    }
}

fn endpoints(o: &Value, _: i64) -> Value {
    let mut list = Vec::new();
    for subset in o["subsets"].as_array().into_iter().flatten() {
        for addr in subset["addresses"].as_array().into_iter().flatten() {
            for port in subset["ports"].as_array().into_iter().flatten() {
                list.push(format!("{}:{}", s(&addr["ip"]), port["port"]));
            }
        }
    }
    json!(if list.is_empty() { "<none>".to_string() } else { list.join(",") })
}

fn or_none(v: &Value) -> Value {
    let text = s(v);
    json!(if text.is_empty() { "<none>".to_string() } else { text })
}

fn columns_for(kind: &str) -> Vec<Column> {
    if kind == "Event" {
        return event_columns();
    }
    let mut cols = vec![col("Name", name)];
    cols.extend(match kind {
        "Pod" => vec![
            col("Ready", pod_ready),
            col("Status", pod_status),
            col("Restarts", pod_restarts),
            col("Age", age),
            wide("IP", |o, _| or_none(&o["status"]["podIP"])),
            wide("Node", |o, _| or_none(&o["spec"]["nodeName"])),
        ],
        "Deployment" => vec![
            col("Ready", ready_of),
            col("Up-to-date", |o, _| json!(o["status"]["updatedReplicas"].as_i64().unwrap_or(0))),
            col("Available", |o, _| json!(o["status"]["availableReplicas"].as_i64().unwrap_or(0))),
            col("Age", age),
            wide("Containers", containers),
            wide("Images", images),
            wide("Selector", selector),
        ],
        "ReplicaSet" => vec![
            col("Desired", |o, _| json!(o["spec"]["replicas"].as_i64().unwrap_or(0))),
            col("Current", |o, _| json!(o["status"]["replicas"].as_i64().unwrap_or(0))),
            col("Ready", |o, _| json!(o["status"]["readyReplicas"].as_i64().unwrap_or(0))),
            col("Age", age),
        ],
        "StatefulSet" => vec![col("Ready", ready_of), col("Age", age)],
        "Service" => vec![
            col("Type", |o, _| o["spec"]["type"].clone()),
            col("Cluster-IP", |o, _| or_none(&o["spec"]["clusterIP"])),
            col("External-IP", external_ip),
            col("Port(s)", service_ports),
            col("Age", age),
        ],
        "ConfigMap" => vec![col("Data", |o, _| json!(count(&o["data"]) + count(&o["binaryData"]))), col("Age", age)],
        "Secret" => {
            vec![col("Type", |o, _| o["type"].clone()), col("Data", |o, _| json!(count(&o["data"]))), col("Age", age)]
        }
        "Namespace" => vec![col("Status", |o, _| o["status"]["phase"].clone()), col("Age", age)],
        "Node" => vec![
            col("Status", |o, _| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                json!(if ready { "Ready" } else { "NotReady" })
            }),
            col("Roles", |o, _| {
                let roles: Vec<String> = o["metadata"]["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                    .collect();
                json!(if roles.is_empty() { "<none>".to_string() } else { roles.join(",") })
            }),
            col("Age", age),
            col("Version", |o, _| o["status"]["nodeInfo"]["kubeletVersion"].clone()),
            wide("Internal-IP", |o, _| o["status"]["addresses"][0]["address"].clone()),
            wide("OS-Image", |o, _| o["status"]["nodeInfo"]["osImage"].clone()),
            wide("Kernel-Version", |o, _| o["status"]["nodeInfo"]["kernelVersion"].clone()),
            wide("Container-Runtime", |o, _| o["status"]["nodeInfo"]["containerRuntimeVersion"].clone()),
        ],
        "Endpoints" => vec![col("Endpoints", endpoints), col("Age", age)],
        "PersistentVolume" => vec![
            col("Capacity", |o, _| o["spec"]["capacity"]["storage"].clone()),
            col("Access Modes", |o, _| json!(access_modes(&o["spec"]["accessModes"]))),
            col("Reclaim Policy", |o, _| o["spec"]["persistentVolumeReclaimPolicy"].clone()),
            col("Status", |o, _| o["status"]["phase"].clone()),
            col("Claim", |o, _| {
                let c = &o["spec"]["claimRef"];
                json!(if c.is_null() { String::new() } else { format!("{}/{}", s(&c["namespace"]), s(&c["name"])) })
            }),
            col("StorageClass", |o, _| json!(s(&o["spec"]["storageClassName"]))),
            col("Age", age),
        ],
        "PersistentVolumeClaim" => vec![
            col("Status", |o, _| o["status"]["phase"].clone()),
            col("Volume", |o, _| json!(s(&o["spec"]["volumeName"]))),
            col("Capacity", |o, _| json!(s(&o["status"]["capacity"]["storage"]))),
            col("Access Modes", |o, _| json!(access_modes(&o["status"]["accessModes"]))),
            col("StorageClass", |o, _| json!(s(&o["spec"]["storageClassName"]))),
            col("Age", age),
        ],
        "EndpointSlice" => vec![
            col("AddressType", |o, _| o["addressType"].clone()),
            col("Ports", |o, _| {
                let ports = o["ports"].as_array().cloned().unwrap_or_default();
                let each = ports.iter().map(|p| match (&p["port"], p["name"].as_str()) {
                    (Value::Number(n), _) => n.to_string(),
                    (_, Some(name)) => name.to_string(),
                    _ => "*".to_string(),
                });
                json!(at_most_three(each.collect()))
            }),
            col("Endpoints", |o, _| {
                let endpoints = o["endpoints"].as_array().cloned().unwrap_or_default();
                let addresses = endpoints.iter().flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default());
                json!(at_most_three(addresses.map(|a| s(&a)).collect()))
            }),
            col("Age", age),
        ],
        "HorizontalPodAutoscaler" => vec![
            col("Reference", |o, _| {
                json!(format!(
                    "{}/{}",
                    s(&o["spec"]["scaleTargetRef"]["kind"]),
                    s(&o["spec"]["scaleTargetRef"]["name"])
                ))
            }),
            col("Targets", |o, _| {
                let targets: Vec<String> = o["spec"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let t = &m["resource"]["target"];
                        let name = m["resource"]["name"].as_str().unwrap_or_default();
                        // The current value, as the printer shows it: the status
                        // entry for the same resource, else <unknown>.
                        let current = o["status"]["currentMetrics"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|c| c["resource"]["name"] == name)
                            .map(|c| &c["resource"]["current"]);
                        match t["averageUtilization"].as_i64() {
                            Some(u) => {
                                let now = current.and_then(|c| c["averageUtilization"].as_i64());
                                format!("{name}: {}/{u}%", now.map_or("<unknown>".into(), |n| format!("{n}%")))
                            }
                            None => {
                                let now = current.and_then(|c| c["averageValue"].as_str()).unwrap_or("<unknown>");
                                format!("{name}: {now}/{}", s(&t["averageValue"]))
                            }
                        }
                    })
                    .collect();
                json!(if targets.is_empty() { "<none>".to_string() } else { targets.join(", ") })
            }),
            col("MinPods", |o, _| o["spec"]["minReplicas"].clone()),
            col("MaxPods", |o, _| o["spec"]["maxReplicas"].clone()),
            col("Replicas", |o, _| json!(o["status"]["currentReplicas"].as_i64().unwrap_or(0))),
            col("Age", age),
        ],
        "Lease" => vec![col("Holder", |o, _| o["spec"]["holderIdentity"].clone()), col("Age", age)],
        "NetworkPolicy" => {
            vec![col("Pod-Selector", |o, _| json!(selector_text(&o["spec"]["podSelector"]))), col("Age", age)]
        }
        "StorageClass" => vec![
            col("Provisioner", |o, _| o["provisioner"].clone()),
            col("ReclaimPolicy", |o, _| o["reclaimPolicy"].clone()),
            col("VolumeBindingMode", |o, _| o["volumeBindingMode"].clone()),
            col("Age", age),
        ],
        _ => vec![col("Age", age)],
    });
    cols
}

fn access_modes(modes: &Value) -> String {
    let short: Vec<&str> = modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some(match m.as_str()? {
                "ReadWriteOnce" => "RWO",
                "ReadOnlyMany" => "ROX",
                "ReadWriteMany" => "RWX",
                "ReadWriteOncePod" => "RWOP",
                other => other,
            })
        })
        .collect();
    short.join(",")
}

/// An event's columns, as Kubernetes' printer has them: the name last and
/// only wide; times from the event time when the first/last timestamps are
/// unset (events of the events.k8s.io API, the scheduler's).
fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen", |o, now| event_since(o, &["lastTimestamp", "firstTimestamp", "eventTime"], now)),
        col("Type", |o, _| o["type"].clone()),
        col("Reason", |o, _| o["reason"].clone()),
        col("Object", |o, _| {
            let kind = s(&o["involvedObject"]["kind"]).to_lowercase();
            let name = s(&o["involvedObject"]["name"]);
            json!(if name.is_empty() { kind } else { format!("{kind}/{name}") })
        }),
        wide("Subobject", |o, _| json!(s(&o["involvedObject"]["fieldPath"]))),
        wide("Source", |o, _| {
            let first = |a: &Value, b: &Value| if s(a).is_empty() { s(b) } else { s(a) };
            let component = first(&o["source"]["component"], &o["reportingComponent"]);
            let instance = first(&o["source"]["host"], &o["reportingInstance"]);
            json!(if instance.is_empty() { component } else { format!("{component}, {instance}") })
        }),
        col("Message", |o, _| json!(s(&o["message"]).trim())),
        wide("First Seen", |o, now| event_since(o, &["firstTimestamp", "eventTime"], now)),
        wide("Count", |o, _| json!(o["count"].as_i64().unwrap_or(1))),
        Column { name: "Name", priority: 1, cell: name },
    ]
}

/// Time since the first of `keys` that the event has, as `translateTimestampSince`.
fn event_since(o: &Value, keys: &[&str], now: i64) -> Value {
    let time = keys.iter().find_map(|k| o[*k].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()));
    json!(time.map_or("<unknown>".to_string(), |t| human_duration(now - t.as_second())))
}

/// Up to three items and how many more, as the printers' `listWithMoreString`.
fn at_most_three(items: Vec<String>) -> String {
    match items.len() {
        0 => "<unset>".to_string(),
        1..=3 => items.join(","),
        n => format!("{} + {} more...", items[..3].join(","), n - 3),
    }
}

/// Renders objects as a Table with the kind's columns; each row carries its object.
pub fn to_table(rt: &ResourceType, objects: &[&Value], list_meta: Value) -> Value {
    let now = jiff::Timestamp::now().as_second();
    let cols = columns_for(rt.kind);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": if c.name == "Restarts" { "integer" } else { "string" },
                   "format": if c.name == "Name" { "name" } else { "" }, "description": "", "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| (c.cell)(o, now)).collect();
            json!({"cells": cells, "object": o})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
           "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::by_kind;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(90000), "25h");
        assert_eq!(human_duration(200000), "2d7h");
    }

    #[test]
    fn deployment_columns() {
        let d = json!({"metadata": {"name": "redis-deployment"}, "spec": {"replicas": 1},
                       "status": {"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}});
        let t = to_table(by_kind("apps/v1", "Deployment").unwrap(), &[&d], json!({}));
        assert_eq!(t["rows"][0]["cells"][0], "redis-deployment");
        assert_eq!(t["rows"][0]["cells"][1], "1/1");
        assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
    }
}

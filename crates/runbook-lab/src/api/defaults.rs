//! The defaults the API server fills in on create, kind by kind, as
//! Kubernetes' defaulting functions and admission plugins set them (checked
//! against upstream by the fidelity probes, docs/fidelity.md).

use serde_json::{Value, json};

use super::admission::qos_class;
use super::resources::ResourceType;

/// The finalizer that keeps a claim while a pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer that keeps a volume while a claim is bound to it.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

fn add_finalizer(object: &mut Value, finalizer: &str) {
    let finalizers = &mut object["metadata"]["finalizers"];
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    if let Some(list) = finalizers.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

/// Fills the defaults the API server sets on create, kind by kind.
pub fn apply(rt: &ResourceType, object: &mut Value) {
    match rt.kind {
        "Pod" => {
            default_pod_spec(&mut object["spec"], Target::Pod);
            if object["status"]["phase"].is_null() {
                object["status"] = json!({"phase": "Pending"});
            }
            object["status"]["qosClass"] = json!(qos_class(&object["spec"]));
        }
        "Deployment" => {
            let spec = &mut object["spec"];
            default_field(spec, "replicas", json!(1));
            default_field(spec, "revisionHistoryLimit", json!(10));
            default_field(spec, "progressDeadlineSeconds", json!(600));
            if spec["strategy"]["type"].is_null() {
                spec["strategy"]["type"] = json!("RollingUpdate");
            }
            if spec["strategy"]["type"] == "RollingUpdate" {
                default_field(&mut spec["strategy"]["rollingUpdate"], "maxSurge", json!("25%"));
                default_field(&mut spec["strategy"]["rollingUpdate"], "maxUnavailable", json!("25%"));
            }
            default_pod_spec(&mut spec["template"]["spec"], Target::Template);
        }
        "ReplicaSet" => {
            default_field(&mut object["spec"], "replicas", json!(1));
            default_pod_spec(&mut object["spec"]["template"]["spec"], Target::Template);
        }
        "StatefulSet" => {
            let spec = &mut object["spec"];
            default_field(spec, "replicas", json!(1));
            default_field(spec, "podManagementPolicy", json!("OrderedReady"));
            default_field(spec, "revisionHistoryLimit", json!(10));
            if spec["updateStrategy"].is_null() {
                spec["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
            }
            default_field(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            default_pod_spec(&mut spec["template"]["spec"], Target::Template);
        }
        "Service" => {
            let spec = &mut object["spec"];
            default_field(spec, "type", json!("ClusterIP"));
            default_field(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" {
                default_field(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            for port in spec["ports"].as_array_mut().into_iter().flatten() {
                default_field(port, "protocol", json!("TCP"));
                if port["targetPort"].is_null() {
                    port["targetPort"] = port["port"].clone();
                }
            }
            if object["status"].is_null() {
                object["status"] = json!({"loadBalancer": {}});
            }
        }
        "Secret" => {
            if object["type"].as_str().is_none_or(str::is_empty) {
                object["type"] = json!("Opaque");
            }
            fold_string_data(object);
        }
        "Namespace" => {
            let name = object["metadata"]["name"].clone();
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            default_field(&mut object["spec"], "finalizers", json!(["kubernetes"]));
            object["status"] = json!({"phase": "Active"});
        }
        "PersistentVolume" => {
            add_finalizer(object, PV_PROTECTION);
            default_field(&mut object["spec"], "persistentVolumeReclaimPolicy", json!("Retain"));
            default_field(&mut object["spec"], "volumeMode", json!("Filesystem"));
            if object["status"]["phase"].is_null() {
                object["status"] = json!({"phase": "Pending"});
            }
        }
        "NetworkPolicy" => {
            // pkg/apis/networking/v1/defaults.go: Ingress always, Egress when
            // there are egress rules; a port's protocol is TCP.
            let spec = &mut object["spec"];
            if spec["policyTypes"].as_array().is_none_or(Vec::is_empty) {
                let egress = spec["egress"].as_array().is_some_and(|e| !e.is_empty());
                spec["policyTypes"] = if egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) };
            }
            for direction in ["ingress", "egress"] {
                // get_mut, not indexing: indexing would add `egress: null`.
                for rule in spec.get_mut(direction).and_then(Value::as_array_mut).into_iter().flatten() {
                    for port in rule["ports"].as_array_mut().into_iter().flatten() {
                        default_field(port, "protocol", json!("TCP"));
                    }
                }
            }
        }
        "HorizontalPodAutoscaler" => {
            default_field(&mut object["spec"], "minReplicas", json!(1));
        }
        "PersistentVolumeClaim" => {
            // StorageObjectInUseProtection: a claim in use by a pod is not
            // removed until the pod is (controllers::volumes lifts it).
            add_finalizer(object, PVC_PROTECTION);
            default_field(&mut object["spec"], "volumeMode", json!("Filesystem"));
            if object["status"]["phase"].is_null() {
                object["status"] = json!({"phase": "Pending"});
            }
        }
        _ => {}
    }
}

/// Folds a Secret's write-only `stringData` into base64 `data`, as the API does.
pub fn fold_string_data(object: &mut Value) {
    use base64::Engine;
    if let Some(Value::Object(string_data)) = object.as_object_mut().and_then(|o| o.remove("stringData")) {
        for (k, v) in string_data {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
            object["data"][k] = json!(encoded);
        }
    }
}

fn default_field(object: &mut Value, key: &str, value: Value) {
    if object.get(key).is_none_or(Value::is_null) {
        object[key] = value;
    }
}

/// Whether a pod spec belongs to a Pod or to a workload's template: the
/// admission plugins (service account, default tolerations, priority) and
/// requests-from-limits touch Pods only.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Pod,
    Template,
}

fn default_pod_spec(spec: &mut Value, target: Target) {
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "securityContext", json!({}));
    if target == Target::Pod {
        default_field(spec, "enableServiceLinks", json!(true));
        default_field(spec, "priority", json!(0));
        default_field(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        default_field(spec, "serviceAccountName", json!("default"));
        let account = spec["serviceAccountName"].clone();
        default_field(spec, "serviceAccount", account);
        default_tolerations(spec);
    }
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            default_container(c, target);
        }
    }
}

fn default_container(c: &mut Value, target: Target) {
    default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(c, "terminationMessagePolicy", json!("File"));
    let image = c["image"].as_str().unwrap_or_default();
    let tag = image.rsplit('/').next().and_then(|last| last.split_once(':')).map(|(_, t)| t);
    let pull = if tag.is_none_or(|t| t == "latest") { "Always" } else { "IfNotPresent" };
    default_field(c, "imagePullPolicy", json!(pull));
    default_field(c, "resources", json!({}));
    if target == Target::Pod {
        // Requests default to limits where only limits are given.
        let limits = c["resources"]["limits"].clone();
        for (name, limit) in limits.as_object().into_iter().flatten() {
            if c["resources"]["requests"][name].is_null() {
                c["resources"]["requests"][name] = limit.clone();
            }
        }
    }
    for port in c["ports"].as_array_mut().into_iter().flatten() {
        default_field(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if c[probe].is_object() {
            default_field(&mut c[probe], "timeoutSeconds", json!(1));
            default_field(&mut c[probe], "periodSeconds", json!(10));
            default_field(&mut c[probe], "successThreshold", json!(1));
            default_field(&mut c[probe], "failureThreshold", json!(3));
        }
    }
}

/// The DefaultTolerationSeconds admission plugin: a pod tolerates a
/// not-ready or unreachable node for 300 s unless it says otherwise.
fn default_tolerations(spec: &mut Value) {
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerates = spec["tolerations"].as_array().is_some_and(|list| {
            list.iter().any(|t| t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
        });
        if !tolerates {
            if !spec["tolerations"].is_array() {
                spec["tolerations"] = json!([]);
            }
            if let Some(list) = spec["tolerations"].as_array_mut() {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

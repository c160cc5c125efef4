//! What an object does, read from its spec: which program a container runs,
//! which pods a Service selects, which workload an HPA scales, which
//! ConfigMaps a pod template mounts. Pure functions over the objects' JSON,
//! so `discover` can be tested without a cluster.

use crate::scenario::Program;
use serde_json::Value;

/// Whether a container (a pod spec's `containers[]` entry) runs `program`,
/// told by its command and arguments, its image and its ports: Sentinel is
/// `redis-sentinel`, `redis-server … --sentinel`, a `*sentinel*` image or
/// port 26379; Redis is `redis-server` or a Redis image (`redis`,
/// `bitnami/redis`, `redis-stack-server`, `valkey`) that is not a Sentinel.
pub fn container_runs(container: &Value, program: Program) -> bool {
    let words: Vec<String> = ["command", "args"]
        .iter()
        .flat_map(|k| container[*k].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .map(str::to_lowercase)
        .collect();
    let text = words.join(" ");
    let image = image_name(container["image"].as_str().unwrap_or_default());
    let ports: Vec<u64> =
        container["ports"].as_array().into_iter().flatten().filter_map(|p| p["containerPort"].as_u64()).collect();
    let sentinel = text.contains("sentinel") || image.contains("sentinel") || ports.contains(&26379);
    let redis = text.contains("redis-server") || text.contains("redis-sentinel") || redis_image(&image);
    match program {
        Program::RedisSentinel => sentinel && (redis || text.contains("redis")),
        Program::RedisServer => redis && !sentinel,
    }
}

/// An image's name without registry, path, tag or digest
/// (`docker.io/bitnami/redis:7.2@sha256:…` → `redis`), lower-cased.
fn image_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or_default();
    last.split(['@', ':']).next().unwrap_or_default().to_lowercase()
}

/// Images that run a Redis server; not the tools around one (exporters,
/// RedisInsight, redis-commander).
fn redis_image(name: &str) -> bool {
    (name.starts_with("redis") || name.starts_with("valkey") || name == "keydb")
        && !["exporter", "insight", "commander", "cli"].iter().any(|tool| name.contains(tool))
}

/// The pod spec of a workload (`spec.template.spec`) or of a pod (`spec`).
pub fn pod_spec(object: &Value) -> &Value {
    match object["kind"].as_str() {
        Some("Pod") => &object["spec"],
        _ => &object["spec"]["template"]["spec"],
    }
}

/// The labels a workload's pods get (`spec.template.metadata.labels`), or a
/// pod's own.
pub fn pod_labels(object: &Value) -> &Value {
    match object["kind"].as_str() {
        Some("Pod") => &object["metadata"]["labels"],
        _ => &object["spec"]["template"]["metadata"]["labels"],
    }
}

/// Whether a workload's pods run `program` in one of their containers.
pub fn workload_runs(object: &Value, program: Program) -> bool {
    containers(object).any(|c| container_runs(c, program))
}

/// The (regular) containers of a workload's pods.
pub fn containers(object: &Value) -> impl Iterator<Item = &Value> {
    pod_spec(object)["containers"].as_array().into_iter().flatten()
}

/// Whether a Service selects pods with these labels: a selector that is not
/// empty (an empty one selects nothing: it is for manually managed
/// endpoints) and whose every label the pods carry.
pub fn service_selects(service: &Value, labels: &Value) -> bool {
    let Some(selector) = service["spec"]["selector"].as_object().filter(|s| !s.is_empty()) else {
        return false;
    };
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A Service's type (`ClusterIP` when it does not say, as the API defaults it).
pub fn service_type(service: &Value) -> &str {
    service["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

/// Whether an HPA scales the workload `kind`/`name`.
pub fn hpa_scales(hpa: &Value, kind: &str, name: &str) -> bool {
    let target = &hpa["spec"]["scaleTargetRef"];
    target["kind"].as_str() == Some(kind) && target["name"].as_str() == Some(name)
}

/// The ConfigMaps a workload's pods mount as volumes (directly or in a
/// projected volume), in the order the pod spec lists them.
pub fn mounted_config_maps(object: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for volume in pod_spec(object)["volumes"].as_array().into_iter().flatten() {
        let direct = volume["configMap"]["name"].as_str().into_iter();
        let projected = volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["configMap"]["name"].as_str());
        for name in direct.chain(projected) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(image: &str, command: &[&str], args: &[&str], ports: &[u16]) -> Value {
        let ports: Vec<Value> = ports.iter().map(|p| json!({"containerPort": p})).collect();
        json!({"name": "c", "image": image, "command": command, "args": args, "ports": ports})
    }

    #[test]
    fn redis_and_sentinel_are_told_apart_by_what_the_container_runs() {
        let server = Program::RedisServer;
        let sentinel = Program::RedisSentinel;
        let cases = [
            (container("redis:7.2", &[], &[], &[6379]), true, false),
            (container("docker.io/bitnami/redis:7.2@sha256:ab", &[], &[], &[]), true, false),
            (container("redis:7", &["redis-server", "/etc/redis/redis.conf"], &[], &[]), true, false),
            (container("redis:7", &["redis-sentinel"], &["/etc/redis/sentinel.conf"], &[5000]), false, true),
            (container("redis:7", &["redis-server"], &["/data/sentinel.conf", "--sentinel"], &[]), false, true),
            (container("bitnami/redis-sentinel:7", &[], &[], &[]), false, true),
            (container("redis:7", &[], &[], &[26379]), false, true),
            (container("busybox", &["sh", "-c", "exec redis-server /conf/redis.conf"], &[], &[]), true, false),
            (container("oliver006/redis_exporter:v1", &[], &[], &[9121]), false, false),
            (container("redislabs/redisinsight:2", &[], &[], &[]), false, false),
            (container("runbook/counter-service:0.1.0", &[], &[], &[8080]), false, false),
            (container("valkey/valkey:8", &[], &[], &[]), true, false),
        ];
        for (c, is_server, is_sentinel) in cases {
            assert_eq!(container_runs(&c, server), is_server, "redis-server? {c}");
            assert_eq!(container_runs(&c, sentinel), is_sentinel, "redis-sentinel? {c}");
        }
    }

    #[test]
    fn services_select_by_every_label_of_a_non_empty_selector() {
        let labels = json!({"app": "go-lang-app", "tier": "web"});
        let svc = |selector: Value| json!({"spec": {"selector": selector}});
        assert!(service_selects(&svc(json!({"app": "go-lang-app"})), &labels));
        assert!(!service_selects(&svc(json!({"app": "go-lang-app", "tier": "db"})), &labels));
        assert!(!service_selects(&svc(json!({})), &labels), "an empty selector selects nothing");
        assert!(!service_selects(&json!({"spec": {}}), &labels));
        assert_eq!(service_type(&json!({"spec": {}})), "ClusterIP");
    }

    #[test]
    fn a_workload_s_mounted_config_maps_and_its_hpa() {
        let d = json!({"kind": "Deployment", "spec": {"template": {"spec": {"volumes": [
            {"name": "a", "configMap": {"name": "redis-config"}},
            {"name": "b", "emptyDir": {}},
            {"name": "c", "projected": {"sources": [{"configMap": {"name": "extra"}}, {"secret": {"name": "s"}}]}},
            {"name": "d", "configMap": {"name": "redis-config"}}
        ]}}}});
        assert_eq!(mounted_config_maps(&d), ["redis-config", "extra"]);
        let hpa = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "redis"}}});
        assert!(hpa_scales(&hpa, "Deployment", "redis"));
        assert!(!hpa_scales(&hpa, "StatefulSet", "redis"));
        assert!(!hpa_scales(&hpa, "Deployment", "go-lang-app"));
    }
}

//! Stateful and networked workloads on the lab: StatefulSets with ordered
//! pods, stable names and storage; static PV binding; Services, DNS and
//! LoadBalancers.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::TestLab;
use crate::common::requires;

const HEADLESS_STS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: redis}
spec:
  clusterIP: None
  selector: {app: redis}
  ports: [{name: redis, port: 6379}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis}
spec:
  serviceName: redis
  replicas: 3
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      containers:
      - name: redis
        image: redis:7.4.1-alpine
        args: ["--appendonly", "yes"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 64Mi}}
"#;

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

#[tokio::test]
async fn statefulset_pods_come_up_in_order_resolve_each_other_and_keep_their_data() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let (_, mut changes) = t.lab.store.subscribe(t.lab.store.current_rv()).unwrap();
    t.kubectl_stdin(&["apply", "-f", "-"], HEADLESS_STS).await;
    t.kubectl(&["rollout", "status", "statefulset/redis", "--timeout=60s"]).await;

    // Order: each pod is created only after the previous one is Ready.
    let mut order = Vec::new();
    while let Ok(change) = changes.try_recv() {
        if change.resource != "pods" {
            continue;
        }
        let name = change.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if change.kind == runbook::lab::api::store::ChangeType::Added {
            order.push(format!("created {name}"));
        } else if ready(&change.object) && !order.contains(&format!("ready {name}")) {
            order.push(format!("ready {name}"));
        }
    }
    assert_eq!(
        order,
        ["created redis-0", "ready redis-0", "created redis-1", "ready redis-1", "created redis-2", "ready redis-2"]
    );

    // Stable names, short and full, and TCP between pods.
    let ip1 = t.kubectl(&["get", "pod", "redis-1", "-o", "jsonpath={.status.podIP}"]).await;
    for name in ["redis-1.redis", "redis-1.redis.default.svc.cluster.local"] {
        let hosts = t.kubectl(&["exec", "redis-0", "--", "getent", "hosts", name]).await;
        assert_eq!(hosts.split_whitespace().next(), Some(ip1.as_str()), "{name}: {hosts}");
    }
    assert_eq!(t.kubectl(&["exec", "redis-2", "--", "redis-cli", "-h", "redis-0.redis", "ping"]).await.trim(), "PONG");

    // Pod 1 comes back under its name, with its claim and what it wrote.
    t.kubectl(&["exec", "redis-1", "--", "redis-cli", "set", "survivor", "still-here"]).await;
    let claim_uid = t.kubectl(&["get", "pvc", "data-redis-1", "-o", "jsonpath={.metadata.uid}"]).await;
    let pod_uid = t.kubectl(&["get", "pod", "redis-1", "-o", "jsonpath={.metadata.uid}"]).await;
    t.kubectl(&["delete", "pod", "redis-1"]).await;
    let mut new_uid = String::new();
    for _ in 0..100 {
        new_uid = t.kubectl(&["get", "pod", "redis-1", "-o", "jsonpath={.metadata.uid}", "--ignore-not-found"]).await;
        if !new_uid.is_empty() && new_uid != pod_uid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!new_uid.is_empty() && new_uid != pod_uid, "redis-1 was recreated");
    t.kubectl(&["wait", "--for=condition=Ready", "pod/redis-1", "--timeout=30s"]).await;
    let claim = t
        .kubectl(&[
            "get",
            "pod",
            "redis-1",
            "-o",
            "jsonpath={.spec.volumes[?(@.name==\"data\")].persistentVolumeClaim.claimName}",
        ])
        .await;
    assert_eq!(claim, "data-redis-1");
    assert_eq!(
        t.kubectl(&["get", "pvc", "data-redis-1", "-o", "jsonpath={.metadata.uid}"]).await,
        claim_uid,
        "same claim"
    );
    assert_eq!(t.kubectl(&["exec", "redis-1", "--", "redis-cli", "get", "survivor"]).await.trim(), "still-here");
}

#[tokio::test]
async fn six_static_host_path_volumes_bind_to_six_claims() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let mut manifest = String::new();
    for i in 1..=6 {
        manifest.push_str(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: redis0{i}}}\nspec:\n  capacity: {{storage: 1Gi}}\n  \
             accessModes: [ReadWriteOnce]\n  hostPath: {{path: /redis0{i}}}\n---\n"
        ));
    }
    manifest.push_str(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: store}\nspec:\n  replicas: 6\n  podManagementPolicy: Parallel\n  \
         serviceName: store\n  selector: {matchLabels: {app: store}}\n  template:\n    metadata: {labels: {app: store}}\n    spec:\n      \
         containers: [{name: c, image: busybox, command: [sleep, '3600'], volumeMounts: [{name: data, mountPath: /data}]}]\n  \
         volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], storageClassName: '', resources: {requests: {storage: 1Gi}}}\n",
    );
    t.kubectl_stdin(&["apply", "-f", "-"], &manifest).await;
    t.kubectl(&["rollout", "status", "statefulset/store", "--timeout=60s"]).await;
    let pvs = t.kubectl(&["get", "pv", "--no-headers"]).await;
    let rows: Vec<Vec<&str>> = pvs.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 6, "{pvs}");
    for row in &rows {
        assert!(row[0].starts_with("redis0"), "{pvs}");
        assert_eq!(row[4], "Bound", "{pvs}");
        assert!(row[5].starts_with("default/data-store-"), "{pvs}");
    }
    let pvcs = t.kubectl(&["get", "pvc", "--no-headers"]).await;
    assert_eq!(pvcs.lines().filter(|l| l.split_whitespace().nth(1) == Some("Bound")).count(), 6, "{pvcs}");
    // The hostPath lives under the lab's state dir, not at the host's root.
    let volume = t.kubectl(&["get", "pvc", "data-store-0", "-o", "jsonpath={.spec.volumeName}"]).await;
    t.kubectl(&["exec", "store-0", "--", "touch", "/data/written-by-store-0"]).await;
    assert!(t.dir.path().join(format!("state/hostpath/{volume}/written-by-store-0")).exists());
    // (A real cluster on this machine, such as the upstream test bed, may
    // have made /redis01 itself: what matters is that the pod's file is not there.)
    let at_root = std::path::Path::new("/").join(&volume).join("written-by-store-0");
    assert!(!at_root.exists(), "nothing written at the host's root");
}

#[tokio::test]
async fn a_cluster_ip_service_reaches_ready_pods_only() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    for name in ["a", "b"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("backend-{name}"), "labels": {"app": "backend"}},
            "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine",
                "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1}}]}});
        t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    }
    let client = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine"}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &client.to_string()).await;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
        "spec": {"selector": {"app": "backend"}, "ports": [{"port": 6379}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &svc.to_string()).await;
    t.kubectl(&["wait", "--for=condition=Ready", "pod/client", "--timeout=30s"]).await;
    for name in ["a", "b"] {
        let pod = format!("backend-{name}");
        t.kubectl(&["wait", "--for=jsonpath={.status.phase}=Running", &format!("pod/{pod}"), "--timeout=30s"]).await;
        t.kubectl(&["exec", &pod, "--", "redis-cli", "set", "who", &pod]).await;
        t.kubectl(&["exec", &pod, "--", "touch", "/tmp/ready"]).await;
        t.kubectl(&["wait", "--for=condition=Ready", &format!("pod/{pod}"), "--timeout=30s"]).await;
    }
    let ask = || {
        t.kubectl(&["exec", "client", "--", "sh", "-c", "for i in 1 2 3 4 5 6; do redis-cli -h backend get who; done"])
    };
    let mut seen: Vec<String> = ask().await.lines().map(String::from).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["backend-a", "backend-b"], "both ready pods serve the Service by name");

    t.kubectl(&["exec", "backend-b", "--", "rm", "/tmp/ready"]).await;
    t.kubectl(&["wait", "--for=condition=Ready=False", "pod/backend-b", "--timeout=30s"]).await;
    for _ in 0..50 {
        let ep = t
            .kubectl(&["get", "endpoints", "backend", "-o", "jsonpath={.subsets[0].addresses[*].targetRef.name}"])
            .await;
        if ep == "backend-a" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answers: Vec<String> = ask().await.lines().map(String::from).collect();
    assert_eq!(answers, vec!["backend-a"; 6], "a pod that is not Ready gets no traffic");
}

#[tokio::test]
async fn a_load_balancer_answers_from_the_host_on_its_status_address() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let manifest = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lb-backend", "labels": {"app": "lb"}},
         "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "lb"}, "ports": [{"port": 6379}]}}
    ]});
    t.kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string()).await;
    t.kubectl(&["wait", "--for=condition=Ready", "pod/lb-backend", "--timeout=30s"]).await;
    let ip = t.kubectl(&["get", "svc", "front", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]).await;
    let port =
        t.kubectl(&["get", "svc", "front", "-o", "jsonpath={.status.loadBalancer.ingress[0].ports[0].port}"]).await;
    assert!(ip.starts_with("127."), "a loopback address: {ip}");
    let addr = format!("{ip}:{port}");
    let mut pong = [0u8; 7];
    for _ in 0..50 {
        if let Ok(mut conn) = tokio::net::TcpStream::connect(&addr).await {
            conn.write_all(b"PING\r\n").await.unwrap();
            if conn.read_exact(&mut pong).await.is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(&pong, b"+PONG\r\n", "the LoadBalancer at {addr} answers from the host");
    let TestLab { lab, dir: _dir, .. } = t;
    lab.shutdown().await;
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "the listener is gone with the lab");
}

#[tokio::test]
async fn a_claim_in_use_stays_until_its_pod_is_gone_and_then_takes_its_data() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let manifest = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  \
                    accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 64Mi}}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: user}\nspec:\n  terminationGracePeriodSeconds: 5\n  \
                    containers: [{name: c, image: busybox, command: [sleep, '3600'], \
                    volumeMounts: [{name: data, mountPath: /data}]}]\n  \
                    volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]\n";
    t.kubectl_stdin(&["apply", "-f", "-"], manifest).await;
    t.kubectl(&["wait", "--for=condition=Ready", "pod/user", "--timeout=30s"]).await;
    let finalizers = t.kubectl(&["get", "pvc", "data", "-o", "jsonpath={.metadata.finalizers}"]).await;
    assert_eq!(finalizers, r#"["kubernetes.io/pvc-protection"]"#);
    let volume = t.kubectl(&["get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}"]).await;
    let pv_finalizers = t.kubectl(&["get", "pv", &volume, "-o", "jsonpath={.metadata.finalizers}"]).await;
    assert_eq!(pv_finalizers, r#"["kubernetes.io/pv-protection"]"#);
    t.kubectl(&["exec", "user", "--", "touch", "/data/kept"]).await;
    let data = t.dir.path().join(format!("state/hostpath/runbook-provisioned/{volume}"));
    assert!(data.join("kept").exists(), "{}", data.display());

    // Deleting the claim under a running pod only marks it (kubectl shows Terminating).
    t.kubectl(&["delete", "pvc", "data", "--wait=false"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let claim = t.api_get("persistentvolumeclaims", "default", "data").await.expect("kept while in use");
    assert!(!claim["metadata"]["deletionTimestamp"].is_null(), "{claim}");
    assert!(data.join("kept").exists(), "the data stays under the running pod");

    // Once the pod is gone, the claim goes, then its volume and the volume's data.
    t.kubectl(&["delete", "pod", "user", "--timeout=30s"]).await;
    t.kubectl(&["wait", "--for=delete", "pvc/data", "--timeout=30s"]).await;
    t.kubectl(&["wait", "--for=delete", &format!("pv/{volume}"), "--timeout=30s"]).await;
    for _ in 0..50 {
        if !data.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!data.exists(), "the provisioned data is removed with its volume: {}", data.display());
}

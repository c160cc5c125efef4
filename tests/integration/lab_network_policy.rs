//! NetworkPolicy on the lab, enforced as a network plugin enforces it: a
//! selected pod accepts (sends) only what a policy allows, DNS included, and
//! everything flows again once the policy is gone. Real Redis pods, real
//! connections between them.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::TestLab;
use crate::common::requires;

/// Runs Redis pods `name` labelled `app=redis` and `role=name` and waits
/// until all are Ready; their IPs, in order.
pub async fn redis_pods(t: &TestLab, names: &[&str]) -> Vec<String> {
    for name in names {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "redis", "role": name}},
            "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine",
                "ports": [{"name": "redis", "containerPort": 6379}]}]}});
        t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    }
    t.kubectl(&["wait", "pod", "--all", "--for=condition=Ready", "--timeout=60s"]).await;
    let mut ips = Vec::new();
    for name in names {
        ips.push(t.kubectl(&["get", "pod", name, "-o", "jsonpath={.status.podIP}"]).await);
    }
    ips
}

/// Whether `from` gets PONG from the Redis at `ip` within a second.
pub async fn reaches(t: &TestLab, from: &str, ip: &str) -> bool {
    let out = t.kubectl_output(&["exec", from, "--", "timeout", "1", "redis-cli", "-h", ip, "ping"], None).await;
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

/// Whether `from` can resolve `name` through the cluster DNS.
async fn resolves(t: &TestLab, from: &str, name: &str) -> bool {
    t.kubectl_output(&["exec", from, "--", "timeout", "2", "nslookup", name], None).await.status.success()
}

/// Waits (at most 10 s: rules are loaded a moment after the change, as a
/// network plugin's are) until `check` gives `expected`.
pub async fn becomes(what: &str, expected: bool, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while check().await != expected {
        assert!(Instant::now() < deadline, "{what}: still {} after 10 s", !expected);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn policy_manifest(name: &str, spec: serde_json::Value) -> String {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

#[tokio::test]
async fn an_ingress_policy_lets_in_only_what_it_allows_until_it_is_deleted() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let ips = redis_pods(&t, &["db", "frontend", "other"]).await;
    let (db, frontend) = (&ips[0], &ips[1]);
    assert!(reaches(&t, "other", db).await, "before any policy, every pod reaches every pod");
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"selector": {"role": "db"}, "ports": [{"port": 6379}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &service.to_string()).await;
    let db_service = "db.default.svc.cluster.local";
    becomes("other -> the db Service", true, async || reaches(&t, "other", db_service).await).await;

    let policy = policy_manifest(
        "db-from-frontend",
        json!({"podSelector": {"matchLabels": {"role": "db"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
                            "ports": [{"port": "redis"}]}]}),
    );
    // One connection, kept open, pinging five times a second for 8 s; the
    // policy arrives 2 s in.
    let ping_forever = ["exec", "other", "--", "timeout", "8", "redis-cli", "-h", db, "-r", "40", "-i", "0.2", "ping"];
    let pinging = t.kubectl_output(&ping_forever, None);
    let cutting = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        t.kubectl_stdin(&["apply", "-f", "-"], &policy).await;
        becomes("other -> db", false, async || reaches(&t, "other", db).await).await;
    };
    let (pinged, ()) = tokio::join!(pinging, cutting);
    let pongs = String::from_utf8_lossy(&pinged.stdout).matches("PONG").count();
    assert!((3..30).contains(&pongs), "the connection open before the policy is cut too: {pongs} PONGs of 40");
    assert!(reaches(&t, "frontend", db).await, "the frontend is allowed in, on the named port");
    // Through the Service too: a policy judges the pod behind it.
    assert!(reaches(&t, "frontend", db_service).await);
    assert!(!reaches(&t, "other", db_service).await, "the Service does not get around the policy");
    // Only db is isolated, and only for ingress: it still reaches others,
    // and others still reach each other.
    assert!(reaches(&t, "db", frontend).await);
    assert!(reaches(&t, "other", frontend).await);
    let table = t.kubectl(&["get", "netpol"]).await;
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "POD-SELECTOR", "AGE"], "{table}");
    assert_eq!(rows[1][..2], ["db-from-frontend", "role=db"], "{table}");
    let stored = t.kubectl(&["get", "netpol", "db-from-frontend", "-o", "jsonpath={.spec.policyTypes}"]).await;
    assert_eq!(stored, r#"["Ingress"]"#, "policyTypes defaulted as the API server does");

    t.kubectl(&["delete", "netpol", "db-from-frontend"]).await;
    becomes("other -> db once the policy is gone", true, async || reaches(&t, "other", db).await).await;
}

#[tokio::test]
async fn default_deny_egress_cuts_dns_until_a_rule_allows_the_dns_pods() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let ips = redis_pods(&t, &["client", "server"]).await;
    let server = &ips[1];
    let name = format!("{}.default.pod.cluster.local", server.replace('.', "-"));
    assert!(resolves(&t, "client", &name).await);

    let deny = policy_manifest(
        "deny-egress",
        json!({"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"]}),
    );
    t.kubectl_stdin(&["apply", "-f", "-"], &deny).await;
    becomes("client -> server", false, async || reaches(&t, "client", server).await).await;
    assert!(!resolves(&t, "client", &name).await, "DNS is egress too: a cluster's DNS runs in pods");
    assert!(reaches(&t, "server", &ips[0]).await, "the client still accepts connections");

    // The usual companion policy: DNS to kube-dns in kube-system.
    let dns = policy_manifest(
        "allow-dns",
        json!({"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
    );
    t.kubectl_stdin(&["apply", "-f", "-"], &dns).await;
    becomes("client resolves names", true, async || resolves(&t, "client", &name).await).await;
    assert!(!reaches(&t, "client", server).await, "DNS only: the server stays out of reach");
}

//! What a lab pod can see and reach: its own processes only (a PID namespace
//! per pod), and nothing it starts outlives it.

use serde_json::json;

use crate::common::requires;
use crate::common::{TestLab, kubectl_until};

/// Applies a Redis pod `name` and waits until it is Ready.
async fn redis_pod(t: &TestLab, name: &str) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine",
            "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 1}}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    t.kubectl(&["wait", &format!("pod/{name}"), "--for=condition=Ready", "--timeout=60s"]).await;
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

#[tokio::test]
async fn a_pod_sees_only_its_own_processes() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    redis_pod(&t, "a").await;
    redis_pod(&t, "b").await;
    let listing = t.kubectl(&["exec", "a", "--", "ps", "-o", "pid,comm"]).await;
    let rows: Vec<Vec<&str>> = listing.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["1", "pause"], "{listing}");
    let mut names: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    names.sort();
    // Pod b's Redis, the lab and the host's init are all out of sight.
    assert_eq!(names, ["pause", "ps", "redis-server"], "{listing}");
}

#[tokio::test]
async fn kill_all_in_a_pod_harms_nothing_outside_it() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    redis_pod(&t, "a").await;
    redis_pod(&t, "b").await;
    let mut bystander = tokio::process::Command::new("sleep").arg("120").kill_on_drop(true).spawn().unwrap();
    // The shell kills itself too, so kubectl reports a failure; that is expected.
    t.kubectl_output(&["exec", "a", "--", "sh", "-c", "kill -9 -1"], None).await;
    assert!(bystander.try_wait().unwrap().is_none(), "a host process was killed from inside a pod");
    assert_eq!(t.kubectl(&["exec", "b", "--", "redis-cli", "ping"]).await.trim(), "PONG", "the other pod");
    let restarts = "jsonpath={.status.containerStatuses[0].restartCount}";
    let seen = kubectl_until(&t, &["get", "pod", "a", "-o", restarts], 10, |o| o != "0").await;
    assert_eq!(seen, "1", "pod a's Redis was killed and restarted by the kubelet");
    t.kubectl(&["wait", "pod/a", "--for=condition=Ready", "--timeout=60s"]).await;
    assert_eq!(t.kubectl(&["exec", "a", "--", "redis-cli", "ping"]).await.trim(), "PONG");
    let _ = bystander.kill().await;
}

#[tokio::test]
async fn a_daemon_started_in_a_pod_ends_with_the_pod() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    redis_pod(&t, "a").await;
    let ns = t.kubectl(&["exec", "a", "--", "readlink", "/proc/1/ns/pid"]).await.trim().to_string();
    assert!(ns.starts_with("pid:["), "{ns}");
    t.kubectl(&["exec", "a", "--", "redis-server", "--port", "7000", "--daemonize", "yes"]).await;
    assert_eq!(t.kubectl(&["exec", "a", "--", "redis-cli", "-p", "7000", "ping"]).await.trim(), "PONG");
    let daemons = crate::common::host_pids_in("pid", &ns).into_iter().filter(|p| comm(*p) == "redis-server").count();
    assert_eq!(daemons, 2, "the pod's Redis and the daemon, seen from the host in the pod's namespace");

    t.kubectl(&["delete", "pod", "a", "--wait=true", "--timeout=60s"]).await;
    let mut left = crate::common::host_pids_in("pid", &ns);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = crate::common::host_pids_in("pid", &ns);
    }
    let described: Vec<String> = left.iter().map(|p| format!("{p} {}", comm(*p))).collect();
    assert!(left.is_empty(), "processes of the deleted pod survive: {described:?}");
}

#[tokio::test]
async fn a_redis_filled_past_its_memory_limit_is_oom_killed_and_restarted() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "small"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine",
            "resources": {"limits": {"memory": "20Mi", "cpu": "250m"}}}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    t.kubectl(&["wait", "pod/small", "--for=condition=Ready", "--timeout=60s"]).await;
    // The limits as the kernel holds them, read inside the pod's cgroup.
    let fill = "for i=1,400000 do redis.call('set','k'..i,string.rep('x',100)) end return 'filled'";
    let out = t.kubectl_output(&["exec", "small", "--", "redis-cli", "eval", fill, "0"], None).await;
    assert!(!out.status.success(), "the fill cannot finish: {}", String::from_utf8_lossy(&out.stdout));
    let last = "jsonpath={.status.containerStatuses[0].lastState.terminated.reason} \
                {.status.containerStatuses[0].lastState.terminated.exitCode} \
                {.status.containerStatuses[0].restartCount}";
    let seen = kubectl_until(&t, &["get", "pod", "small", "-o", last], 10, |o| o.split_whitespace().count() == 3).await;
    assert_eq!(seen, "OOMKilled 137 1");
    t.kubectl(&["wait", "pod/small", "--for=condition=Ready", "--timeout=60s"]).await;
    assert_eq!(t.kubectl(&["exec", "small", "--", "redis-cli", "dbsize"]).await.trim(), "0", "a new, empty Redis");
}

#[tokio::test]
async fn limits_and_requests_become_the_containers_cgroup_settings() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sized"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
            "resources": {"requests": {"cpu": "250m", "memory": "16Mi"}, "limits": {"cpu": "500m", "memory": "32Mi"}}}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    t.kubectl(&["wait", "pod/sized", "--for=condition=Ready", "--timeout=60s"]).await;
    let pid = t.kubectl(&["get", "pod", "sized", "-o", "jsonpath={.status.containerStatuses[0].containerID}"]).await;
    let pid = pid.trim_start_matches("runbook://").to_string();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let dir_of = |controller: &str| -> String {
        let line = cgroups.lines().find(|l| l.split(':').nth(1) == Some(controller)).unwrap();
        let path = line.splitn(3, ':').nth(2).unwrap();
        assert!(path.ends_with("/c") && path.contains("/runbook-lab-"), "{path}");
        format!("/sys/fs/cgroup/{controller}{path}")
    };
    if !std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        eprintln!("cgroup v1 controllers not mounted here; the v1 settings are not checked");
        return;
    }
    let read =
        |controller: &str, file: &str| std::fs::read_to_string(format!("{}/{file}", dir_of(controller))).unwrap();
    assert_eq!(read("memory", "memory.limit_in_bytes").trim(), (32 * 1024 * 1024).to_string());
    assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000", "500m of a 100 ms period");
    assert_eq!(read("cpu", "cpu.shares").trim(), "256", "250m as shares");
    // An exec runs inside the container's cgroups, as with a container runtime.
    let exec_cgroup = t.kubectl(&["exec", "sized", "--", "cat", "/proc/self/cgroup"]).await;
    let memory = |text: &str| text.lines().find(|l| l.split(':').nth(1) == Some("memory")).unwrap().to_string();
    assert_eq!(memory(&exec_cgroup), memory(&cgroups));
}

#[tokio::test]
async fn each_container_sees_its_own_volumes_and_shares_the_shared_ones() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    // Each sleeps a different time, so its process can be told from the other's.
    let container = |name: &str, own: &str, seconds: &str| {
        json!({"name": name, "image": "busybox:1.36", "command": ["sleep", seconds],
            "volumeMounts": [{"name": own, "mountPath": format!("/{own}")}, {"name": "s", "mountPath": "/s"}]})
    };
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"},
        "spec": {"containers": [container("left", "a", "3601"), container("right", "b", "3602")],
            "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}, {"name": "s", "emptyDir": {}}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    let ready = t.kubectl_output(&["wait", "pod/two", "--for=condition=Ready", "--timeout=60s"], None).await;
    if !ready.status.success() {
        let described = t.kubectl(&["describe", "pod", "two"]).await;
        panic!("pod two never Ready:\n{}\n{described}", String::from_utf8_lossy(&ready.stderr));
    }
    let in_container = |c: &'static str, script: &'static str| {
        let t = &t;
        async move { t.kubectl(&["exec", "two", "-c", c, "--", "sh", "-c", script]).await }
    };
    // Mount points, as each container's mount table lists them.
    let mounted = "for d in /a /b /s; do grep -q \" $d \" /proc/self/mountinfo && echo $d; done";
    assert_eq!(in_container("left", mounted).await, "/a\n/s\n");
    assert_eq!(in_container("right", mounted).await, "/b\n/s\n");
    in_container("left", "echo from-left > /s/note && echo mine > /a/only").await;
    assert_eq!(in_container("right", "cat /s/note; ls /a 2>/dev/null | wc -l").await, "from-left\n0\n");
    // An exec joins the container's own view, the one its command has.
    let same = "readlink /proc/self/ns/mnt; for p in /proc/[0-9]*; do \
                [ \"$(tr '\\0' ' ' < $p/cmdline)\" = 'sleep 3601 ' ] && readlink $p/ns/mnt; done; true";
    let views = in_container("left", same).await;
    let lines: Vec<&str> = views.lines().collect();
    assert_eq!(lines[0], lines[1], "the exec and left's sleep: {views}");
}

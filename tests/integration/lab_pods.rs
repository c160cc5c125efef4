//! Pods run for real: the seed-000 commands as written, restarts, probes,
//! exec exit codes, port-forward, pod-to-pod TCP, and nothing left behind.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::requires;
use crate::common::{TestLab, seed_deployment};

async fn deploy_seed(t: &TestLab) -> String {
    t.kubectl(&["create", "configmap", "my-redis-config", "--from-literal=redis-config=maxmemory 2mb"]).await;
    t.kubectl_stdin(&["apply", "-f", "-"], &seed_deployment()).await;
    t.kubectl(&["rollout", "status", "deployment/redis-deployment", "--timeout=60s"]).await;
    t.kubectl(&["get", "pods", "-l", "app=redis", "-o", "jsonpath={.items[0].metadata.name}"]).await
}

/// Waits until `check` holds for the output of kubectl `args`.
async fn eventually(t: &TestLab, args: &[&str], check: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        last = t.kubectl(args).await;
        if check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("kubectl {args:?} never satisfied the check; last output: {last}");
}

#[tokio::test]
async fn seed_000_commands_run_as_written() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = deploy_seed(&t).await;
    let deploy = t.kubectl(&["get", "deployment", "redis-deployment"]).await;
    let row: Vec<&str> = deploy.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["redis-deployment", "1/1", "1", "1"]);

    let maxmemory = t.kubectl(&["exec", &pod, "--", "redis-cli", "CONFIG", "GET", "maxmemory"]).await;
    assert_eq!(maxmemory.lines().collect::<Vec<_>>(), ["maxmemory", "2097152"]);
    let listing = t.kubectl(&["exec", &pod, "--", "ls", "/redis-master"]).await;
    assert_eq!(listing.lines().collect::<Vec<_>>(), ["redis-config"]);
    let netstat = t.kubectl(&["exec", &pod, "--", "netstat", "-ntupl"]).await;
    let listener = netstat.lines().find(|l| l.split_whitespace().nth(3) == Some("0.0.0.0:6379"));
    assert!(listener.is_some_and(|l| l.contains("LISTEN")), "{netstat}");
    assert_eq!(t.kubectl(&["exec", &pod, "--", "redis-cli", "ping"]).await.trim(), "PONG");
    t.kubectl(&["exec", &pod, "--", "touch", "/redis-master-data/testfile"]).await;
    assert_eq!(t.kubectl(&["exec", &pod, "--", "ls", "/redis-master-data"]).await.trim(), "testfile");

    let described = t.kubectl(&["describe", "pod", &pod]).await;
    let lines: Vec<&str> = described.lines().map(str::trim).collect();
    let requests = lines.iter().position(|l| *l == "Requests:").expect("Requests section");
    assert_eq!(lines[requests + 1].split_whitespace().collect::<Vec<_>>(), ["cpu:", "1"]);
    assert!(lines.contains(&"QoS Class:       Burstable"), "{described}");

    // The pod's files exist only inside the pod (and under the lab's state dir).
    for path in ["/redis-master", "/redis-master-data", "/redis-master-data/testfile"] {
        assert!(!std::path::Path::new(path).exists(), "{path} leaked onto the host");
    }
}

#[tokio::test]
async fn deleted_pods_are_replaced_and_killed_containers_restart() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = deploy_seed(&t).await;
    // Pods share the host's PID namespace (docs/lab.md), so `pidof` in the pod
    // would see other tests' Redis too: take the container's own process.
    let id = t.kubectl(&["get", "pod", &pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}"]).await;
    let pid: i32 = id.strip_prefix("runbook://").expect("runbook container id").parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let restarts =
        eventually(&t, &["get", "pod", &pod, "-o", "jsonpath={.status.containerStatuses[0].restartCount}"], |o| {
            o == "1"
        })
        .await;
    assert_eq!(restarts, "1");
    eventually(&t, &["get", "pod", &pod, "-o", "jsonpath={.status.containerStatuses[0].ready}"], |o| o == "true").await;
    assert_eq!(t.kubectl(&["exec", &pod, "--", "redis-cli", "ping"]).await.trim(), "PONG");

    t.kubectl(&["delete", "pod", &pod]).await;
    let replacement =
        eventually(&t, &["get", "pods", "-l", "app=redis", "-o", "jsonpath={.items[*].metadata.name}"], |o| {
            !o.is_empty() && !o.contains(&pod)
        })
        .await;
    t.kubectl(&["wait", "--for=condition=Ready", &format!("pod/{replacement}"), "--timeout=30s"]).await;
}

#[tokio::test]
async fn readiness_probe_drives_the_ready_condition() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probed"},
        "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine",
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1}}]}
    });
    t.kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string()).await;
    let ready =
        || t.kubectl(&["get", "pod", "probed", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
    eventually(&t, &["get", "pod", "probed", "-o", "jsonpath={.status.phase}"], |o| o == "Running").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ready().await, "False", "not ready while the probe fails");
    t.kubectl(&["exec", "probed", "--", "touch", "/tmp/ready"]).await;
    t.kubectl(&["wait", "--for=condition=Ready", "pod/probed", "--timeout=10s"]).await;
    t.kubectl(&["exec", "probed", "--", "rm", "/tmp/ready"]).await;
    t.kubectl(&["wait", "--for=condition=Ready=False", "pod/probed", "--timeout=10s"]).await;
    let events = t
        .kubectl(&["get", "events", "--field-selector", "involvedObject.name=probed,reason=Unhealthy", "-o", "name"])
        .await;
    assert!(!events.trim().is_empty(), "an Unhealthy event is recorded");
}

#[tokio::test]
async fn exec_exit_code_reaches_kubectl() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = deploy_seed(&t).await;
    let out = t.kubectl_output(&["exec", &pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3"], None).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("err\n"));
    let piped = t.kubectl_output(&["exec", "-i", &pod, "--", "cat"], Some("through stdin\n")).await;
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "through stdin\n");
}

#[tokio::test]
async fn port_forward_from_kube_rs_gets_pong() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = deploy_seed(&t).await;
    let pods: Api<Pod> = Api::namespaced(runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap(), "default");
    let mut forwarder = pods.portforward(&pod, &[6379]).await.unwrap();
    let mut stream = forwarder.take_stream(6379).unwrap();
    stream.write_all(b"PING\r\n").await.unwrap();
    let mut reply = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut reply)).await.unwrap().unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    drop(stream);
    forwarder.abort();
}

#[tokio::test]
async fn port_forward_to_a_port_nothing_listens_on_ends_the_stream() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = deploy_seed(&t).await;
    let pods: Api<Pod> = Api::namespaced(runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap(), "default");
    let mut forwarder = pods.portforward(&pod, &[6380]).await.unwrap();
    let mut stream = forwarder.take_stream(6380).unwrap();
    // The kubelet ends the session once the port's forwarding failed: the
    // client reads the end of the stream at once rather than waiting forever.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the stream must end, got {read:?}");
    forwarder.abort();
}

#[tokio::test]
async fn latency_delays_every_request_and_every_stream_message() {
    requires!(Root, Kubectl);
    let latency = Duration::from_millis(300);
    let t = TestLab::with_latency(latency).await;
    let pod = deploy_seed(&t).await;
    let client = runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let started = std::time::Instant::now();
    pods.get(&pod).await.unwrap();
    // The request travels the latency, and so does the answer.
    assert!(started.elapsed() >= 2 * latency, "a GET took {:?}", started.elapsed());
    let mut forwarder = pods.portforward(&pod, &[6379]).await.unwrap();
    let mut stream = forwarder.take_stream(6379).unwrap();
    // A PING and its PONG each travel the latency once.
    let started = std::time::Instant::now();
    stream.write_all(b"PING\r\n").await.unwrap();
    let mut reply = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut reply)).await.unwrap().unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    assert!(started.elapsed() >= 2 * latency, "a PING round trip took {:?}", started.elapsed());
    drop(stream);
    forwarder.abort();
}

#[tokio::test]
async fn pods_talk_to_each_other_by_pod_ip() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    // No command: the image's entrypoint turns protected mode off, as the
    // official image does, so another pod may connect.
    for name in ["server", "client"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "redis", "image": "redis:7.4.1-alpine"}]}});
        t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    }
    t.kubectl(&["wait", "--for=condition=Ready", "pod/server", "pod/client", "--timeout=30s"]).await;
    let server_ip = t.kubectl(&["get", "pod", "server", "-o", "jsonpath={.status.podIP}"]).await;
    let client_ip = t.kubectl(&["get", "pod", "client", "-o", "jsonpath={.status.podIP}"]).await;
    assert_ne!(server_ip, client_ip);
    t.kubectl(&["exec", "server", "--", "redis-cli", "set", "greeting", "hello"]).await;
    let got = t.kubectl(&["exec", "client", "--", "redis-cli", "-h", &server_ip, "get", "greeting"]).await;
    assert_eq!(got.trim(), "hello");
}

#[tokio::test]
async fn unknown_images_back_off_like_missing_images() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    let reason = eventually(
        &t,
        &["get", "pod", "nginx", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"],
        |o| o == "ErrImagePull" || o == "ImagePullBackOff",
    )
    .await;
    assert!(reason == "ErrImagePull" || reason == "ImagePullBackOff");
    let events = t
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=nginx,reason=Failed",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert!(events.contains("Failed to pull image \"nginx:1.27\""), "{events}");
}

#[tokio::test]
async fn nothing_is_left_behind_after_shutdown() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    deploy_seed(&t).await;
    let pids = t.lab.process_ids();
    assert!(pids.len() >= 3, "network holder, sandbox and container: {pids:?}");
    let netns: Vec<String> = pids
        .iter()
        .filter_map(|p| std::fs::read_link(format!("/proc/{p}/ns/net")).ok())
        .map(|l| l.display().to_string())
        .collect();
    let state = t.dir.path().display().to_string();
    // The lab's cgroup directories, as the container's /proc/PID/cgroup names them.
    let lab_cgroups: Vec<std::path::PathBuf> = pids
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/cgroup")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| {
                    let (controllers, path) = l.split_once(':')?.1.split_once(':')?;
                    let lab = path.find("/runbook-lab-")?;
                    let end = path[lab + 1..].find('/').map_or(path.len(), |e| lab + 1 + e);
                    Some(std::path::Path::new("/sys/fs/cgroup").join(controllers).join(&path[1..end]))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!lab_cgroups.is_empty() || !std::path::Path::new("/sys/fs/cgroup/memory").exists(), "{pids:?}");
    let TestLab { lab, dir, .. } = t;
    lab.shutdown().await;
    for cgroup in &lab_cgroups {
        assert!(!cgroup.exists(), "{} remains", cgroup.display());
    }
    for pid in &pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "process {pid} survived the lab");
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(ns) = std::fs::read_link(entry.path().join("ns/net")) {
            assert!(
                !netns.contains(&ns.display().to_string()),
                "a process still uses a lab network namespace: {entry:?}"
            );
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&state), "a mount under the state dir remains");
    assert!(!dir.path().join("state/pods").exists(), "pod data removed");
}

/// The MAC address of the lab bridge, read inside the lab network.
async fn bridge_mac(t: &TestLab) -> String {
    let holder = t.lab.process_ids()[0];
    let out = tokio::process::Command::new("nsenter")
        .args([&format!("--net=/proc/{holder}/ns/net"), "ip", "-brief", "link", "show", "rb0"])
        .output()
        .await
        .unwrap();
    // "rb0  UP  02:72:62:00:00:01 <BROADCAST,...>"
    String::from_utf8(out.stdout).unwrap().split_whitespace().nth(2).unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_gateway_keeps_its_mac_as_pods_come_and_go() {
    requires!(Root, Kubectl);
    // Pods cache the gateway's MAC; if it changed, their replies would be lost.
    let t = TestLab::with_pods().await;
    let before = bridge_mac(&t).await;
    t.kubectl(&["create", "deployment", "churn", "--image=redis:alpine", "--replicas=3"]).await;
    t.kubectl(&["rollout", "status", "deployment/churn", "--timeout=60s"]).await;
    let mut seen = vec![bridge_mac(&t).await];
    for _ in 0..2 {
        t.kubectl(&["delete", "pods", "-l", "app=churn"]).await;
        t.kubectl(&["rollout", "status", "deployment/churn", "--timeout=60s"]).await;
        seen.push(bridge_mac(&t).await);
    }
    assert!(before.len() == 17 && seen.iter().all(|m| *m == before), "{before} then {seen:?}");
}

/// Runs `kubectl ARGS` inside `script`, which gives it a terminal of 100×30
/// as a user's shell would; `input` is typed into it. Exit code and output.
async fn kubectl_in_a_terminal(t: &TestLab, args: &str, input: &str) -> (Option<i32>, String) {
    let kubectl = crate::common::kubectl();
    let line = format!("stty cols 100 rows 30; {} {args}", kubectl.display());
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("KUBECONFIG", &t.lab.kubeconfig)
        .env("KUBECACHEDIR", t.dir.path().join("kube-cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
    drop(stdin);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
}

#[tokio::test]
async fn kubectl_exec_with_a_terminal_gets_one_in_the_pod() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = deploy_seed(&t).await;
    // The pod's own devpts, and the terminal type.
    let (code, out) = kubectl_in_a_terminal(&t, &format!("exec -it {pod} -- sh -c 'tty; echo $TERM'"), "").await;
    assert_eq!(code, Some(0), "{out}");
    // kubectl may send a NUL on stdin as it starts, which the terminal echoes as ^@.
    let lines: Vec<&str> = out.split("\r\n").map(|l| l.trim_start_matches("^@")).collect();
    assert_eq!(&lines[..2], ["/dev/pts/0", "xterm"], "{out:?}");
    // An interactive shell: what is typed runs, and its exit code comes back.
    // The size kubectl read from its terminal came in a resize message
    // before the typed lines (a command started with the session may run
    // before it arrives, on Kubernetes too).
    let typed = "echo hi-$((6*7))\nstty size\nexit 3\n";
    let (code, out) = kubectl_in_a_terminal(&t, &format!("exec -it {pod} -- sh"), typed).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("hi-42\r\n"), "{out:?}");
    assert!(out.contains("\r\n30 100\r\n"), "{out:?}");
}

/// Starts `kubectl port-forward pod/POD :PORT`; the child and the local port it chose.
async fn kubectl_port_forward(t: &TestLab, pod: &str, port: u16) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(crate::common::kubectl())
        .args(["port-forward", &format!("pod/{pod}"), &format!(":{port}")])
        .env("KUBECONFIG", &t.lab.kubeconfig)
        .env("KUBECACHEDIR", t.dir.path().join("kube-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    // "Forwarding from 127.0.0.1:PORT -> 6379"
    let local = line.split_whitespace().nth(2).and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok());
    // kubectl goes on printing ("Handling connection for …"): a closed pipe would kill it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, local.unwrap_or_else(|| panic!("unexpected first line: {line}")))
}

#[tokio::test]
async fn kubectl_port_forward_reaches_redis_and_reports_a_closed_port() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let pod = deploy_seed(&t).await;
    let (mut forward, local) = kubectl_port_forward(&t, &pod, 6379).await;
    for round in 0..3 {
        // A connection of its own each time: each is a new pair of SPDY streams.
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local)).await.unwrap();
        conn.write_all(format!("SET k{round} v{round}\r\nGET k{round}\r\n").as_bytes()).await.unwrap();
        let mut reply = [0u8; 64];
        let mut got = 0;
        while !String::from_utf8_lossy(&reply[..got]).ends_with(&format!("v{round}\r\n")) {
            let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut reply[got..])).await.unwrap();
            let n = read.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(n > 0, "connection closed after {:?}", String::from_utf8_lossy(&reply[..got]));
            got += n;
        }
        assert_eq!(String::from_utf8_lossy(&reply[..got]), format!("+OK\r\n$2\r\nv{round}\r\n"));
    }
    let _ = forward.kill().await;

    // Nothing listens on 6380: kubectl says why and gives up, as with a real kubelet.
    let (forward, local) = kubectl_port_forward(&t, &pod, 6380).await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local)).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "no bytes from a closed port");
    let out = tokio::time::timeout(Duration::from_secs(10), forward.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("an error occurred forwarding") && stderr.contains("6380"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

#[tokio::test]
async fn a_container_that_exits_at_once_is_never_reported_running_or_ready() {
    // Kubernetes' kubelet learns of a started container on its next relist:
    // a Redis that refuses its configuration is gone by then and never shows
    // as Running or Ready (a wait must not pass on it). Every status the lab
    // publishes for such a pod is watched.
    use futures::{StreamExt, TryStreamExt};
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let client = runbook::k8s::client::client_for(&t.lab.kubeconfig).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let params = kube::api::WatchParams::default().fields("metadata.name=refused").timeout(30);
    let mut events = pods.watch(&params, "0").await.unwrap().boxed();
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "refused"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "redis", "image": "redis:alpine",
            "command": ["redis-server", "--maxmemory-policy", "volatile-lfu-typo"]}]}
    });
    t.kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string()).await;
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), events.try_next()).await.unwrap().unwrap() {
        let (kube::api::WatchEvent::Added(pod) | kube::api::WatchEvent::Modified(pod)) = event else { continue };
        let status = serde_json::to_value(&pod.status).unwrap();
        let containers = status["containerStatuses"].as_array().cloned().unwrap_or_default();
        assert!(
            containers.iter().all(|c| c["state"]["running"].is_null() && c["ready"] != true),
            "reported running or ready: {status}"
        );
        seen.push(status["phase"].as_str().unwrap_or_default().to_string());
        if status["phase"] == "Failed" {
            let code = &containers[0]["state"]["terminated"]["exitCode"];
            assert_eq!(code, 1, "{status}");
            return;
        }
    }
    panic!("the pod never failed: phases {seen:?}");
}

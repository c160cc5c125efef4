//! Who a lab pod's processes are on the host: root in the pod is an
//! unprivileged user of a range of its own (a user namespace, as Kubernetes
//! gives with `hostUsers: false`), volumes stay writable through idmapped
//! mounts, and a container holds containerd's default capabilities.

use serde_json::json;

use crate::common::TestLab;
use crate::common::requires;

/// A busybox pod `name` with an emptyDir and a hostPath volume, Ready.
async fn pod_with_volumes(t: &TestLab, name: &str, container: serde_json::Value) {
    let mut c = json!({"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "shared", "mountPath": "/shared"}]});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), container.as_object()) {
        c.extend(extra.clone());
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [c], "volumes": [{"name": "scratch", "emptyDir": {}},
            {"name": "shared", "hostPath": {"path": "/shared", "type": "DirectoryOrCreate"}}]}});
    t.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string()).await;
    t.kubectl(&["wait", &format!("pod/{name}"), "--for=condition=Ready", "--timeout=60s"]).await;
}

/// The host PID of a pod's first container (the lab's container ID).
async fn container_pid(t: &TestLab, pod: &str) -> u32 {
    let id = t.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}"]).await;
    id.trim_start_matches("runbook://").trim().parse().expect("runbook://PID")
}

/// The host user a pod's root is, from its uid_map (`0 BASE 65536`).
async fn mapped_root(t: &TestLab, pod: &str) -> u32 {
    let map = t.kubectl(&["exec", pod, "--", "cat", "/proc/self/uid_map"]).await;
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!((fields[0], fields[2]), ("0", "65536"), "root and 65536 IDs mapped: {map}");
    fields[1].parse().unwrap()
}

fn owner(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).uid()
}

#[tokio::test]
async fn pod_root_is_an_unprivileged_host_user_with_a_range_of_its_own() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    pod_with_volumes(&t, "a", json!({})).await;
    pod_with_volumes(&t, "b", json!({})).await;
    let (a, b) = (mapped_root(&t, "a").await, mapped_root(&t, "b").await);
    assert!(a >= 65536 && b >= 65536 && a.abs_diff(b) >= 65536, "disjoint ranges above the host's: {a} {b}");
    assert_eq!(t.kubectl(&["exec", "a", "--", "id"]).await.trim(), "uid=0(root) gid=0(root) groups=0(root)");
    let status = std::fs::read_to_string(format!("/proc/{}/status", container_pid(&t, "a").await)).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let ids: Vec<u32> = uid.split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect();
    assert_eq!(ids, [a; 4], "real, effective, saved and fs uid on the host: {uid}");

    // The pod writes its own files, its emptyDir and its hostPath; inside,
    // all of them are root's.
    let made = "touch /made-here /scratch/f /shared/g && ls -ln /made-here /scratch/f /shared/g | awk '{print $3, $4}'";
    assert_eq!(t.kubectl(&["exec", "a", "--", "sh", "-c", made]).await, "0 0\n0 0\n0 0\n");
    // On the host, what it wrote in its own root belongs to its mapped user;
    // what it wrote through a volume is stored as root, as on Kubernetes
    // (volumes are idmapped mounts), so the next pod, with another range,
    // can still write it.
    let pod_root = std::path::PathBuf::from(format!("/proc/{}/root", container_pid(&t, "a").await));
    assert_eq!(owner(&pod_root.join("made-here")), a, "the pod's own file");
    let host_path = t.dir.path().join("state/hostpath/shared/g");
    assert_eq!(owner(&host_path), 0, "the hostPath file, as stored on the host");
    let again = "touch /shared/g && echo rewritten > /shared/g && cat /shared/g";
    assert_eq!(t.kubectl(&["exec", "b", "--", "sh", "-c", again]).await.trim(), "rewritten", "pod b writes a's file");
}

#[tokio::test]
async fn a_process_that_escaped_the_pods_view_still_has_no_power_on_the_host() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    pod_with_volumes(&t, "a", json!({})).await;
    let pid = container_pid(&t, "a").await;
    let mut bystander = tokio::process::Command::new("sleep").arg("120").kill_on_drop(true).spawn().unwrap();
    let host_dir = tempfile::tempdir().unwrap();
    // The pod's user namespace, but the host's files and processes: what a
    // process that broke out of the pod's mount and PID namespaces would see.
    let escaped = |script: String| {
        let pid = pid.to_string();
        async move {
            tokio::process::Command::new("nsenter")
                .args(["-t", &pid, "-U", "--", "sh", "-c", &script])
                .output()
                .await
                .unwrap()
        }
    };
    let out = escaped(format!("id -u; touch {}/x", host_dir.path().display())).await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("Permission denied"), "a host directory of root's: {said}");
    let out = escaped(format!("kill -0 {}", bystander.id().unwrap())).await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("not permitted"), "a host process: {said}");
    let out = escaped("cat /etc/shadow".into()).await;
    assert!(!out.status.success(), "the host's /etc/shadow: {}", String::from_utf8_lossy(&out.stdout));
    assert!(bystander.try_wait().unwrap().is_none());
    let _ = bystander.kill().await;
}

#[tokio::test]
async fn containers_hold_containerds_default_capabilities_and_what_they_add() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    pod_with_volumes(&t, "plain", json!({})).await;
    let admin = json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["KILL"]}}});
    pod_with_volumes(&t, "admin", admin).await;
    let bounding = |pod: &'static str| {
        let t = &t;
        async move {
            let status = t.kubectl(&["exec", pod, "--", "cat", "/proc/self/status"]).await;
            status.lines().find(|l| l.starts_with("CapBnd:")).unwrap().split_whitespace().nth(1).unwrap().to_string()
        }
    };
    // containerd's (and Docker's) default set.
    assert_eq!(bounding("plain").await, "00000000a80425fb");
    let net_admin_without_kill = (0xa80425fb_u64 | 1 << 12) & !(1 << 5);
    assert_eq!(bounding("admin").await, format!("{net_admin_without_kill:016x}"));
    let down = ["exec", "plain", "--", "ip", "link", "set", "lo", "down"];
    let refused = t.kubectl_output(&down, None).await;
    assert!(!refused.status.success(), "NET_ADMIN is not in the default set");
    let up = ["exec", "admin", "--", "ip", "link", "set", "lo", "up"];
    assert!(t.kubectl_output(&up, None).await.status.success(), "added NET_ADMIN");
    // NET_RAW is: ping works from a pod, as on a cluster.
    let gateway = t.kubectl(&["exec", "plain", "--", "sh", "-c", "ip route | awk '/default/ {print $3}'"]).await;
    let ping = ["exec", "plain", "--", "ping", "-c", "1", "-W", "2", gateway.trim()];
    assert!(t.kubectl_output(&ping, None).await.status.success(), "ping {gateway}");
}

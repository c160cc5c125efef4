//! `scripts/upstream down` removes everything `up` made, checked from the
//! outside: processes, interfaces, iptables chains, cgroups, mounts, network
//! namespaces, the workloads' host directories, sysctls and the state dir.
//!
//! Run last and on its own (it removes the cluster the other tests use):
//! `RUNBOOK_UPSTREAM_STATE_DIR=.upstream cargo test --test upstream teardown -- --ignored`.

use std::path::{Path, PathBuf};

fn sh(line: &str) -> String {
    let out = std::process::Command::new("bash").args(["-c", line]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Command lines of every process that mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

/// What of the test bed at `state` is still on the host; `recorded` is the
/// host-state.json that `up` wrote (what existed before it).
fn leftovers(state: &Path, recorded: &serde_json::Value) -> Vec<String> {
    let mut left = Vec::new();
    left.extend(processes_mentioning(&state.display().to_string()).into_iter().map(|p| format!("process {p}")));
    left.extend(processes_mentioning("/var/cache/runbook-upstream/bin/").into_iter().map(|p| format!("process {p}")));
    for iface in sh("ip -o link show").lines().filter(|l| l.contains("rbup-") || l.contains("master rbup")) {
        left.push(format!("interface {iface}"));
    }
    for binary in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle"] {
            // Chains that were there before `up` (recorded by it) stay.
            let before = &recorded["chains"][binary][table];
            let existed = |name: &str| before.as_array().is_some_and(|a| a.iter().any(|c| c == name));
            for chain in sh(&format!("{binary}-save -t {table}")).lines().filter(|l| l.starts_with(':')) {
                let name = chain[1..].split_whitespace().next().unwrap();
                let ours = ["KUBE-", "CNI-", "RUNBOOK-UPSTREAM"].iter().any(|p| name.starts_with(p));
                if ours && !existed(name) {
                    left.push(format!("{binary} chain {table}/{name}"));
                }
            }
        }
    }
    for dir in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        if dir.path().join("runbook-upstream").exists() {
            left.push(format!("cgroup {}", dir.path().join("runbook-upstream").display()));
        }
    }
    for mount in std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
        let point = mount.split_whitespace().nth(4).unwrap();
        if point.starts_with(&state.display().to_string()) || point.starts_with("/run/netns/cni-") {
            left.push(format!("mount {point}"));
        }
    }
    for netns in std::fs::read_dir("/run/netns").into_iter().flatten().flatten() {
        if netns.file_name().to_string_lossy().starts_with("cni-") {
            left.push(format!("network namespace {}", netns.path().display()));
        }
    }
    // The seed's static volumes (redis-cluster's hostPath PVs) and the
    // hostpath provisioner's directories: any born after the boot were made
    // by the cluster.
    let booted = recorded["boot_time"].as_f64().expect("host-state.json has boot_time") as i64;
    for path in ["/redis01", "/redis02", "/redis03", "/redis04", "/redis05", "/redis06", "/tmp/hostpath_pv"] {
        if born_at(path).is_some_and(|born| born >= booted) {
            left.push(format!("path {path}"));
        }
    }
    if recorded["run_containerd_existed"] == false && Path::new("/run/containerd").exists() {
        left.push("path /run/containerd (containerd's shim sockets)".into());
    }
    for (name, value) in recorded["sysctls"].as_object().unwrap() {
        if let Some(value) = value.as_str() {
            let now = std::fs::read_to_string(format!("/proc/sys/{name}")).unwrap_or_default();
            if now.trim() != value {
                left.push(format!("sysctl {name} = {} (was {value})", now.trim()));
            }
        }
    }
    if state.exists() {
        left.push(format!("state dir {}", state.display()));
    }
    left
}

/// When `path` was created (seconds since the epoch), if it exists and the
/// file system records it.
fn born_at(path: &str) -> Option<i64> {
    sh(&format!("stat -c %W {path} 2>/dev/null")).trim().parse().ok().filter(|&born| born > 0)
}

/// Leaves on the host what a test bed killed without `down` (from any state
/// dir) leaves behind: a pod's network namespace with no process in it, an
/// address in the pod range, and its veth on the bridge. The namespace is
/// pinned as containerd pins them (a bind mount on a file in /run/netns), not
/// with `ip netns add`, which would also turn /run/netns into a mount point
/// of its own and hide the namespaces mounted in it before.
fn plant_a_dead_pod(netns: &str, host_end: &str, ip: &str) {
    let script = format!(
        "set -e
         ip link show rbup-br0 >/dev/null 2>&1 || ip link add rbup-br0 type bridge
         mkdir -p /run/netns
         touch /run/netns/{netns}
         unshare --net=/run/netns/{netns} true
         ip link add {host_end} type veth peer name eth0 netns {netns}
         ip -n {netns} addr add {ip}/16 dev eth0
         ip -n {netns} link set eth0 up
         ip link set {host_end} master rbup-br0 up"
    );
    let out = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "planting a dead pod: {}", String::from_utf8_lossy(&out.stderr));
}

fn upstream_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/upstream")
}

fn host_state(state: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(state.join("host-state.json")).unwrap()).unwrap()
}

#[test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up); removes it"]
fn down_leaves_nothing_behind() {
    let state = PathBuf::from(std::env::var_os("RUNBOOK_UPSTREAM_STATE_DIR").expect("RUNBOOK_UPSTREAM_STATE_DIR"));
    let state = state.canonicalize().expect("the test bed's state dir exists (is it up?)");
    let recorded = host_state(&state);
    assert!(!processes_mentioning(&state.display().to_string()).is_empty(), "the test bed is not running");
    // Also a pod of another bed that died, on this bed's bridge: down removes it too.
    plant_a_dead_pod("cni-runbook-dead-down", "rbup-dead0", "10.214.255.250");

    let out = std::process::Command::new(upstream_script()).args(["down", "--state-dir"]).arg(&state).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "down failed:\n{said}");
    let left = leftovers(&state, &recorded);
    assert!(left.is_empty(), "down said:\n{said}\nleft behind after down:\n{}", left.join("\n"));
}

/// A boot stopped by SIGTERM halfway (containerd up, the node not yet)
/// removes what it started, and what a bed killed earlier had left. Needs
/// the test bed down (it boots one).
#[test]
#[ignore = "needs root and no upstream test bed running (it boots one)"]
fn an_interrupted_up_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("bed");
    // A bed killed before this one left a pod whose address the new bed
    // will hand out again: up removes it before it boots.
    plant_a_dead_pod("cni-runbook-dead-up", "rbup-dead1", "10.214.0.2");
    let mut up = std::process::Command::new(upstream_script())
        .args(["up", "--state-dir"])
        .arg(&state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !state.join("pids/containerd.pid").exists() {
        assert!(started.elapsed().as_secs() < 300, "up never started containerd");
        assert!(up.try_wait().unwrap().is_none(), "up ended before containerd started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let recorded = host_state(&state);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = up.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("removing what was started"), "{said}");
    let swept = said.lines().find(|l| l.contains("removed what a test bed that ended without `down` left"));
    assert!(swept.is_some_and(|l| l.contains("network namespace cni-runbook-dead-up")), "{said}");
    let left = leftovers(&state, &recorded);
    // What up said first: CI shows only the end of a failure's output.
    assert!(left.is_empty(), "up said:\n{said}\nleft behind after an interrupted up:\n{}", left.join("\n"));
}

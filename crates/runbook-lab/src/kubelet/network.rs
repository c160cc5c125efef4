//! The lab network: a network namespace the lab creates (held open by one
//! process), with a bridge `rb0` at 10.244.0.1/16; each pod gets a veth pair,
//! one end on the bridge and the other as the pod's `eth0`. The host's own
//! network namespace is never touched: nothing routes from it to pods.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::Mutex;

use anyhow::Context;

use super::process::{SpawnMode, host_child};

/// The bridge's address: the pods' gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
const PREFIX: u8 = 16;
const BRIDGE: &str = "rb0";
/// The bridge's MAC, set once. Left to the kernel, a bridge takes the lowest
/// MAC of its ports and changes it as pods come and go; pods that cached the
/// gateway's old MAC then send their replies nowhere for seconds (lost
/// SYN-ACKs: connections through the service proxy stalled during drills).
const BRIDGE_MAC: &str = "02:72:62:00:00:01";
/// Service ClusterIPs: all local to the lab network, where the proxy listens.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";

/// The lab network and its address pool.
pub struct LabNetwork {
    holder: Mutex<Option<tokio::process::Child>>,
    holder_pid: u32,
    used: Mutex<BTreeSet<u32>>,
    last: Mutex<u32>,
}

/// The name of the bridge-side end of the veth of the pod at `ip`.
fn host_end(ip: Ipv4Addr) -> String {
    let octets = ip.octets();
    format!("rbv{}x{}", octets[2], octets[3])
}

/// Runs `ip -batch -` inside the network namespace of `pid`.
pub async fn ip_batch(pid: u32, commands: &str) -> anyhow::Result<()> {
    super::netutil::run_in_netns(pid, std::path::Path::new("ip"), &["-batch", "-"], commands)
        .await
        .with_context(|| format!("ip commands:\n{commands}"))
}

impl LabNetwork {
    /// Creates the lab's network namespace and bridge.
    pub async fn start() -> anyhow::Result<LabNetwork> {
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["--net", "sleep", "infinity"]).stdin(Stdio::null()).stdout(Stdio::null()).kill_on_drop(true);
        host_child(&mut cmd, SpawnMode::HOST_HELPER);
        let holder = cmd.spawn().context("starting the lab network namespace (unshare)")?;
        let holder_pid = holder.id().context("network holder pid")?;
        // unshare execs sleep once the namespace exists; wait for that.
        for _ in 0..200 {
            let comm = std::fs::read_to_string(format!("/proc/{holder_pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let network = LabNetwork {
            holder: Mutex::new(Some(holder)),
            holder_pid,
            used: Mutex::new(BTreeSet::new()),
            last: Mutex::new(0),
        };
        ip_batch(
            holder_pid,
            &format!(
                "link set lo up\nlink add {BRIDGE} type bridge\nlink set {BRIDGE} address {BRIDGE_MAC}\n\
                 addr add {GATEWAY}/{PREFIX} dev {BRIDGE}\nlink set {BRIDGE} up\n\
                 route add local {SERVICE_CIDR} dev lo table local\n"
            ),
        )
        .await?;
        Ok(network)
    }

    /// The pid whose network namespace is the lab network (for services and DNS).
    pub fn holder_pid(&self) -> u32 {
        self.holder_pid
    }

    /// Takes a free pod address: the next one after the last given, as
    /// host-local IPAM does, so a recreated pod gets a new address.
    pub fn allocate(&self) -> anyhow::Result<Ipv4Addr> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let base = u32::from(GATEWAY) - 1;
        let next = (1..65533)
            .map(|i| base + 2 + (*last + i - 1) % 65532)
            .find(|ip| !used.contains(ip))
            .context("the pod network is full")?;
        used.insert(next);
        *last = next - base - 1;
        Ok(Ipv4Addr::from(next))
    }

    /// Returns an address to the pool.
    pub fn release(&self, ip: Ipv4Addr) {
        self.used.lock().unwrap_or_else(|e| e.into_inner()).remove(&u32::from(ip));
    }

    /// Wires the sandbox `pid` to the bridge with address `ip`.
    pub async fn attach(&self, pid: u32, ip: Ipv4Addr) -> anyhow::Result<()> {
        let host_end = host_end(ip);
        // A stale end from a pod that had this address before: remove it first.
        let _ = ip_batch(self.holder_pid, &format!("link del {host_end}\n")).await;
        ip_batch(
            self.holder_pid,
            &format!(
                "link add {host_end} type veth peer name eth0 netns {pid}\nlink set {host_end} master {BRIDGE}\nlink set {host_end} up\n"
            ),
        )
        .await?;
        ip_batch(
            pid,
            &format!(
                "link set lo up\naddr add {ip}/{PREFIX} dev eth0\nlink set eth0 up\nroute add default via {GATEWAY}\n"
            ),
        )
        .await
    }

    /// Plugs the veth of the pod at `ip` into the bridge (`up`) or unplugs
    /// it: unplugged, what is sent to the pod vanishes, as to a dead node.
    pub async fn set_link(&self, ip: Ipv4Addr, up: bool) -> anyhow::Result<()> {
        let state = if up { "up" } else { "down" };
        ip_batch(self.holder_pid, &format!("link set {} {state}\n", host_end(ip))).await
    }

    /// Removes the namespace (and with it the bridge and every host-side veth).
    pub async fn stop(&self) {
        let child = self.holder.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.kill().await;
        }
    }

    /// Synchronous last resort for `Drop`: SIGKILL the holder.
    pub fn kill_now(&self) {
        if let Some(child) = self.holder.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = child.start_kill();
        }
    }
}

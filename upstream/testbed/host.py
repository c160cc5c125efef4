"""What the test bed changes on the host, and how `down` undoes exactly that.

`up` records every sysctl before changing it, and which iptables chains
existed, in host-state.json; `down` restores the sysctls, removes the
interfaces and routes it added, the chains that were not there before, the
pods' cgroups, network namespaces and mounts. Before it boots, `up` also
removes the pods' network namespaces of a bed that was killed without `down`
(`dead_pod_netns`), whatever its state dir.
"""

import ipaddress
import json
import os
import shutil
import subprocess
import time

from layout import BRIDGE, FIREWALL_CHAIN, LB_CIDR, NODE_IFACE, NODE_IP, POD_CIDR, SERVICE_CIDR

# Sysctls that the test bed, the kubelet or kube-proxy set.
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/bridge/bridge-nf-call-ip6tables": "1",
    # Set by the kubelet at start (it cannot be told not to) and restored by `down`.
    "vm/overcommit_memory": None,
    "vm/panic_on_oom": None,
    "kernel/panic": None,
    "kernel/panic_on_oops": None,
    "kernel/keys/root_maxkeys": None,
    "kernel/keys/root_maxbytes": None,
    "net/ipv4/conf/all/route_localnet": None,
}
CHAIN_PREFIXES = ("KUBE-", "CNI-", FIREWALL_CHAIN)
TABLES = ("filter", "nat", "mangle")
CGROUP_ROOT = "runbook-upstream"
OUTPUT_CHAIN = FIREWALL_CHAIN + "-OUTPUT"
NETNS_DIR = "/run/netns"
# containerd keeps shim sockets and FIFOs here whatever its config says.
RUN_CONTAINERD = "/run/containerd"


def run(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def read_sysctl(name):
    try:
        with open("/proc/sys/" + name) as f:
            return f.read().strip()
    except OSError:
        return None


def write_sysctl(name, value):
    try:
        with open("/proc/sys/" + name, "w") as f:
            f.write(value)
    except OSError:
        pass


def chains(binary="iptables"):
    """{table: set(chain)} as iptables-save lists them."""
    found = {}
    for table in TABLES:
        out = run(f"{binary}-save", "-t", table, check=False).stdout
        found[table] = {line[1:].split()[0] for line in out.splitlines() if line.startswith(":")}
    return found


def prepare(lay):
    """Records the host's state, then sets up the node's network."""
    swept = remove_dead_beds_pods()
    if swept:
        print(f"upstream: removed what a test bed that ended without `down` left: {', '.join(swept)}", flush=True)
    if not os.path.exists(lay.host_state):
        state = {
            # Host paths born after this belong to the test bed (hostpaths.py).
            "boot_time": time.time(),
            "sysctls": {name: read_sysctl(name) for name in SYSCTLS},
            "chains": {b: {t: sorted(c) for t, c in chains(b).items()} for b in ("iptables", "ip6tables")},
            "netns": netns_names(),
            "hostpath_pv_existed": os.path.exists("/tmp/hostpath_pv"),
            "run_containerd_existed": os.path.exists(RUN_CONTAINERD),
        }
        with open(lay.host_state, "w") as f:
            json.dump(state, f, indent=2)
    for name, value in SYSCTLS.items():
        if value is not None:
            write_sysctl(name, value)
    # The node's address lives on an interface of its own: the kubelet
    # refuses a loopback node IP. It is a bridge without ports (this kernel
    # has no dummy driver), so what is routed to it and not claimed by a
    # local address or a DNAT rule is dropped there and never leaves.
    if run("ip", "link", "show", NODE_IFACE, check=False).returncode != 0:
        run("ip", "link", "add", NODE_IFACE, "type", "bridge")
        run("ip", "addr", "add", NODE_IP + "/32", "dev", NODE_IFACE)
        run("ip", "link", "set", NODE_IFACE, "up")
        for cidr in (LB_CIDR, SERVICE_CIDR):
            run("ip", "route", "add", cidr, "dev", NODE_IFACE)
    # Pods may talk to each other, to the node and to Services, never beyond:
    # forwarded traffic from the pod range to any other interface is dropped.
    if run("iptables", "-n", "-L", FIREWALL_CHAIN, check=False).returncode != 0:
        run("iptables", "-N", FIREWALL_CHAIN)
        run("iptables", "-A", FIREWALL_CHAIN, "-s", POD_CIDR, "!", "-o", BRIDGE, "-j", "DROP")
        run("iptables", "-I", "FORWARD", "1", "-j", FIREWALL_CHAIN)
    # A connection from the host to a LoadBalancer or Service address that no
    # kube-proxy rule claims (yet) is refused at once, as by a router without
    # a route. Without this its SYN would wait on ARP and, worse, leave an
    # un-NATed conntrack entry for 2 minutes: a later connection that reuses
    # the same local port would match it and miss the Service's rules.
    # (Rejected packets are never confirmed into the conntrack table.)
    if run("iptables", "-n", "-L", OUTPUT_CHAIN, check=False).returncode != 0:
        run("iptables", "-N", OUTPUT_CHAIN)
        for cidr in (LB_CIDR, SERVICE_CIDR):
            run("iptables", "-A", OUTPUT_CHAIN, "-d", cidr, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
            run("iptables", "-A", OUTPUT_CHAIN, "-d", cidr, "-j", "REJECT", "--reject-with", "icmp-host-unreachable")
        run("iptables", "-A", "OUTPUT", "-j", OUTPUT_CHAIN)
    for controller in cgroup_controllers():
        os.makedirs(f"/sys/fs/cgroup/{controller}/{CGROUP_ROOT}", exist_ok=True)
    # A new cpuset cgroup starts with no CPUs and no memory nodes: give the
    # pods' root what the host's root has.
    for name in ("cpuset.cpus", "cpuset.mems"):
        source = f"/sys/fs/cgroup/cpuset/{name}"
        if os.path.exists(source):
            with open(source) as f:
                write_file(f"/sys/fs/cgroup/cpuset/{CGROUP_ROOT}/{name}", f.read().strip())


def write_file(path, value):
    with open(path, "w") as f:
        f.write(value)


def cgroup_controllers():
    base = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        return [""]  # cgroup v2: one hierarchy
    # Every v1 hierarchy, and the v2 one mounted beside them ("unified"),
    # where runc makes the containers' cgroups too.
    return [c for c in os.listdir(base) if not os.path.islink(os.path.join(base, c))
            and os.path.isdir(os.path.join(base, c))]


def remove_cgroups():
    """Removes the pods' cgroups, deepest first (`leftovers` reports any that stay)."""
    for controller in cgroup_controllers():
        top = f"/sys/fs/cgroup/{controller}/{CGROUP_ROOT}"
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def netns_names():
    try:
        return sorted(os.listdir(NETNS_DIR))
    except OSError:
        return []


def remove_netns(lay):
    """Removes network namespaces the CRI made for pods (cni-*) after `up`,
    and any pod's that no process uses any more; normally the CRI has freed
    them when it stopped the sandboxes."""
    for name in sorted(set(new_netns(lay)) | set(dead_pod_netns())):
        run("umount", os.path.join(NETNS_DIR, name), check=False)
        try:
            os.remove(os.path.join(NETNS_DIR, name))
        except OSError:
            pass


def dead_pod_netns():
    """Network namespaces of pods whose test bed is gone: cni-*, with an
    address in the pod range and no process left in them. A bed killed
    without `down` (from any state dir) leaves them behind with their veths
    still on the bridge, holding addresses the next bed hands out again: a
    new pod's address then answers from two places, and connections to it
    may reach the dead pod and be refused."""
    pods = ipaddress.ip_network(POD_CIDR)
    dead = []
    for name in netns_names():
        if not name.startswith("cni-") or run("ip", "netns", "pids", name, check=False).stdout.strip():
            continue
        lines = run("ip", "-n", name, "-4", "-o", "addr", "show", check=False).stdout.splitlines()
        addresses = [line.split()[3].split("/")[0] for line in lines if " inet " in line]
        if any(ipaddress.ip_address(a) in pods for a in addresses):
            dead.append(name)
    return dead


def remove_dead_beds_pods():
    """Before `up`: removes dead pods' network namespaces (their veths go with
    them), then the bridge if no pod is left on it (CNI makes it again).
    Returns what it removed."""
    removed = []
    for name in dead_pod_netns():
        run("umount", os.path.join(NETNS_DIR, name), check=False)
        try:
            os.remove(os.path.join(NETNS_DIR, name))
            removed.append(f"network namespace {name}")
        except OSError:
            pass
    bridge = run("ip", "link", "show", BRIDGE, check=False).returncode == 0
    if bridge and not run("ip", "-o", "link", "show", "master", BRIDGE, check=False).stdout.strip():
        run("ip", "link", "del", BRIDGE, check=False)
        removed.append(f"interface {BRIDGE}")
    return removed


def new_netns(lay):
    try:
        with open(lay.host_state) as f:
            before = set(json.load(f).get("netns", []))
    except OSError:
        before = set()
    return [n for n in netns_names() if n.startswith("cni-") and n not in before]


def unmount_under(paths):
    """Unmounts every mount point under the given paths, deepest first."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    mine = [p for p in points if any(p == root or p.startswith(root.rstrip("/") + "/") for root in paths)]
    for point in sorted(set(mine), key=len, reverse=True):
        run("umount", "-l", point, check=False)


def remove_run_containerd(lay):
    """Removes /run/containerd if `up` did not find it (only our containerd used it)."""
    try:
        with open(lay.host_state) as f:
            existed = json.load(f).get("run_containerd_existed", True)
    except (OSError, ValueError):
        existed = True
    if not existed:
        shutil.rmtree(RUN_CONTAINERD, ignore_errors=True)


def remove_network(lay):
    """Removes interfaces, routes, iptables chains and sysctls that `up` changed."""
    for iface in (BRIDGE, NODE_IFACE):
        run("ip", "link", "del", iface, check=False)  # routes on them go with them
    try:
        with open(lay.host_state) as f:
            before = json.load(f)
    except OSError:
        before = {"sysctls": {}, "chains": {}}
    for binary in ("iptables", "ip6tables"):
        existed = {t: set(c) for t, c in before.get("chains", {}).get(binary, {}).items()}
        remove_chains(binary, existed)
    for name, value in before.get("sysctls", {}).items():
        if value is not None:
            write_sysctl(name, value)


def remove_chains(binary, existed):
    """Deletes chains named like Kubernetes', CNI's or ours that did not exist
    before `up`, and every rule that jumps to them."""
    for table in TABLES:
        out = run(f"{binary}-save", "-t", table, check=False).stdout
        ours = {line[1:].split()[0] for line in out.splitlines()
                if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES)} - existed.get(table, set())
        if not ours:
            continue
        for line in out.splitlines():
            if not line.startswith("-A "):
                continue
            parts = line.split()
            if parts[1] in ours:
                continue  # goes with its chain
            if "-j" in parts and parts[parts.index("-j") + 1] in ours:
                run(binary, "-t", table, "-D", *parts[1:], check=False)
        for chain in ours:
            run(binary, "-t", table, "-F", chain, check=False)
        for chain in ours:
            run(binary, "-t", table, "-X", chain, check=False)


def leftovers(lay):
    """What of the test bed is still on the host: [] after a clean `down`."""
    found = []
    for iface in (BRIDGE, NODE_IFACE):
        if run("ip", "link", "show", iface, check=False).returncode == 0:
            found.append(f"interface {iface}")
    out = run("ip", "-o", "link", "show", check=False).stdout
    found += [f"interface {line.split(':')[1].strip()}" for line in out.splitlines()
              if f"master {BRIDGE}" in line]
    for binary in ("iptables", "ip6tables"):
        try:
            with open(lay.host_state) as f:
                existed = json.load(f)["chains"][binary]
        except (OSError, KeyError):
            existed = {}
        for table, names in chains(binary).items():
            for chain in sorted(names - set(existed.get(table, []))):
                if chain.startswith(CHAIN_PREFIXES):
                    found.append(f"{binary} chain {table}/{chain}")
    for controller in cgroup_controllers():
        if os.path.isdir(f"/sys/fs/cgroup/{controller}/{CGROUP_ROOT}"):
            found.append(f"cgroup /sys/fs/cgroup/{controller}/{CGROUP_ROOT}")
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if lay.root in line.split()[4]]
    found += [f"network namespace {name}" for name in sorted(set(new_netns(lay)) | set(dead_pod_netns()))]
    try:
        with open(lay.host_state) as f:
            if not json.load(f).get("run_containerd_existed", True) and os.path.exists(RUN_CONTAINERD):
                found.append(RUN_CONTAINERD)
    except (OSError, ValueError):
        pass
    return found

"""Where everything of one test bed lives, and the fixed addresses it uses.

All state sits under the state dir; the Go build cache and the finished
binaries sit in a fixed cache dir shared by every state dir, so a second
`up` (or a CI run on the same machine) builds nothing.
"""

import os

VERSION = "v1.34.4"  # k8s.io/kubernetes, as pinned in upstream/hyperkube/go.mod
NODE_NAME = "runbook-upstream"
CONTEXT = "runbook-upstream"  # never `runbook-lab`: runbook must not take it for the lab

# Addresses. The node, LoadBalancer and service ranges are routed to an
# interface of the test bed's own (a bridge without ports), so a packet to one of them that no rule
# claims is dropped there instead of leaving the machine.
NODE_IFACE = "rbup-node"
NODE_IP = "10.213.0.1"
LB_PREFIX = "10.213.1."  # LoadBalancer addresses: 10.213.1.1 ... 10.213.1.254
LB_CIDR = "10.213.1.0/24"
BRIDGE = "rbup-br0"
POD_CIDR = "10.214.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
ETCD_CLIENT_PORT = 23790
ETCD_PEER_PORT = 23800
APISERVER_PORT = 6443
METRICS_SERVER_PORT = 4443
FIREWALL_CHAIN = "RUNBOOK-UPSTREAM"

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("RUNBOOK_UPSTREAM_CACHE", "/var/cache/runbook-upstream")


class Layout:
    """Paths inside one state dir."""

    def __init__(self, state_dir):
        self.root = os.path.abspath(state_dir)
        self.pki = self.path("pki")
        self.logs = self.path("logs")
        self.pids = self.path("pids")
        self.kubeconfig = self.path("kubeconfig")
        self.admin_kubeconfig = self.path("admin.kubeconfig")
        self.kubelet_kubeconfig = self.path("kubelet.kubeconfig")
        self.containerd_sock = self.path("run", "containerd.sock")
        self.containerd_config = self.path("containerd", "config.toml")
        self.cni_conf_dir = self.path("cni", "net.d")
        self.kubelet_dir = self.path("kubelet")
        self.host_state = self.path("host-state.json")  # what `up` changed on the host, for `down`
        self.host_paths = self.path("host-paths.json")  # hostPaths workloads named, and whether they existed

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def log(self, name):
        return os.path.join(self.logs, name + ".log")

    def pid_file(self, name):
        return os.path.join(self.pids, name + ".pid")

    @property
    def cri_endpoint(self):
        return "unix://" + self.containerd_sock

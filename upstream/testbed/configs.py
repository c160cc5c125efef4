"""Configuration files of containerd, CNI, the kubelet, kube-proxy and CoreDNS.

Every path points into the state dir, so nothing is written to the host's
/etc, /var/lib or /opt, and `down` removes it all with the state dir.
"""

import json
import os

from layout import BRIDGE, DNS_SERVICE_IP, NODE_IP, NODE_NAME, POD_CIDR


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def containerd(lay):
    # Debian's containerd 1.6 with its CRI plugin. The sandbox image is the
    # locally built pause; a pull of anything else goes to a proxy address on
    # loopback that refuses at once (see processes.start_containerd), so an
    # unknown image fails as ErrImagePull without any traffic leaving.
    write(lay.containerd_config, f"""version = 2
root = "{lay.path('containerd', 'root')}"
state = "{lay.path('containerd', 'state')}"

[grpc]
  address = "{lay.containerd_sock}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{lay.path('containerd', 'opt')}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # Root here lacks CAP_SYS_RESOURCE, so the negative oom_score_adj the
  # kubelet asks for sandboxes (-998) and Guaranteed pods (-997) would make
  # runc fail ("can't get final child's PID from pipe"); containerd clamps
  # such scores to its own (0), as it does for rootless setups.
  restrict_oom_score_adj = true
  enable_selinux = false
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{lay.path('runc')}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{lay.cni_conf_dir}"
""")


def cni(lay):
    # One bridge with host-local addresses; no masquerade and no portmap, so
    # the plugins add no iptables rules of their own.
    conf = {
        "cniVersion": "1.0.0",
        "name": "runbook-upstream",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_CIDR}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": lay.path("cni", "ipam"),
            },
        }],
    }
    write(os.path.join(lay.cni_conf_dir, "10-runbook-upstream.conflist"), json.dumps(conf, indent=2))


def kubelet(lay):
    # cgroupfs driver (no systemd here), swap allowed, and image GC and
    # eviction thresholds that never remove the preloaded images (they cannot
    # be pulled again). Pods' cgroups live under /runbook-upstream.
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": f"{lay.pki}/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": f"{lay.pki}/kubelet.crt",
        "tlsPrivateKeyFile": f"{lay.pki}/kubelet.key",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": "/runbook-upstream",
        "failSwapOn": False,
        "clusterDomain": "cluster.local",
        "clusterDNS": [DNS_SERVICE_IP],
        "resolvConf": lay.path("resolv.conf"),
        "containerRuntimeEndpoint": lay.cri_endpoint,
        "podLogsDir": lay.path("pod-logs"),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "imageMinimumGCAge": "876000h",
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "0%", "nodefs.inodesFree": "0%",
                         "imagefs.available": "0%", "imagefs.inodesFree": "0%"},
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "staticPodPath": "",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "localStorageCapacityIsolation": True,
    }
    write(lay.path("kubelet-config.json"), json.dumps(config, indent=2))
    # Pods resolve only cluster names: CoreDNS forwards nothing, and the host's
    # resolvers are never handed to a pod.
    write(lay.path("resolv.conf"), f"nameserver {DNS_SERVICE_IP}\n")


def kube_proxy(lay):
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": lay.admin_kubeconfig},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # Leave the host's conntrack table sizes alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "syncPeriod": "10s",
                     "minSyncPeriod": "0s"},
        "nodePortAddresses": [f"{NODE_IP}/32"],
    }
    write(lay.path("kube-proxy-config.json"), json.dumps(config, indent=2))


def corefile(lay):
    # CoreDNS runs on the host and answers on the node address; the kube-dns
    # Service (10.96.0.10) routes there through a selectorless EndpointSlice.
    write(lay.path("Corefile"), f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {lay.admin_kubeconfig} admin
        pods insecure
        ttl 5
    }}
    cache 5
    loadbalance
}}
""")

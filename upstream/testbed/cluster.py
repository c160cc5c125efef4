"""Booting the test bed in order, proving it ready, and tearing it down.

Order of `up`: host network, certificates, etcd, kube-apiserver, containerd
(with the local images imported), controller manager and scheduler, kubelet
and kube-proxy, cluster objects, CoreDNS, metrics-server, the LoadBalancer
loop; then a probe pod proves that the node runs pods, DNS answers and a
Service routes.
"""

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request

import build
import configs
import controllers
import host
import hostpaths
import images
import pki
import processes
from layout import (APISERVER_PORT, CONTEXT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, KUBERNETES_SERVICE_IP,
                    METRICS_SERVER_PORT, NODE_IP, NODE_NAME, POD_CIDR, REPO, SERVICE_CIDR, VERSION)

HERE = os.path.dirname(os.path.abspath(__file__))
# Stop order for `down`: the node first, the API server last but one.
COMPONENTS = ["controllers", "metrics-server", "coredns", "kube-proxy", "kubelet", "kube-scheduler",
              "kube-controller-manager", "containerd", "kube-apiserver", "etcd"]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def say(message):
    print(f"upstream: {message}", file=sys.stderr, flush=True)


def kubectl(lay, *args, check=True, kubeconfig=None, input=None):
    result = subprocess.run(["kubectl", "--kubeconfig", kubeconfig or lay.admin_kubeconfig, *args],
                            capture_output=True, text=True, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result


def https_ok(url, lay):
    context = ssl.create_default_context(cafile=f"{lay.pki}/ca.crt")
    context.load_cert_chain(f"{lay.pki}/admin.crt", f"{lay.pki}/admin.key")
    with urllib.request.urlopen(url, context=context, timeout=2) as response:
        return response.status == 200


def up(lay):
    alive = processes.recorded(lay)
    if alive:
        if len(alive) == len(COMPONENTS) and node_ready(lay):
            say(f"already up; export KUBECONFIG={lay.kubeconfig}")
            return
        say(f"a test bed in {lay.root} is partly running ({', '.join(sorted(alive))}): removing it first")
        down(lay)
    started = time.monotonic()
    # containerd, runc, the CNI plugins, iptables, busybox-static (idempotent).
    subprocess.run([os.path.join(REPO, "scripts", "install-deps"), "--upstream"], check=True)
    binary = build.hyperkube()
    pause = build.pause()
    counter = build.counter_service()
    os.makedirs(lay.root, exist_ok=True)
    boot = time.monotonic()
    host.prepare(lay)
    pki.make(lay.pki, NODE_NAME, NODE_IP, KUBERNETES_SERVICE_IP)
    server = f"https://{NODE_IP}:{APISERVER_PORT}"
    pki.kubeconfig(lay.admin_kubeconfig, server, lay.pki, "admin", "admin")
    pki.kubeconfig(lay.kubelet_kubeconfig, server, lay.pki, "kubelet", "kubelet")
    pki.kubeconfig(lay.kubeconfig, server, lay.pki, "admin", CONTEXT)
    for write in (configs.containerd, configs.cni, configs.kubelet, configs.kube_proxy, configs.corefile):
        write(lay)

    start_etcd(lay, binary)
    start_apiserver(lay, binary)
    start_containerd(lay)
    import_images(lay, pause, counter)
    start_controllers(lay, binary)
    start_node(lay, binary)
    processes.wait_for("node Ready", lambda: node_ready(lay), 120)
    kubectl(lay, "apply", "-f", os.path.join(HERE, "bootstrap.yaml"))
    # Pods are refused until their namespace's default ServiceAccount exists.
    for namespace in ("default", "kube-system"):
        processes.wait_for(f"service account {namespace}/default", lambda: kubectl(
            lay, "-n", namespace, "get", "serviceaccount", "default", check=False).returncode == 0, 60)
    start_addons(lay, binary)
    prove_ready(lay)
    say(f"ready in {time.monotonic() - boot:.1f} s (after {boot - started:.1f} s of build checks); "
        f"export KUBECONFIG={lay.kubeconfig}")


def start_etcd(lay, binary):
    processes.start(lay, "etcd", [
        binary, "etcd", "--name", NODE_NAME, "--data-dir", lay.path("etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{ETCD_CLIENT_PORT}",
        "--advertise-client-urls", f"http://127.0.0.1:{ETCD_CLIENT_PORT}",
        "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
        "--initial-cluster", f"{NODE_NAME}=http://127.0.0.1:{ETCD_PEER_PORT}",
        "--unsafe-no-fsync", "--log-level", "warn"])

    def healthy():
        with urllib.request.urlopen(f"http://127.0.0.1:{ETCD_CLIENT_PORT}/health", timeout=2) as response:
            return json.load(response).get("health") == "true"
    processes.wait_for("etcd", healthy, 60, alive=(lay, "etcd"))


def start_apiserver(lay, binary):
    p = lay.pki
    processes.start(lay, "kube-apiserver", [
        binary, "kube-apiserver",
        "--advertise-address", NODE_IP, "--bind-address", NODE_IP, "--secure-port", str(APISERVER_PORT),
        "--etcd-servers", f"http://127.0.0.1:{ETCD_CLIENT_PORT}",
        "--service-cluster-ip-range", SERVICE_CIDR,
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", f"{p}/sa.pub", "--service-account-signing-key-file", f"{p}/sa.key",
        "--client-ca-file", f"{p}/ca.crt",
        "--tls-cert-file", f"{p}/apiserver.crt", "--tls-private-key-file", f"{p}/apiserver.key",
        "--kubelet-client-certificate", f"{p}/apiserver-kubelet-client.crt",
        "--kubelet-client-key", f"{p}/apiserver-kubelet-client.key",
        "--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
        "--allow-privileged=true",
        "--requestheader-client-ca-file", f"{p}/front-proxy-ca.crt",
        "--requestheader-allowed-names", "front-proxy-client",
        "--requestheader-username-headers", "X-Remote-User", "--requestheader-group-headers", "X-Remote-Group",
        "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
        "--proxy-client-cert-file", f"{p}/front-proxy-client.crt",
        "--proxy-client-key-file", f"{p}/front-proxy-client.key",
        "--enable-aggregator-routing=true",
        # The node's name resolves nowhere: reach the kubelet by its address.
        "--kubelet-preferred-address-types", "InternalIP"])
    processes.wait_for("kube-apiserver", lambda: https_ok(f"https://{NODE_IP}:{APISERVER_PORT}/readyz", lay), 120,
                        alive=(lay, "kube-apiserver"))


def start_containerd(lay):
    # Every registry request goes to a proxy on a loopback port where nothing
    # listens: a pull of an image that was not imported fails at once, and no
    # traffic leaves the machine.
    proxy = "http://127.0.0.1:1"
    os.makedirs(os.path.dirname(lay.containerd_sock), exist_ok=True)
    processes.start(lay, "containerd", ["containerd", "--config", lay.containerd_config],
                    env={"PATH": PATH, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": "",
                         "http_proxy": proxy, "https_proxy": proxy, "no_proxy": ""})
    processes.wait_for("containerd", lambda: ctr(lay, "version").returncode == 0, 60, alive=(lay, "containerd"))


def ctr(lay, *args):
    return subprocess.run(["ctr", "--address", lay.containerd_sock, "--namespace", "k8s.io", *args],
                          capture_output=True, text=True)


def import_images(lay, pause, counter):
    archives = images.build_all(lay.path("images"), pause, counter)
    for archive in archives:
        result = ctr(lay, "images", "import", "--no-unpack", "--all-platforms", archive)
        if result.returncode != 0:
            raise RuntimeError(f"importing {archive}: {result.stderr.strip()}")
    # Labelled as the kubelet's pinned images, so image GC would never take them.
    names = [line.split()[0] for line in ctr(lay, "images", "ls").stdout.splitlines()[1:]]
    for name in names:
        ctr(lay, "images", "label", name, "io.cri-containerd.pinned=pinned")


def start_controllers(lay, binary):
    k = lay.admin_kubeconfig
    processes.start(lay, "kube-controller-manager", [
        binary, "kube-controller-manager", "--kubeconfig", k,
        "--authentication-kubeconfig", k, "--authorization-kubeconfig", k,
        "--bind-address", "127.0.0.1", "--leader-elect=false",
        "--cluster-signing-cert-file", f"{lay.pki}/ca.crt", "--cluster-signing-key-file", f"{lay.pki}/ca.key",
        "--root-ca-file", f"{lay.pki}/ca.crt", "--service-account-private-key-file", f"{lay.pki}/sa.key",
        "--use-service-account-credentials=true", "--enable-hostpath-provisioner=true",
        "--service-cluster-ip-range", SERVICE_CIDR, "--cluster-cidr", POD_CIDR,
        "--controllers", "*,bootstrapsigner,tokencleaner"])
    processes.start(lay, "kube-scheduler", [
        binary, "kube-scheduler", "--kubeconfig", k,
        "--authentication-kubeconfig", k, "--authorization-kubeconfig", k,
        "--bind-address", "127.0.0.1", "--leader-elect=false",
        # A pod refused for a claim not yet bound waits for the claim's update
        # event; once in CI that event never requeued it and the pod stayed
        # Pending past a 120 s rollout wait (the claim was bound). 15 s
        # instead of the default 5 min bounds such a miss; see docs/upstream.md.
        "--pod-max-in-unschedulable-pods-duration=15s"])


def start_node(lay, binary):
    processes.start(lay, "kubelet", [
        binary, "kubelet", "--config", lay.path("kubelet-config.json"), "--kubeconfig", lay.kubelet_kubeconfig,
        "--hostname-override", NODE_NAME, "--node-ip", NODE_IP, "--root-dir", lay.kubelet_dir],
        env={"PATH": PATH})
    processes.start(lay, "kube-proxy", [binary, "kube-proxy", "--config", lay.path("kube-proxy-config.json")],
                    env={"PATH": PATH})


def start_addons(lay, binary):
    processes.start(lay, "coredns", [binary, "coredns", "-conf", lay.path("Corefile")])
    k = lay.admin_kubeconfig
    processes.start(lay, "metrics-server", [
        binary, "metrics-server", "--kubeconfig", k, "--authentication-kubeconfig", k,
        "--authorization-kubeconfig", k, "--secure-port", str(METRICS_SERVER_PORT), "--bind-address", NODE_IP,
        "--tls-cert-file", f"{lay.pki}/metrics-server.crt", "--tls-private-key-file", f"{lay.pki}/metrics-server.key",
        "--kubelet-insecure-tls", "--kubelet-preferred-address-types", "InternalIP", "--metric-resolution", "15s"])
    processes.start(lay, "controllers", [sys.executable, os.path.join(HERE, "controllers.py"), lay.root])


def node_ready(lay):
    out = kubectl(lay, "get", "node", NODE_NAME, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    conditions = json.loads(out.stdout)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


PROBE = """apiVersion: v1
kind: Pod
metadata:
  name: upstream-ready-probe
  namespace: kube-system
spec:
  restartPolicy: Never
  containers:
  - name: probe
    image: busybox:1.36
    command: ["sh", "-c"]
    # CoreDNS (started just before) syncs with the API, and kube-proxy programs
    # the kube-dns Service, a moment after the node is Ready: one try can lose
    # that race (a CI boot did), so the pod tries for up to 60 s.
    args:
    - |
      for try in $(seq 30); do
        nslookup kubernetes.default.svc.cluster.local &&
          nc -w 3 kubernetes.default.svc.cluster.local 443 </dev/null && echo "routed (try $try)" && exit 0
        sleep 2
      done
      exit 1
"""


def prove_ready(lay):
    """A pod runs, resolves a Service name through cluster DNS and reaches it."""
    kubectl(lay, "apply", "-f", "-", input=PROBE)

    def finished():
        phase = kubectl(lay, "-n", "kube-system", "get", "pod", "upstream-ready-probe", "-o",
                        "jsonpath={.status.phase}").stdout
        return phase if phase in ("Succeeded", "Failed") else None
    try:
        # wait_for retries a probe that raises, so a failed pod is reported here.
        phase = processes.wait_for("probe pod (runs, DNS, Service routing)", finished, 120)
        logs = kubectl(lay, "-n", "kube-system", "logs", "upstream-ready-probe", check=False)
        if phase == "Failed":
            raise RuntimeError(f"the probe pod failed: {logs.stdout}{logs.stderr}")
        say(f"probe pod: {(logs.stdout.strip().splitlines() or ['?'])[-1]}")
        # The API serves metrics once metrics-server has scraped the node once.
        processes.wait_for("metrics API", lambda: kubectl(lay, "get", "--raw",
                                                           "/apis/metrics.k8s.io/v1beta1/nodes",
                                                           check=False).returncode == 0, 60)
    finally:
        kubectl(lay, "-n", "kube-system", "delete", "pod", "upstream-ready-probe", "--wait=false", check=False)


def print_log_tails(lay, lines=25):
    """The end of every component's log, for a boot that failed."""
    if not os.path.isdir(lay.logs):
        return
    for name in sorted(os.listdir(lay.logs)):
        with open(os.path.join(lay.logs, name), errors="replace") as f:
            tail = f.readlines()[-lines:]
        print(f"---- {name} (last {len(tail)} lines)", file=sys.stderr)
        sys.stderr.writelines(tail)


def status(lay):
    alive = processes.recorded(lay)
    for name in reversed(COMPONENTS):
        print(f"{name:24} {'running, pid ' + str(alive[name]) if name in alive else 'not running'}")
    if "kube-apiserver" in alive:
        ready = node_ready(lay)
        print(f"{'node ' + NODE_NAME:24} {'Ready' if ready else 'not Ready'}")
        print(f"kubeconfig               {lay.kubeconfig} (Kubernetes {VERSION})")
        return 0 if ready and len(alive) == len(COMPONENTS) else 1
    return 1


def down(lay):
    """Stops everything `up` started and removes what it left on the host."""
    if not os.path.isdir(lay.root):
        say(f"nothing to remove at {lay.root}")
        return 0
    started = time.monotonic()
    alive = processes.recorded(lay)
    # The binary this test bed was started with (a later build may differ).
    hyperkube = processes.argv0(lay, "kube-apiserver") or build.hyperkube_if_built()
    if "kube-apiserver" in alive:
        # A last look at the hostPaths in use, in case a volume appeared
        # between the controllers' rounds.
        controllers.record_host_paths(lay, controllers.Api(lay), hostpaths.load(lay))
    killed = processes.stop(lay, ["controllers", "metrics-server", "coredns", "kubelet", "kube-scheduler",
                                  "kube-controller-manager"])
    if "containerd" in alive:
        # Stopping sandboxes through the CRI runs CNI DEL and frees each netns.
        if hyperkube:
            subprocess.run([hyperkube, "cri-reset", lay.cri_endpoint], capture_output=True, text=True)
    killed += processes.stop(lay, ["containerd"])
    processes.kill_shims(lay)
    if hyperkube and "kube-proxy" in alive:
        killed += processes.stop(lay, ["kube-proxy"])
        subprocess.run([hyperkube, "kube-proxy", "--cleanup", "--config", lay.path("kube-proxy-config.json")],
                       capture_output=True, env={**os.environ, "PATH": PATH})
    # The API server drains its watches for a while; its state goes with the
    # state dir, so it gets 5 s.
    killed += processes.stop(lay, list(processes.recorded(lay)), timeout=5)
    if killed:
        say(f"killed (no exit on SIGTERM in time): {', '.join(killed)}")
    host.unmount_under([lay.root])
    host.remove_netns(lay)
    host.remove_run_containerd(lay)
    host.remove_network(lay)
    host.remove_cgroups()
    for path in hostpaths.made_by_workloads(lay):
        shutil.rmtree(path, ignore_errors=True)
    left = host.leftovers(lay)
    shutil.rmtree(lay.root, ignore_errors=True)
    if os.path.exists(lay.root):
        left.append(f"state dir {lay.root}")
    if left:
        say("left behind: " + ", ".join(left))
        return 1
    say(f"removed in {time.monotonic() - started:.1f} s; nothing left")
    return 0

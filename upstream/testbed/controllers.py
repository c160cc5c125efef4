"""The test bed's own controllers, in one process that `up` starts:

- LoadBalancer: gives each Service of type LoadBalancer an address from
  10.213.1.0/24 (routed to the node's interface) by writing
  status.loadBalancer.ingress, as a cloud controller would; kube-proxy then
  routes that address to the Service's pods.
- Host paths: records every hostPath a PersistentVolume or Pod names, and
  whether it existed when first seen, in host-paths.json. `down` removes the
  ones the cluster created (the seed's /redis01 ... static volumes, the
  hostpath provisioner's /tmp/hostpath_pv/*) and never one that existed.

Run as `controllers.py STATE_DIR`.
"""

import json
import os
import subprocess
import sys
import time

from layout import LB_PREFIX, Layout


def get(lay, kinds):
    out = subprocess.run(["kubectl", "--kubeconfig", lay.admin_kubeconfig, "get", kinds, "-A", "-o", "json"],
                         capture_output=True, text=True)
    return json.loads(out.stdout)["items"] if out.returncode == 0 else None


def assign(lay, service, ip):
    status = json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}})
    meta = service["metadata"]
    subprocess.run(["kubectl", "--kubeconfig", lay.admin_kubeconfig, "-n", meta["namespace"], "patch", "service",
                    meta["name"], "--subresource=status", "--type=merge", "-p", status],
                   capture_output=True, text=True)


def balance(lay, items):
    balanced = [i for i in items if i["kind"] == "Service" and i["spec"].get("type") == "LoadBalancer"]
    used = {i.get("ip") for s in balanced for i in s.get("status", {}).get("loadBalancer", {}).get("ingress", [])}
    free = (f"{LB_PREFIX}{n}" for n in range(1, 255) if f"{LB_PREFIX}{n}" not in used)
    for service in balanced:
        if not service.get("status", {}).get("loadBalancer", {}).get("ingress"):
            ip = next(free, None)
            if ip:
                assign(lay, service, ip)


def host_paths(items):
    for item in items:
        spec = item.get("spec", {})
        if "hostPath" in spec:
            yield spec["hostPath"]["path"]
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                yield volume["hostPath"]["path"]


def record_host_paths(lay, items, seen):
    new = {os.path.normpath(p): os.path.exists(p) for p in host_paths(items) if os.path.normpath(p) not in seen}
    if new:
        seen.update(new)
        with open(lay.host_paths + ".tmp", "w") as f:
            json.dump(seen, f, indent=1)
        os.replace(lay.host_paths + ".tmp", lay.host_paths)


def loop(lay):
    seen = {}
    while True:
        items = get(lay, "services,persistentvolumes,pods")
        if items is not None:
            record_host_paths(lay, items, seen)
            balance(lay, items)
        time.sleep(0.5)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    loop(Layout(sys.argv[1]))

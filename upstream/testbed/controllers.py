"""The test bed's own controllers, in one process that `up` starts:

- LoadBalancer: gives each Service of type LoadBalancer an address from
  10.213.1.0/24 (routed to the node's interface) by writing
  status.loadBalancer.ingress, as a cloud controller would; kube-proxy then
  routes that address to the Service's pods.
- Host paths: records every hostPath a PersistentVolume or Pod names, and
  whether it existed when first seen, in host-paths.json. `down` removes the
  ones the cluster created (the seed's /redis01 ... static volumes, the
  hostpath provisioner's /tmp/hostpath_pv/*) and never one that existed.

It talks to the API server directly (HTTPS with the admin certificate): a
kubectl process every half second would cost the node a tenth of a core,
which the drills would feel.

Run as `controllers.py STATE_DIR`.
"""

import http.client
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

import hostpaths
from layout import APISERVER_PORT, LB_PREFIX, NODE_IP, Layout


class Api:
    def __init__(self, lay):
        self.base = f"https://{NODE_IP}:{APISERVER_PORT}"
        self.context = ssl.create_default_context(cafile=f"{lay.pki}/ca.crt")
        self.context.load_cert_chain(f"{lay.pki}/admin.crt", f"{lay.pki}/admin.key")

    def request(self, path, method="GET", body=None, content_type=None):
        request = urllib.request.Request(self.base + path, method=method, data=body)
        if content_type:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, context=self.context, timeout=5) as response:
            return json.load(response)

    def items(self, path):
        """The list's items, or None while the API server does not answer."""
        try:
            return self.request(path)["items"]
        except (OSError, urllib.error.URLError, ValueError):
            return None


def assign(api, service, ip):
    status = json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}).encode()
    meta = service["metadata"]
    path = f"/api/v1/namespaces/{meta['namespace']}/services/{meta['name']}/status"
    try:
        api.request(path, "PATCH", status, "application/merge-patch+json")
    except (OSError, urllib.error.URLError, ValueError):
        pass  # tried again on the next round


def balance(api, services):
    balanced = [s for s in services if s["spec"].get("type") == "LoadBalancer"]
    used = {i.get("ip") for s in balanced for i in s.get("status", {}).get("loadBalancer", {}).get("ingress", [])}
    free = (f"{LB_PREFIX}{n}" for n in range(1, 255) if f"{LB_PREFIX}{n}" not in used)
    for service in balanced:
        if not service.get("status", {}).get("loadBalancer", {}).get("ingress"):
            ip = next(free, None)
            if ip:
                assign(api, service, ip)


def record_host_paths(lay, api, seen):
    """One round of host-path bookkeeping; False while the API does not answer."""
    volumes = api.items("/api/v1/persistentvolumes")
    pods = api.items("/api/v1/pods")
    if volumes is None or pods is None:
        return False
    hostpaths.record(lay, volumes + pods, seen)
    return True


def loop(lay):
    api = Api(lay)
    seen = hostpaths.load(lay)
    while True:
        # One bad answer must not end the process: `down` relies on what it
        # records, and Services on the addresses it gives.
        try:
            record_host_paths(lay, api, seen)
            services = api.items("/api/v1/services")
            if services is not None:
                balance(api, services)
        except Exception as error:  # noqa: BLE001 (logged, tried again next round)
            print(f"controllers: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        time.sleep(0.5)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    loop(Layout(sys.argv[1]))

"""Certificates and keys for one test bed, made with the openssl command line.

One CA signs every certificate. The control plane's own clients (controller
manager, scheduler, kube-proxy, CoreDNS, metrics-server, the LoadBalancer loop)
share the admin identity (group system:masters): the test bed judges what
Kubernetes does with workloads, not its RBAC bootstrap. The kubelet has its
own node identity so that the Node authorizer and NodeRestriction apply as on
a real cluster.
"""

import os
import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _key(name, cwd):
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=cwd)


def _signed(name, subject, cwd, sans=None, server=False, ca="ca"):
    _key(name, cwd)
    ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
           "extendedKeyUsage=" + ("serverAuth,clientAuth" if server else "clientAuth")]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    with open(os.path.join(cwd, f"{name}.ext"), "w") as f:
        f.write("\n".join(ext) + "\n")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "3650", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=cwd)
    os.remove(os.path.join(cwd, f"{name}.csr"))
    os.remove(os.path.join(cwd, f"{name}.ext"))


def _ca(name, subject, cwd):
    _key(name, cwd)
    _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-subj", subject, "-days", "3650", "-sha256",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", f"{name}.crt", cwd=cwd)


def make(pki_dir, node_name, node_ip, service_ip):
    """Writes the CA, the serving and client certificates and the service-account key pair."""
    if os.path.exists(os.path.join(pki_dir, "done")):
        return
    os.makedirs(pki_dir, exist_ok=True)
    _ca("ca", "/CN=runbook-upstream-ca", pki_dir)
    _ca("front-proxy-ca", "/CN=runbook-upstream-front-proxy-ca", pki_dir)
    sans = [f"IP:{ip}" for ip in ["127.0.0.1", node_ip, service_ip]] + [
        f"DNS:{n}" for n in ["localhost", node_name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                             "kubernetes.default.svc.cluster.local"]]
    _signed("apiserver", "/CN=kube-apiserver", pki_dir, sans, server=True)
    _signed("admin", "/O=system:masters/CN=runbook-upstream-admin", pki_dir)
    _signed("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", pki_dir)
    _signed("kubelet", f"/O=system:nodes/CN=system:node:{node_name}", pki_dir,
            [f"IP:{node_ip}", f"DNS:{node_name}"], server=True)
    _signed("front-proxy-client", "/CN=front-proxy-client", pki_dir, ca="front-proxy-ca")
    _signed("metrics-server", "/CN=metrics-server", pki_dir,
            ["DNS:metrics-server.kube-system.svc", f"IP:{node_ip}"], server=True)
    _key("sa", pki_dir)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki_dir)
    open(os.path.join(pki_dir, "done"), "w").close()


def kubeconfig(path, server, pki_dir, user, context):
    """A kubeconfig with embedded file paths for one client identity."""
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: runbook-upstream
  cluster:
    server: {server}
    certificate-authority: {pki_dir}/ca.crt
users:
- name: {user}
  user:
    client-certificate: {pki_dir}/{user}.crt
    client-key: {pki_dir}/{user}.key
contexts:
- name: {context}
  context: {{cluster: runbook-upstream, user: {user}}}
current-context: {context}
"""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)

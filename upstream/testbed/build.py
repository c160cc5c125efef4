"""Builds what the test bed runs, from pinned sources, caching the results.

- hyperkube (upstream/hyperkube): every Kubernetes component, etcd, CoreDNS and
  metrics-server in one static binary, built with the Go toolchain from the Go
  module proxy. GOMODCACHE and GOCACHE live in fixed dirs under the cache, and
  the finished binary is kept under a key made of the version and the recipe
  (go.mod, go.sum, the Go files, the linker flags, the Go version): a changed
  recipe builds anew, an unchanged one reuses the binary at once.
- pause: the sandbox image's program, compiled from the pause.c that ships in
  the k8s.io/kubernetes module.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time

from layout import CACHE, REPO, VERSION

HYPERKUBE_SRC = os.path.join(REPO, "upstream", "hyperkube")


def go_env():
    env = dict(os.environ)
    env.update(
        GOMODCACHE=os.path.join(CACHE, "go-mod"),
        GOCACHE=os.path.join(CACHE, "go-build"),
        GOFLAGS="-mod=readonly",
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
    )
    return env


def ldflags():
    """The version stamps Kubernetes' own build sets, so /version tells the truth."""
    major, minor = VERSION.lstrip("v").split(".")[:2]
    stamps = {"gitVersion": VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
              "buildDate": "2026-01-01T00:00:00Z"}
    flags = ["-s", "-w"]
    for key, value in stamps.items():
        for package in ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]:
            flags.append(f"-X {package}.{key}={value}")
    return " ".join(flags)


def recipe_key():
    digest = hashlib.sha256()
    for name in sorted(os.listdir(HYPERKUBE_SRC)):
        if name.endswith((".go", ".mod", ".sum")):
            with open(os.path.join(HYPERKUBE_SRC, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    digest.update(ldflags().encode())
    go_version = subprocess.run(["go", "version"], capture_output=True, text=True, check=True, env=go_env()).stdout
    digest.update(go_version.encode())
    return digest.hexdigest()[:16]


def hyperkube_path():
    return os.path.join(CACHE, "bin", f"hyperkube-{VERSION}-{recipe_key()}", "hyperkube")


def hyperkube_if_built():
    path = hyperkube_path()
    return path if os.path.exists(path) else None


def hyperkube():
    """The path of the built hyperkube, building it first if needed."""
    binary = hyperkube_path()
    out_dir = os.path.dirname(binary)
    if os.path.exists(binary):
        return binary
    print(f"upstream: building Kubernetes {VERSION}, etcd, CoreDNS and metrics-server "
          f"(about 6 minutes on 2 cores when nothing is cached) ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(["go", "mod", "download"], cwd=HYPERKUBE_SRC, env=go_env(), check=True)
    subprocess.run(["go", "build", "-trimpath", "-ldflags", ldflags(), "-o", binary + ".tmp", "."],
                   cwd=HYPERKUBE_SRC, env=go_env(), check=True)
    os.replace(binary + ".tmp", binary)
    print(f"upstream: built {binary} in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    return binary


def pause():
    """The pause program, compiled statically from Kubernetes' own pause.c."""
    source = os.path.join(CACHE, "go-mod", "k8s.io", f"kubernetes@{VERSION}", "build", "pause", "linux", "pause.c")
    if not os.path.exists(source):
        subprocess.run(["go", "mod", "download", f"k8s.io/kubernetes@{VERSION}"], cwd=HYPERKUBE_SRC,
                       env=go_env(), check=True)
    binary = os.path.join(CACHE, "bin", f"pause-{VERSION}")
    if not os.path.exists(binary):
        os.makedirs(os.path.dirname(binary), exist_ok=True)
        subprocess.run(["gcc", "-static", "-Os", "-DVERSION=3.10", "-o", binary + ".tmp", source], check=True)
        os.replace(binary + ".tmp", binary)
    return binary


def counter_service():
    """The counter-service binary of this checkout (the image the counter-service scenario runs)."""
    subprocess.run(["cargo", "build", "--quiet", "-p", "counter-service"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "debug", "counter-service")


def clean():
    """Removes the cache (the next `up` builds from nothing). Go makes its
    module cache read-only, so `go clean -modcache` goes first."""
    subprocess.run(["go", "clean", "-modcache"], env=go_env(), check=False)
    shutil.rmtree(CACHE, ignore_errors=True)

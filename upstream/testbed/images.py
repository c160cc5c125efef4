"""Container images built from files on this machine, never pulled.

There is no registry here, so each image is a docker-archive tar (the format
`docker save` writes) made from host files and imported into containerd under
the exact names that scenarios, fixtures and tests use. Redis images carry
Debian's Redis binaries with their libraries; alpine and busybox tags get a
busybox userland (busybox-static) and Debian tags a small Debian userland,
never the host's root.
"""

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time

# Every name a scenario, fixture or test uses, by userland. An image is built
# once per userland and imported under all of its names.
REDIS_ALPINE = ["redis:alpine", "redis:5.0.1-alpine", "redis:6.2-alpine", "redis:7.4.1-alpine", "redis:7-alpine"]
REDIS_DEBIAN = ["redis:5", "redis:6", "redis:7", "redis:7.4", "redis:7.4.1", "redis:bookworm"]
BUSYBOX = ["busybox:1.36", "busybox:stable"]
ALPINE = ["alpine:3.20", "alpine:3"]
PAUSE = ["registry.k8s.io/pause:3.10"]
COUNTER = ["runbook/counter-service:0.1.0"]

# The Debian userland of debian-based images: these programs and whatever
# libraries they load.
DEBIAN_TOOLS = [
    "/bin/sh", "/bin/dash", "/bin/bash", "/bin/cat", "/bin/ls", "/bin/echo", "/bin/grep", "/bin/sed",
    "/usr/bin/mawk", "/bin/hostname", "/bin/sleep", "/usr/bin/id", "/usr/bin/head", "/usr/bin/tail",
    "/bin/cp", "/bin/mv", "/bin/rm", "/bin/mkdir", "/bin/chmod", "/bin/chown", "/usr/bin/env", "/bin/date",
    "/bin/touch", "/usr/bin/wc", "/usr/bin/tr", "/usr/bin/cut", "/usr/bin/sort", "/usr/bin/uniq",
    "/usr/bin/find", "/usr/bin/xargs", "/usr/bin/printf", "/usr/bin/test", "/bin/true", "/bin/false",
    "/bin/kill", "/bin/ln", "/bin/readlink", "/usr/bin/dirname", "/usr/bin/basename", "/bin/uname",
    "/bin/ps", "/usr/bin/timeout", "/bin/df", "/bin/mount", "/usr/bin/stat", "/usr/bin/tee", "/bin/pwd",
]

REDIS_REAL = "/usr/bin/redis-check-rdb"  # redis-server and redis-sentinel are links to it on Debian


def redis_version():
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("v=")[1].split()[0]


class Layer:
    """One image layer, gathered in memory as a tar."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.GNU_FORMAT)
        self.seen = set()

    def _parents(self, path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/" + "/".join(parts[:i]))

    def dir(self, path, mode=0o755):
        name = path.strip("/")
        if not name or name in self.seen:
            return
        self._parents(path)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
        self.tar.addfile(info)
        self.seen.add(name)

    def file(self, path, data, mode=0o644):
        name = path.strip("/")
        if name in self.seen:
            return
        self._parents(path)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, 0
        self.tar.addfile(info, io.BytesIO(data))
        self.seen.add(name)

    def symlink(self, path, target):
        name = path.strip("/")
        if name in self.seen:
            return
        self._parents(path)
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime, info.mode = tarfile.SYMTYPE, target, 0, 0o777
        self.tar.addfile(info)
        self.seen.add(name)

    def host_file(self, host_path, path=None):
        """Copies a host file (following links), keeping its mode."""
        real = os.path.realpath(host_path)
        with open(real, "rb") as f:
            self.file(path or host_path, f.read(), os.stat(real).st_mode & 0o7777)

    def program(self, host_path, path=None):
        """Copies a program and every shared library it loads, at their host paths."""
        self.host_file(host_path, path)
        for lib in shared_libraries(host_path):
            self.host_file(lib)

    def finish(self):
        self.tar.close()
        return self.buf.getvalue()


def shared_libraries(program):
    out = subprocess.run(["ldd", program], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            libs.append(parts[2])
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def base_files(layer, os_release):
    for d in ["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/etc", "/root", "/proc", "/sys", "/dev",
              "/run", "/var", "/home"]:
        layer.dir(d)
    layer.dir("/tmp", 0o1777)
    layer.file("/etc/os-release", os_release.encode())
    layer.file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nredis:x:999:1000::/home/redis:/bin/sh\n"
               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    layer.file("/etc/group", b"root:x:0:\nredis:x:1000:\nnogroup:x:65534:\n")
    layer.file("/etc/nsswitch.conf", b"hosts: files dns\n")


def busybox_userland(layer, alpine=False):
    # Debian's busybox-static is built without `netstat -p` (the seed's
    # `netstat -ntupl`); Alpine's and Docker's busybox have it. net-tools'
    # netstat prints the same columns, so it stands in for that one applet.
    layer.program("/bin/netstat")
    if alpine:
        # Alpine's base has musl-utils' getent (scripts use `getent hosts`);
        # glibc's behaves the same for hosts and passwd lookups.
        layer.program("/usr/bin/getent")
    layer.program("/bin/busybox")  # busybox-static has no libraries; a dynamic one brings its own
    applets = subprocess.run(["/bin/busybox", "--list-full"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        layer.symlink("/" + applet, "/bin/busybox")


def debian_userland(layer):
    for tool in DEBIAN_TOOLS:
        if os.path.exists(tool):
            layer.program(tool)
    layer.symlink("/usr/bin/awk", "/usr/bin/mawk")


# The official image's docker-entrypoint.sh, less the switch to the redis user
# (the images here run Redis as root; docs/upstream.md says so).
ENTRYPOINT = b"""#!/bin/sh
set -e
# first arg is `-f` or `--some-option`, or first arg is `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
\tset -- redis-server "$@"
fi
um="$(umask)"
if [ "$um" = '0022' ]; then
\tumask 0077
fi
exec "$@"
"""

# The official image builds Redis with protected mode off by default; Debian's
# binary has it on. This wrapper restores the official default: it adds
# `--protected-mode no` unless the config file or the arguments set it.
PROTECTED_MODE_WRAPPER = """#!/bin/sh
for a in "$@"; do
\tcase "$a" in --protected-mode) exec {real} "$@";; esac
done
if [ -f "$1" ] && grep -qi '^[[:space:]]*protected-mode' "$1"; then
\texec {real} "$@"
fi
exec {real} "$@" --protected-mode no
"""


def redis_layer(userland, version):
    layer = Layer()
    if userland == "alpine":
        base_files(layer, f'NAME="Alpine Linux"\nID=alpine\nPRETTY_NAME="runbook stand-in for redis:alpine: '
                          f'busybox userland, Debian Redis {version}"\n')
        busybox_userland(layer, alpine=True)
    else:
        base_files(layer, f'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nPRETTY_NAME="runbook stand-in '
                          f'for redis (Debian 12 userland, Redis {version})"\n')
        debian_userland(layer)
    layer.program(REDIS_REAL, "/usr/local/lib/redis/redis-check-rdb")
    for name in ["redis-server", "redis-sentinel", "redis-check-aof"]:
        layer.symlink(f"/usr/local/lib/redis/{name}", "redis-check-rdb")
    for name in ["redis-server", "redis-sentinel"]:
        wrapper = PROTECTED_MODE_WRAPPER.format(real=f"/usr/local/lib/redis/{name}")
        layer.file(f"/usr/local/bin/{name}", wrapper.encode(), 0o755)
    layer.program("/usr/bin/redis-cli", "/usr/local/bin/redis-cli")
    layer.program("/usr/bin/redis-benchmark", "/usr/local/bin/redis-benchmark")
    layer.file("/usr/local/bin/docker-entrypoint.sh", ENTRYPOINT, 0o755)
    layer.dir("/data")
    return layer.finish(), {
        "Entrypoint": ["docker-entrypoint.sh"],
        "Cmd": ["redis-server"],
        "WorkingDir": "/data",
        "ExposedPorts": {"6379/tcp": {}},
        "Volumes": {"/data": {}},
    }


def busybox_layer(alpine):
    layer = Layer()
    if alpine:
        base_files(layer, 'NAME="Alpine Linux"\nID=alpine\nPRETTY_NAME="runbook stand-in for alpine: busybox '
                          'userland"\n')
    else:
        base_files(layer, 'NAME="BusyBox"\nID=busybox\nPRETTY_NAME="runbook stand-in: busybox-static userland"\n')
    busybox_userland(layer, alpine)
    return layer.finish(), {"Cmd": ["sh"]}


def pause_layer(pause_binary):
    layer = Layer()
    layer.host_file(pause_binary, "/pause")
    return layer.finish(), {"Entrypoint": ["/pause"]}


def counter_layer(binary):
    layer = Layer()
    base_files(layer, 'NAME="Debian GNU/Linux"\nID=debian\nPRETTY_NAME="runbook counter-service"\n')
    layer.program(binary, "/usr/local/bin/counter-service")
    return layer.finish(), {"Entrypoint": ["/usr/local/bin/counter-service"], "ExposedPorts": {"8080/tcp": {}},
                            "User": "65534"}


def docker_archive(layer_tar, config, tags):
    """A `docker save` archive of a one-layer image with these tags."""
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    full = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], **config},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "runbook upstream test bed"}],
    }
    config_bytes = json.dumps(full, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": tags, "Layers": ["layer.tar"]}]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in [("layer.tar", layer_tar), (config_name, config_bytes),
                           ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_all(out_dir, pause_binary, counter_binary):
    """Writes one archive per image into out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    version = redis_version()
    images = {
        "redis-alpine": (redis_layer("alpine", version), REDIS_ALPINE),
        "redis-debian": (redis_layer("debian", version), REDIS_DEBIAN),
        "busybox": (busybox_layer(alpine=False), BUSYBOX),
        "alpine": (busybox_layer(alpine=True), ALPINE),
        "pause": (pause_layer(pause_binary), PAUSE),
    }
    if counter_binary:
        images["counter-service"] = (counter_layer(counter_binary), COUNTER)
    paths = []
    for name, ((layer_tar, config), tags) in images.items():
        path = os.path.join(out_dir, name + ".tar")
        with open(path + ".tmp", "wb") as f:
            f.write(docker_archive(layer_tar, config, tags))
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    start = time.time()
    print(build_all(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None), time.time() - start)

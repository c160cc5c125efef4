"""Host directories that workloads' hostPath volumes make, and which of them
`down` removes.

The controllers process records every hostPath a PersistentVolume or Pod
names. Whether the directory was there before the test bed is decided by its
birth time, not by whether it exists when first seen: a poll can come after
the kubelet (DirectoryOrCreate) or containerd (a missing bind-mount source)
already made it, and a directory made then still belongs to the test bed.
"""

import json
import os
import subprocess

# Where the controller manager's hostpath provisioner makes volumes.
HOSTPATH_PROVISIONER_DIR = "/tmp/hostpath_pv"

# Host directories a workload's hostPath may name but `down` must never remove.
PROTECTED = {"/", "/tmp", "/var", "/var/tmp", "/etc", "/root", "/home", "/usr", "/proc", "/sys", "/dev", "/run",
             "/boot", "/opt", "/srv", "/mnt", "/media", "/lib", "/lib64", "/bin", "/sbin", "/work", "/data"}


def birth_time(path):
    """The path's creation time (statx), or None where the file system does
    not record one. Python 3.11 has no st_birthtime on Linux; coreutils'
    stat reads it."""
    out = subprocess.run(["stat", "-c", "%W", path], capture_output=True, text=True)
    try:
        born = int(out.stdout.strip())
    except ValueError:
        return None
    return born if born > 0 else None


def existed_before(path, boot_time):
    """Whether `path` was on the host before the test bed booted at
    `boot_time` (seconds since the epoch)."""
    if not os.path.exists(path):
        return False
    born = birth_time(path)
    return born is None or born < int(boot_time)


def named_in(items):
    """Every hostPath that PersistentVolumes or Pods in `items` name."""
    for item in items:
        spec = item.get("spec", {})
        if "hostPath" in spec:
            yield spec["hostPath"]["path"]
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                yield volume["hostPath"]["path"]


def boot_time(lay):
    try:
        with open(lay.host_state) as f:
            return json.load(f).get("boot_time", 0)
    except (OSError, ValueError):
        return 0


def load(lay):
    try:
        with open(lay.host_paths) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def record(lay, items, seen):
    """Adds the hostPaths `items` name to `seen` ({path: existed before}) and
    to host-paths.json."""
    booted = boot_time(lay)
    new = {}
    for path in named_in(items):
        path = os.path.normpath(path)
        if path not in seen and path not in new:
            new[path] = existed_before(path, booted)
    if new:
        seen.update(new)
        with open(lay.host_paths + ".tmp", "w") as f:
            json.dump(seen, f, indent=1)
        os.replace(lay.host_paths + ".tmp", lay.host_paths)


def made_by_workloads(lay):
    """Host directories that workloads' hostPath volumes created: those
    recorded (or, checked again now, born after the boot), plus the hostpath
    provisioner's root if it did not exist before `up`."""
    booted = boot_time(lay)
    created = [p for p, existed in load(lay).items() if not existed or not existed_before(p, booted)]
    try:
        with open(lay.host_state) as f:
            if not json.load(f).get("hostpath_pv_existed", True):
                created.append(HOSTPATH_PROVISIONER_DIR)
    except (OSError, ValueError):
        pass
    return sorted(p for p in created if p not in PROTECTED and not p.startswith(lay.root) and os.path.isdir(p))

"""Starting the test bed's processes, and ending exactly those.

Each process runs in a session of its own (it outlives `up`), logs to
logs/NAME.log and has its PID in pids/NAME.pid. `stop` signals a PID only if
/proc still shows the program it started (the state dir or the hyperkube path
in its command line), so a PID reused by the system is never touched.
"""

import os
import signal
import subprocess
import time


# The signal that interrupted `up`, once one has (set by its handler).
INTERRUPTED = None


def interruption_point():
    """Raises KeyboardInterrupt if `up` was interrupted, even when the handler's
    own exception was lost in a finalizer."""
    if INTERRUPTED is not None:
        raise KeyboardInterrupt(f"signal {INTERRUPTED}")


def start(lay, name, argv, env=None):
    interruption_point()
    os.makedirs(lay.logs, exist_ok=True)
    os.makedirs(lay.pids, exist_ok=True)
    log = open(lay.log(name), "ab")
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=full_env, cwd=lay.root)
    with open(lay.pid_file(name), "w") as f:
        f.write(f"{proc.pid}\n{' '.join(argv)}\n")
    return proc.pid


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def recorded(lay):
    """{name: pid} of recorded processes still running as we started them."""
    alive = {}
    if not os.path.isdir(lay.pids):
        return alive
    for entry in sorted(os.listdir(lay.pids)):
        with open(os.path.join(lay.pids, entry)) as f:
            lines = f.read().splitlines()
        pid, argv = int(lines[0]), lines[1] if len(lines) > 1 else ""
        cmdline = _cmdline(pid)
        if cmdline is None or _zombie(pid):
            continue
        # An empty command line: the process is still in exec(), just started.
        if cmdline == "" or cmdline.split(" ")[:1] == argv.split(" ")[:1]:
            alive[entry[:-4]] = pid
    return alive


def argv0(lay, name):
    """The program a recorded process was started as (None when not recorded)."""
    try:
        with open(lay.pid_file(name)) as f:
            return f.read().splitlines()[1].split(" ")[0]
    except (OSError, IndexError):
        return None


def running(lay, name):
    return name in recorded(lay)


def stop(lay, names, timeout=15.0):
    """Ends the named processes (SIGTERM, then SIGKILL after the timeout);
    returns the names of those that needed SIGKILL."""
    pids = {n: p for n, p in recorded(lay).items() if n in names}
    for pid in pids.values():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_cmdline(p) is not None and not _zombie(p) for p in pids.values()):
        time.sleep(0.1)
    killed = [n for n, pid in pids.items() if _cmdline(pid) is not None and not _zombie(pid)]
    for name in killed:
        _signal(pids[name], signal.SIGKILL)
    for name in names:
        try:
            os.remove(lay.pid_file(name))
        except OSError:
            pass
    return killed


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def shims(lay):
    """PIDs of containerd shims serving this test bed's containerd (they
    re-parent to init, so they are found by the socket in their arguments)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cmdline = _cmdline(int(entry)) or ""
            if "containerd-shim" in cmdline and lay.containerd_sock in cmdline:
                found.append(int(entry))
    return found


def kill_shims(lay):
    for pid in shims(lay):
        _signal(pid, signal.SIGKILL)


def wait_for(what, probe, timeout, interval=0.25, alive=None):
    """Polls probe() until it returns a true value; raises with `what` on
    timeout, or at once when the process `alive` = (layout, name) has died."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        interruption_point()
        if alive and not running(*alive):
            raise RuntimeError(f"{what}: the process exited (see {alive[0].log(alive[1])})")
        try:
            result = probe()
            if result:
                return result
        except Exception as err:  # the probe's own failure is the reason to wait
            last = err
        time.sleep(interval)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s" + (f" ({last})" if last else ""))

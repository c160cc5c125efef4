"""scripts/upstream: a real single-node Kubernetes on this machine, built from
upstream sources. See docs/upstream.md.

    scripts/upstream up     [--state-dir DIR]   build what is missing, boot, write DIR/kubeconfig
    scripts/upstream down   [--state-dir DIR]   stop everything and remove every trace
    scripts/upstream status [--state-dir DIR]   what runs, and whether the node is Ready
    scripts/upstream build                      build (or find cached) binaries only
    scripts/upstream clean-cache                remove the build cache
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import build  # noqa: E402
import cluster  # noqa: E402
import processes  # noqa: E402
from layout import REPO, Layout  # noqa: E402


def interrupted(signum, frame):
    # Python drops an exception raised in a finalizer (a Popen's __del__, say),
    # so one raised here can vanish if the signal lands in one; the boot then
    # ran on (a CI run). processes.interruption_point() raises it again.
    processes.INTERRUPTED = signum
    raise KeyboardInterrupt(f"signal {signum}")


def hold_signals():
    """A second Ctrl-C or SIGTERM must not cut a teardown short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    processes.INTERRUPTED = None  # the teardown's own waits must run


def main():
    parser = argparse.ArgumentParser(prog="scripts/upstream", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "build", "clean-cache"])
    parser.add_argument("--state-dir", default=os.path.join(REPO, ".upstream"),
                        help="where the cluster's state, logs and kubeconfig live (default: .upstream/)")
    args = parser.parse_args()
    lay = Layout(args.state_dir)
    if args.command in ("up", "down") and os.geteuid() != 0:
        print("upstream: needs root (containerd, the kubelet and kube-proxy change the host)", file=sys.stderr)
        return 2
    if args.command == "up":
        # SIGTERM, like Ctrl-C, ends a boot by removing what it started.
        signal.signal(signal.SIGTERM, interrupted)
        try:
            cluster.up(lay)
        except (Exception, KeyboardInterrupt) as err:
            cluster.say(f"up failed: {err!r}" if isinstance(err, KeyboardInterrupt) else f"up failed: {err}")
            cluster.print_log_tails(lay)
            # Set to look around after a failed boot; `down` removes it later.
            if not os.environ.get("RUNBOOK_UPSTREAM_KEEP_ON_FAILURE"):
                cluster.say("removing what was started")
                hold_signals()
                cluster.down(lay)
            return 1
        return 0
    if args.command == "down":
        hold_signals()
        return cluster.down(lay)
    if args.command == "status":
        return cluster.status(lay)
    if args.command == "build":
        print(build.hyperkube())
        print(build.pause())
        return 0
    build.clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())

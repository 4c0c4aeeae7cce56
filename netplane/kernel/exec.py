"""Running a command inside a pod: its network namespace, and a private mount namespace in
which the pod's own resolv.conf and hosts are bind-mounted over the node's.

util-linux's nsenter and unshare do the namespace work: Python 3.11 has no os.setns or
os.unshare, and doing it with ctypes in a preexec_fn is unsafe in a threaded process.
"""

from __future__ import annotations

from netplane.kernel.netns import path

# Positional arguments: the hostname ("" keeps it), N, then N (source, target) pairs, then
# the command. The hostname is written to /proc in the fresh UTS namespace.
_MOUNT_AND_EXEC = ('h=$1; n=$2; shift 2; while [ "$n" -gt 0 ]; do mount --bind "$1" "$2" || exit 127; '
                   'shift 2; n=$((n-1)); done; if [ -n "$h" ]; then echo "$h" > /proc/sys/kernel/hostname; '
                   'fi; exec "$@"')


def in_pod(netns: str, argv: list[str], binds: dict[str, str] | None = None,
           hostname: str = "") -> list[str]:
    """The argv that runs `argv` in `netns`, with each `binds` source file mounted over its
    target (e.g. {"/pods/x/resolv.conf": "/etc/resolv.conf"}) and `hostname` set, both for
    that process tree only (private mount and UTS namespaces)."""
    enter = ["nsenter", f"--net={path(netns)}", "--"]
    if not binds and not hostname:
        return [*enter, *argv]
    binds = binds or {}
    pairs = [part for src, dst in binds.items() for part in (src, dst)]
    return [*enter, "unshare", "--mount", "--uts", "--propagation", "private", "--",
            "sh", "-c", _MOUNT_AND_EXEC, "sh", hostname, str(len(binds)), *pairs, *argv]

"""Running a command inside a pod: its network namespace, and a private mount namespace in
which the pod's own resolv.conf and hosts are bind-mounted over the node's.

util-linux's nsenter and unshare do the namespace work: Python 3.11 has no os.setns or
os.unshare, and doing it with ctypes in a preexec_fn is unsafe in a threaded process.
"""

from __future__ import annotations

from netplane.kernel.netns import path

# Positional arguments: N, then N (source, target) pairs, then the command.
_MOUNT_AND_EXEC = ('n=$1; shift; while [ "$n" -gt 0 ]; do mount --bind "$1" "$2" || exit 127; '
                   'shift 2; n=$((n-1)); done; exec "$@"')


def in_pod(netns: str, argv: list[str], binds: dict[str, str] | None = None) -> list[str]:
    """The argv that runs `argv` in `netns`, with each `binds` source file mounted over its
    target (e.g. {"/pods/x/resolv.conf": "/etc/resolv.conf"}) for that process tree only."""
    enter = ["nsenter", f"--net={path(netns)}", "--"]
    if not binds:
        return [*enter, *argv]
    pairs = [part for src, dst in binds.items() for part in (src, dst)]
    return [*enter, "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", _MOUNT_AND_EXEC, "sh", str(len(binds)), *pairs, *argv]

"""Command lines that run a process inside a network namespace, optionally with a private
mount namespace in which given files are bind-mounted over others (a pod's own resolv.conf
and hosts over the node's) and a UTS namespace with the pod's hostname.

They prefix the command with util-linux's `nsenter` and `unshare` rather than switching
namespaces in a `preexec_fn`: Python 3.11 has no os.setns/os.unshare, and a preexec_fn (ctypes
or not) runs Python between fork and exec, which can deadlock in a threaded parent such as
the kubelet. An argv is also something a user can read in `ps` and paste into a shell.
"""

from __future__ import annotations

from netplane.kernel.netns import path

# Positional arguments: the hostname ("" keeps it), N, then N (source, target) pairs, then
# the command. The hostname is written to /proc in the fresh UTS namespace.
_MOUNT_AND_EXEC = ('h=$1; n=$2; shift 2; while [ "$n" -gt 0 ]; do mount --bind "$1" "$2" || exit 127; '
                   'shift 2; n=$((n-1)); done; if [ -n "$h" ]; then echo "$h" > /proc/sys/kernel/hostname; '
                   'fi; exec "$@"')


def in_netns(netns: str, argv: list[str]) -> list[str]:
    """The argv that runs `argv` in network namespace `netns` (everything else shared)."""
    if not argv:
        raise ValueError("an empty command")
    return ["nsenter", f"--net={path(netns)}", "--", *argv]


def in_pod(netns: str, argv: list[str], binds: dict[str, str] | None = None,
           hostname: str = "") -> list[str]:
    """The argv that runs `argv` in `netns`, with each `binds` source file mounted over its
    target (e.g. {"/pods/x/resolv.conf": "/etc/resolv.conf"}) and `hostname` set, both for
    that process tree only (private mount and UTS namespaces)."""
    if not binds and not hostname:
        return in_netns(netns, argv)
    if not argv:
        raise ValueError("an empty command")
    binds = binds or {}
    pairs = [part for src, dst in binds.items() for part in (src, dst)]
    return in_netns(netns, ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                            "sh", "-c", _MOUNT_AND_EXEC, "sh", hostname, str(len(binds)), *pairs, *argv])

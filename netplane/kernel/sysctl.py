"""Per-namespace sysctls (net.*): written through /proc/sys by a thread inside the namespace,
since /proc/sys/net shows the namespace of the task that opens it."""

from __future__ import annotations

from netplane.kernel.netns import run_in


def _file(key: str) -> str:
    parts = key.replace(".", "/").split("/") if "/" not in key else key.split("/")
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid sysctl key {key!r}")
    return "/proc/sys/" + "/".join(parts)


def _write(file: str, value: str) -> None:
    with open(file, "w") as f:
        f.write(value)


def _read(file: str) -> str:
    with open(file) as f:
        return f.read().strip()


def write(netns: str | None, key: str, value: str) -> None:
    """Sets `key` (dotted, e.g. net.ipv4.ip_forward, or slashed when a part holds a dot,
    e.g. net/ipv4/conf/eth0.100/forwarding) in namespace `netns` (None: the caller's)."""
    file = _file(key)
    if netns is None:
        _write(file, value)
    else:
        run_in(netns, _write, file, value)


def read(netns: str | None, key: str) -> str:
    file = _file(key)
    return _read(file) if netns is None else run_in(netns, _read, file)

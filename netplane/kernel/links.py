"""Links over rtnetlink: veth pairs, bridges and their ports, state, MTU, moving a link to
another namespace. Every function takes an open handle (`netns.ipr(...)`) for the namespace
the link is in, so a caller does several steps over one socket."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netplane.kernel.netns import path as netns_path

IFNAMSIZ = 15  # the kernel's limit on an interface name, without the NUL
_ENODEV = 19


def check_name(ifname: str) -> str:
    """`ifname` if the kernel would take it as an interface name, else ValueError."""
    if not 0 < len(ifname) <= IFNAMSIZ or "/" in ifname or ":" in ifname or ifname in (".", "..") \
            or any(c.isspace() for c in ifname):
        raise ValueError(f"invalid interface name {ifname!r} (at most {IFNAMSIZ} characters, "
                         "no '/', ':' or spaces)")
    return ifname


def index(h: IPRoute, ifname: str) -> int:
    found = h.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no link named {ifname}")
    return int(found[0])


def exists(h: IPRoute, ifname: str) -> bool:
    return bool(h.link_lookup(ifname=ifname))


def names(h: IPRoute) -> list[str]:
    return sorted(str(link.get("ifname")) for link in h.get_links())


def is_up(h: IPRoute, ifname: str) -> bool:
    (link,) = h.get_links(index(h, ifname))
    return bool(link["flags"] & 1)  # IFF_UP


def up(h: IPRoute, ifname: str) -> None:
    h.link("set", index=index(h, ifname), state="up")


def down(h: IPRoute, ifname: str) -> None:
    h.link("set", index=index(h, ifname), state="down")


def mtu(h: IPRoute, ifname: str) -> int:
    (link,) = h.get_links(index(h, ifname))
    return int(link.get("mtu"))


def set_mtu(h: IPRoute, ifname: str, value: int) -> None:
    h.link("set", index=index(h, ifname), mtu=value)


def rename(h: IPRoute, ifname: str, new_name: str) -> None:
    """Renames a link (the kernel wants it down for that; it is left down)."""
    idx = index(h, ifname)
    h.link("set", index=idx, state="down")
    h.link("set", index=idx, ifname=check_name(new_name))


def delete(h: IPRoute, ifname: str) -> bool:
    """Deletes `ifname` if present (a veth takes its peer with it); True if it was there."""
    found = h.link_lookup(ifname=ifname)
    if not found:
        return False
    try:
        h.link("del", index=found[0])
    except NetlinkError as exc:
        if exc.code != _ENODEV:  # gone meanwhile, e.g. with its peer
            raise
        return False
    return True


@contextlib.contextmanager
def _netns_fd(name: str) -> Iterator[int]:
    # Opened here rather than by pyroute2 (which accepts a name), so it is closed at once.
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def veth(h: IPRoute, ifname: str, peer: str, peer_netns: str | None = None) -> None:
    """A veth pair: `ifname` in the handle's namespace, `peer` created directly in namespace
    `peer_netns` (so it can take a name, such as eth0, that is taken where `ifname` lives).
    Both are left down."""
    check_name(ifname)
    check_name(peer)
    if peer_netns is None:
        h.link("add", ifname=ifname, kind="veth", peer={"ifname": peer})
        return
    with _netns_fd(peer_netns) as fd:
        h.link("add", ifname=ifname, kind="veth", peer={"ifname": peer, "net_ns_fd": fd})


def move(h: IPRoute, ifname: str, netns: str) -> None:
    """Moves `ifname` into namespace `netns` (it arrives down, without addresses)."""
    with _netns_fd(netns) as fd:
        h.link("set", index=index(h, ifname), net_ns_fd=fd)


def bridge(h: IPRoute, ifname: str) -> bool:
    """A bridge named `ifname`, up; True if it was created now."""
    created = False
    if not exists(h, ifname):
        h.link("add", ifname=check_name(ifname), kind="bridge")
        idx = index(h, ifname)
        # Left alone, a bridge takes the lowest MAC of its ports, so its MAC (the pods'
        # gateway's) would change as pods come and go, leaving stale ARP entries in every
        # pod. Setting the address explicitly, even to the same value, pins it.
        (link,) = h.get_links(idx)
        h.link("set", index=idx, address=link.get("address"))
        created = True
    up(h, ifname)
    return created


def master(h: IPRoute, ifname: str) -> str | None:
    """The name of the bridge `ifname` is a port of, if any."""
    (link,) = h.get_links(index(h, ifname))
    master_index = link.get("master")
    if not master_index:
        return None
    (bridge_link,) = h.get_links(master_index)
    return str(bridge_link.get("ifname"))


def attach(h: IPRoute, ifname: str, bridge_name: str) -> None:
    """Makes `ifname` a port of bridge `bridge_name` (both in the handle's namespace)."""
    h.link("set", index=index(h, ifname), master=index(h, bridge_name))


def detach(h: IPRoute, ifname: str) -> None:
    h.link("set", index=index(h, ifname), master=0)


def set_hairpin(h: IPRoute, ifname: str, on: bool = True) -> None:
    """Hairpin mode on a bridge port: a frame may go back out of the port it came in by.
    A pod that reaches a Service whose chosen endpoint is itself needs that (kubelet's
    hairpin-veth mode)."""
    h.brport("set", index=index(h, ifname), mode=1 if on else 0)


def hairpin(h: IPRoute, ifname: str) -> bool:
    (port,) = h.brport("show", index=index(h, ifname))
    protinfo = port.get_attr("IFLA_PROTINFO")
    return bool(protinfo and protinfo.get_attr("IFLA_BRPORT_MODE"))

"""Links inside namespaces: bridges, veth pairs, addresses and routes, over netlink."""

from __future__ import annotations

from netplane.kernel.netns import ipr


def _index(handle: object, ifname: str) -> int:
    found = handle.link_lookup(ifname=ifname)  # type: ignore[attr-defined]
    if not found:
        raise LookupError(f"no link named {ifname}")
    return int(found[0])


def exists(ns: str | None, ifname: str) -> bool:
    with ipr(ns) as h:
        return bool(h.link_lookup(ifname=ifname))


def up(ns: str | None, ifname: str) -> None:
    with ipr(ns) as h:
        h.link("set", index=_index(h, ifname), state="up")


def bridge(ns: str | None, ifname: str, address: str | None = None, prefixlen: int = 24) -> None:
    """A bridge, up, optionally with an address (idempotent)."""
    with ipr(ns) as h:
        if not h.link_lookup(ifname=ifname):
            h.link("add", ifname=ifname, kind="bridge")
        idx = _index(h, ifname)
        if address and not h.get_addr(index=idx, address=address):
            h.addr("add", index=idx, address=address, prefixlen=prefixlen)
        h.link("set", index=idx, state="up")


def veth(ns: str | None, ifname: str, peer_ns: str, peer_ifname: str, *, master: str | None = None) -> None:
    """A veth pair: `ifname` in `ns` (attached to bridge `master` if given), `peer_ifname`
    in `peer_ns`; both up."""
    with ipr(ns) as h:
        if h.link_lookup(ifname=ifname):
            h.link("del", index=_index(h, ifname))
        h.link("add", ifname=ifname, kind="veth", peer={"ifname": peer_ifname, "net_ns_fd": peer_ns})
        idx = _index(h, ifname)
        if master:
            h.link("set", index=idx, master=_index(h, master))
        h.link("set", index=idx, state="up")
    with ipr(peer_ns) as h:
        h.link("set", index=_index(h, peer_ifname), state="up")
        lo = h.link_lookup(ifname="lo")
        if lo:
            h.link("set", index=lo[0], state="up")


def delete(ns: str | None, ifname: str) -> None:
    with ipr(ns) as h:
        found = h.link_lookup(ifname=ifname)
        if found:
            h.link("del", index=found[0])


def rename_and_address(ns: str, ifname: str, new_name: str, address: str, prefixlen: int) -> None:
    with ipr(ns) as h:
        idx = _index(h, ifname)
        if ifname != new_name:
            h.link("set", index=idx, state="down")
            h.link("set", index=idx, ifname=new_name)
        if not h.get_addr(index=idx, address=address):
            h.addr("add", index=idx, address=address, prefixlen=prefixlen)
        h.link("set", index=idx, state="up")


def address(ns: str | None, ifname: str, address: str, prefixlen: int) -> None:
    with ipr(ns) as h:
        idx = _index(h, ifname)
        if not h.get_addr(index=idx, address=address):
            h.addr("add", index=idx, address=address, prefixlen=prefixlen)


def route(ns: str | None, dst: str, gateway: str) -> None:
    """`dst` ("default" or a CIDR) via `gateway`, replacing any route to `dst`."""
    with ipr(ns) as h:
        if dst == "default":
            h.route("replace", dst="0.0.0.0/0", gateway=gateway)
        else:
            h.route("replace", dst=dst, gateway=gateway)

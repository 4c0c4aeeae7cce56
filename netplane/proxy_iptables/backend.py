"""iptables mode: the renderer's text applied with `iptables-restore --noflush`, jumps from
the built-in chains kept in place, stale chains removed, and conntrack cleared for UDP
flows that point at endpoints that are gone.

A partial sync is one transaction holding only the difference from what the kernel has
(the changed services' chains, and their top-level rules deleted or appended), so its
cost follows the change, not the cluster: ~45 ms for an endpoint change at 10k services
with nf_tables (bench/proxy_iptables.py). A full sync reads the kernel's chains first (so
what a crashed predecessor left is found) and rewrites everything in kube-proxy's layout;
with nf_tables in batches of services, because iptables-nft-restore's time grows with the
square of one transaction's size (4k services: 272 s as one, 4.5 s in batches of 250).
Legacy iptables rewrites its whole table on every restore, whatever the input.

A canary chain in the mangle table (kube-proxy's KUBE-PROXY-CANARY) tells a periodic sync
that someone flushed the tables: then it is a full one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from netplane.kernel import conntrack
from netplane.kernel.iptables import VARIANTS, Iptables, IptablesError, chains_in, detect_variant
from netplane.model import ProxyState, StateChange
from netplane.model.servicemap import ServicePort
from netplane.proxy.backend import SyncStats
from netplane.proxy_iptables import chains as c
from netplane.proxy_iptables.renderer import Renderer, RenderOptions

log = logging.getLogger(__name__)

CANARY = "KUBE-PROXY-CANARY"
BATCH_SERVICES = 250  # services per transaction of an nf_tables full sync (measured)
DOOMED_BATCH = 1000  # chains out of use deleted at once when that many wait
_TCP_LIBERAL = Path("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal")
_IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def _has_random_fully(ipt: Iptables) -> bool:
    """--random-fully needs iptables >= 1.6.2 (kube-proxy's check)."""
    try:
        out = subprocess.run([*ipt.command(""), "--version"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    m = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    return bool(m) and tuple(int(x) for x in m.groups()) >= (1, 6, 2)  # type: ignore[union-attr]


def _tcp_liberal() -> bool:
    try:
        return _TCP_LIBERAL.read_text().strip() not in ("", "0")
    except OSError:
        return False


def jump_spec(comment: str, extra: tuple[str, ...], target: str) -> list[str]:
    spec = list(extra)
    if comment:
        spec += ["-m", "comment", "--comment", comment]
    return [*spec, "-j", target]


def _quoted(spec: list[str]) -> str:
    return " ".join(f'"{p}"' if " " in p else p for p in spec)


def missing_jumps(saved: str) -> dict[str, list[str]]:
    """kube-proxy's EnsureRule(Prepend) of each jump that `saved` (an iptables-save of all
    tables) lacks, as restore lines per table, and the canary chain if it is missing."""
    missing: dict[str, list[str]] = {}
    for table, target, chain, comment, extra in c.JUMPS:
        spec = _quoted(jump_spec(comment, extra, target))
        if f"-A {chain} {spec}" not in saved:
            missing.setdefault(table, []).append(f"-I {chain} 1 {spec}")
    if f":{CANARY} " not in saved:
        missing["mangle"] = [f":{CANARY} - [0:0]"]
    return missing


def with_jumps_and_canary(text: str, saved: str) -> str:
    """`text` plus the missing jumps and canary, in their tables' sections."""
    missing = missing_jumps(saved)
    canary = missing.pop("mangle", None)
    for table, lines in missing.items():
        if f"*{table}\n" not in text:
            text += f"*{table}\nCOMMIT\n"
        head, sep, rest = text.partition(f"*{table}\n")
        body, commit, tail = rest.partition("COMMIT\n")
        text = head + sep + body + "\n".join(lines) + "\n" + commit + tail
    if canary:
        text += f"*mangle\n{canary[0]}\nCOMMIT\n"
    return text


class IptablesBackend:
    mode = "iptables"

    def __init__(self, node_name: str, *, iptables: Iptables | None = None, cluster_cidr: str | None = None,
                 masquerade_all: bool = False, batch_services: int = BATCH_SERVICES) -> None:
        self.node_name = node_name
        self._iptables = iptables
        self._cluster_cidr = cluster_cidr
        self._masquerade_all = masquerade_all
        self.batch_services = batch_services
        self._renderer: Renderer | None = None
        self._last_state = ProxyState()
        self.last_transactions: tuple[str, ...] = ()
        self._warned_forwarding = False

    @property
    def iptables(self) -> Iptables:
        if self._iptables is None:
            self._iptables = Iptables(detect_variant())
        return self._iptables

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(RenderOptions(
                node_name=self.node_name, cluster_cidr=self._cluster_cidr,
                masquerade_all=self._masquerade_all, random_fully=_has_random_fully(self.iptables),
                conntrack_tcp_liberal=_tcp_liberal()))
        return self._renderer

    async def sync(self, state: ProxyState, changes: StateChange, *, full: bool) -> SyncStats:
        ipt = self.iptables
        renderer = self.renderer
        if not full and not renderer.needs_full and not await self._canary_alive():
            log.warning("the iptables tables were flushed behind the proxy's back: full sync")
            full = True
        full = full or renderer.needs_full
        if full and ipt.variant == "legacy":
            return await self._stream_full(state, changes)
        if full:
            saved = await ipt.save()
            rendered = renderer.render(state, known_chains=chains_in(saved, "nat"),
                                       batch_services=self.batch_services)
            # The jumps from the built-in chains and the canary ride in the last transaction:
            # no `iptables` process per jump (each loads the whole table on legacy).
            last = with_jumps_and_canary(rendered.transactions[-1], saved)
            transactions = (*rendered.transactions[:-1], last)
        elif changes.is_empty:
            self._last_state = state
            deleted = await self._delete_doomed()
            return SyncStats(services=len(state.services),
                             detail=f"nothing changed, {deleted} chains out of use deleted")
        else:
            rendered = renderer.render(state, changed=changes.changed)
            transactions = (rendered.text,)
        try:
            for text in transactions:
                await ipt.restore(text)
        except IptablesError:
            renderer.forget()  # the kernel is in an unknown state: the retry is a full sync
            raise
        renderer.commit()
        self.last_transactions = transactions
        if len(renderer.doomed) > DOOMED_BATCH:
            await self._delete_doomed()
        if full:
            self._check_forwarding()
        cleared = await self._clear_conntrack(state, changes)
        self._last_state = state
        endpoints = sum(len(e) for e in state.endpoints.values())
        kind = f"{len(transactions)} transactions" if len(transactions) > 1 else "1 transaction"
        return SyncStats(services=len(state.services), endpoints=endpoints,
                         rules=rendered.nat_rules + rendered.filter_rules,
                         detail=f"{rendered.written_services} services written in {kind}, "
                                f"{rendered.nat_rules} nat and {rendered.filter_rules} filter rules, "
                                f"{len(rendered.stale_chains)} stale chains removed, {cleared} UDP flows "
                                f"cleared ({ipt.variant})")

    async def _stream_full(self, state: ProxyState, changes: StateChange) -> SyncStats:
        """A legacy full sync: legacy rewrites the whole table per transaction, so one
        transaction, streamed into iptables-restore as it is rendered."""
        ipt = self.iptables
        saved = await ipt.save()
        sent: list[str] = []

        def pieces() -> Iterator[str]:
            for piece in self.renderer.stream_full(state, known_chains=chains_in(saved, "nat"),
                                                   extra=missing_jumps(saved)):
                sent.append(piece)
                yield piece

        try:
            await ipt.restore_stream(pieces())
        except IptablesError:
            self.renderer.forget()
            raise
        self.renderer.commit()
        self.last_transactions = ("".join(sent),)
        self._check_forwarding()
        cleared = await self._clear_conntrack(state, changes)
        self._last_state = state
        endpoints = sum(len(e) for e in state.endpoints.values())
        return SyncStats(services=len(state.services), endpoints=endpoints,
                         detail=f"full sync streamed in 1 transaction, {cleared} UDP flows cleared (legacy)")

    async def _delete_doomed(self) -> int:
        """Deletes the chains partial syncs flushed: a chain deletion makes iptables-nft read
        the whole table, so it is done in batches on quiet syncs, not per change."""
        text = self.renderer.deletions()
        if not text:
            return 0
        count = len(self.renderer.doomed)
        try:
            await self.iptables.restore(text)
        except IptablesError:
            self.renderer.forget()  # something else holds them: a full sync sorts it out
            raise
        self.renderer.deleted()
        return count

    async def _canary_alive(self) -> bool:
        proc = await asyncio.create_subprocess_exec(*self.iptables.command(""), "-t", "mangle", "-S", CANARY,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return await proc.wait() == 0

    def _check_forwarding(self) -> None:
        # As kube-proxy, the proxy relies on forwarding rather than turning it on (the
        # node's network setup owns that switch); without it DNATed traffic goes nowhere.
        if not self._warned_forwarding and _IP_FORWARD.exists() and _IP_FORWARD.read_text().strip() == "0":
            log.warning("net.ipv4.ip_forward is 0 on this node: traffic to services from pods will be "
                        "dropped; enable forwarding")
            self._warned_forwarding = True

    # -- conntrack hygiene ----------------------------------------------------------------

    def _service_ips(self, port: ServicePort) -> list[str]:
        ips = (*port.cluster_ips, *port.external_ips, *port.load_balancer_ips)
        return [ip for ip in ips if ":" not in ip]

    async def _clear_conntrack(self, state: ProxyState, changes: StateChange) -> int:
        """kube-proxy's UDP cleanup: flows to a service IP that had no endpoints (they
        were answered by the REJECT, or stuck un-NATed), and flows NATed to an endpoint
        that stopped serving, by service IP and by node port."""
        filters: list[conntrack.FlowFilter] = []
        for ip in changes.deleted_udp_cluster_ips:
            filters.append(conntrack.FlowFilter("UDP", orig_dst=ip))
        for name in changes.newly_active_udp_services:
            port = state.services.get(name)
            if port is None:
                continue
            filters += [conntrack.FlowFilter("UDP", orig_dst=ip) for ip in self._service_ips(port)]
            if port.node_port:
                filters.append(conntrack.FlowFilter("UDP", orig_dport=port.node_port))
        for name, ep in changes.deleted_udp_endpoints:
            port = state.services.get(name) or self._last_state.services.get(name)
            if port is None:
                continue
            filters += [conntrack.FlowFilter("UDP", orig_dst=ip, reply_src=ep.ip)
                        for ip in self._service_ips(port)]
            if port.node_port:
                filters.append(conntrack.FlowFilter("UDP", orig_dport=port.node_port, reply_src=ep.ip))
        if not filters:
            return 0
        try:
            return await asyncio.to_thread(conntrack.delete_flows, filters)
        except OSError as exc:
            log.warning("could not clear stale UDP conntrack entries: %s", exc)
            return 0

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Rules stay: the data plane keeps serving while the proxy restarts (as kube-proxy)."""

    def cleanup(self) -> list[str]:
        done: list[str] = []
        for variant in VARIANTS:
            if shutil.which(f"iptables-{variant}-save") is None:
                continue
            ipt = Iptables(variant)
            try:
                removed = cleanup_tables(ipt)
            except (IptablesError, OSError) as exc:
                raise IptablesError(f"{variant}: {exc}") from exc
            if removed:
                done.append(f"removed {removed} KUBE-* chains of iptables mode ({variant} iptables)")
        return done


def cleanup_tables(ipt: Iptables) -> int:
    """kube-proxy's CleanupLeftovers for one variant: unlink the jumps, then flush and
    delete every chain of ours in nat and filter; returns how many chains went."""
    saved = {table: ipt.save_blocking(table) for table in ("filter", "nat")}
    ours = {table: {ch for ch in chains_in(text, table) if ch.startswith("KUBE-")}
            for table, text in saved.items()}
    wanted = {"nat": set(c.NAT_CHAINS), "filter": set(c.FILTER_CHAINS)}
    doomed = {table: sorted(ch for ch in ours[table] if ch in wanted[table] or c.is_service_chain(ch))
              for table in ("filter", "nat")}
    if not any(doomed.values()):
        return 0
    for table, target, chain, comment, extra in c.JUMPS:
        spec = jump_spec(comment, extra, target)
        while ipt.run_blocking("-t", table, "-D", chain, *spec).returncode == 0:
            pass
    text = ""
    for table in ("filter", "nat"):
        if doomed[table]:
            text += f"*{table}\n" + "".join(f":{ch} - [0:0]\n" for ch in doomed[table])
            text += "".join(f"-X {ch}\n" for ch in doomed[table]) + "COMMIT\n"
    ipt.restore_blocking(text)
    ipt.run_blocking("-t", "mangle", "-X", CANARY)
    return sum(len(v) for v in doomed.values())

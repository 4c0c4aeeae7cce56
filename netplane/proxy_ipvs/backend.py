"""IPVS mode (kube-proxy's `--proxy-mode ipvs`): every service IP bound to kube-ipvs0, a
virtual server per service IP and port, a real server per endpoint, kube-proxy's ipsets
and the few iptables rules that match on them.

A full sync (at start, after a failure, every --full-sync-period, and when a periodic
check finds the kernel's table tampered with) reads the whole IPVS table, the ipsets and
the VIPs back from the kernel and changes only what differs. A partial sync re-plans the
service ports that changed, reads just their virtual servers back from the kernel, and
applies the difference: its cost follows the change, not the cluster. Every change goes
to the kernel in batches, hundreds of requests per system call. Real servers that still
carry TCP connections are drained (weight 0) before they are deleted (graceful.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shutil
import time
from pathlib import Path

from netplane.kernel import conntrack
from netplane.kernel.iptables import VARIANTS, Iptables, IptablesError, detect_variant
from netplane.model import ProxyState, StateChange
from netplane.proxy.backend import SyncStats
from netplane.proxy_ipvs import cleanup as cleanup_rules
from netplane.proxy_ipvs import names as n
from netplane.proxy_ipvs.diff import Ops, diff
from netplane.proxy_ipvs.graceful import Draining
from netplane.proxy_ipvs.iptables_rules import RuleOptions, render_rules, with_jumps
from netplane.proxy_ipvs.kernel import IpvsKernel, KernelError, ipvs_available
from netplane.proxy_ipvs.planner import Plan, PlanOptions
from netplane.proxy_ipvs.table import VirtualKey

log = logging.getLogger(__name__)

DEFAULT_GRACE = 900.0  # seconds: the kernel's TCP established timeout for IPVS connections
DRAIN_CHECK_INTERVAL = 5.0
_CANARY_SAMPLE = 8
_IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidrs(cidrs: tuple[str, ...] | list[str]) -> tuple[Network, ...]:
    """--ipvs-exclude-cidrs; ValueError names the bad one."""
    out = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{cidr!r} is not a CIDR ({exc})") from exc
    return tuple(out)


class IpvsBackend:
    mode = "ipvs"

    def __init__(self, node_name: str, *, iptables: Iptables | None = None, cluster_cidr: str | None = None,
                 masquerade_all: bool = False, scheduler: str = n.DEFAULT_SCHEDULER,
                 exclude_cidrs: tuple[str, ...] = (), termination_grace: float = DEFAULT_GRACE,
                 tcp_timeout: int = 0, tcp_fin_timeout: int = 0, udp_timeout: int = 0,
                 drain_check_interval: float = DRAIN_CHECK_INTERVAL) -> None:
        self.node_name = node_name
        self.scheduler = scheduler
        self._iptables = iptables
        self.rule_options = RuleOptions(cluster_cidr=cluster_cidr, masquerade_all=masquerade_all)
        self.exclude = parse_cidrs(exclude_cidrs)
        self.timeouts = (tcp_timeout, tcp_fin_timeout, udp_timeout)
        self.drain_check_interval = drain_check_interval
        self.kernel = IpvsKernel()
        self.draining = Draining(termination_grace)
        self._plan: Plan | None = None
        self._dummy_index = 0
        self._rules_applied = ""
        self._lock = asyncio.Lock()
        self._drainer: asyncio.Task[None] | None = None
        self._warned_forwarding = False
        self.last_ops = Ops()

    @property
    def iptables(self) -> Iptables:
        if self._iptables is None:
            self._iptables = Iptables(detect_variant())
        return self._iptables

    # -- syncs -----------------------------------------------------------------------------

    async def sync(self, state: ProxyState, changes: StateChange, *, full: bool) -> SyncStats:
        async with self._lock:
            stats = await asyncio.to_thread(self.sync_blocking, state, changes, full)
        if self._drainer is None and self.drain_check_interval > 0:
            self._drainer = asyncio.create_task(self._drain_loop(), name="ipvs graceful termination")
        return stats

    def sync_blocking(self, state: ProxyState, changes: StateChange, full: bool) -> SyncStats:
        """One sync, on the calling thread (the async `sync` runs it on a worker)."""
        try:
            if full or self._plan is None:
                return self._full(state, changes)
            if changes.is_empty:
                if not self._intact():
                    log.warning("the IPVS mode's kernel state was changed behind the proxy's back: full sync")
                    return self._full(state, changes)
                deleted = self._drain_due()
                return SyncStats(services=len(state.services),
                                 detail=f"nothing changed, {deleted} drained real servers deleted")
            return self._partial(state, changes)
        except BaseException:
            self._plan = None  # the kernel is in an unknown state: the next sync is a full one
            raise

    def _keep(self, key: VirtualKey) -> bool:
        """Virtual servers a full sync leaves alone though the plan lacks them."""
        address = ipaddress.ip_address(key.address)
        return address.version != 4 or any(address in net for net in self.exclude)

    def _full(self, state: ProxyState, changes: StateChange) -> SyncStats:
        k = self.kernel
        k.tune_sysctls()
        if any(self.timeouts):
            k.set_timeouts(*self.timeouts)
        index = k.ensure_dummy()
        k.ensure_sets()
        addresses = k.addresses()
        node_ips = tuple(sorted({ip for i, ip in addresses if i != index and not ip.startswith("127.")}))
        plan = Plan.build(state, PlanOptions(self.node_name, node_ips, self.scheduler))
        table = k.table()
        now = time.monotonic()
        ops = diff(plan.virtual, table, set(plan.virtual) | set(table), keep=self._keep,
                   expired=lambda v, r: self.draining.expired(v, r, now))
        added, removed = [], []
        for set_name, want in plan.ipsets().items():
            have = k.members(set_name)
            added += [(set_name, e) for e in want - have]
            removed += [(set_name, e) for e in have - want]
        bound = {ip for i, ip in addresses if i == index}
        # Addresses and members first, so that whatever IPVS holds of ours is always
        # findable by --cleanup, even after a crash in the middle.
        failures = k.change_members(added, ())
        failures += k.change_vips(index, plan.vips - bound, ())
        failures += k.apply(ops)
        self._sync_rules(plan, force=True)
        failures += k.change_members((), removed)
        failures += k.change_vips(index, (), bound - plan.vips)
        self._check(failures)
        self.draining.record(ops, now)
        self._plan, self._dummy_index, self.last_ops = plan, index, ops
        cleared = self._clear_conntrack(state, changes)
        self._check_forwarding()
        return self._stats(state, ops, "full", len(added) + len(removed),
                           len(plan.vips - bound) + len(bound - plan.vips), cleared)

    def _partial(self, state: ProxyState, changes: StateChange) -> SyncStats:
        assert self._plan is not None
        k, plan = self.kernel, self._plan
        change = plan.update(state, changes.changed)
        table = k.table(change.virtual)
        now = time.monotonic()
        ops = diff(plan.virtual, table, change.virtual, keep=self._keep,
                   expired=lambda v, r: self.draining.expired(v, r, now))
        failures = k.change_members(change.entries_added, ())
        failures += k.change_vips(self._dummy_index, change.vips_added, ())
        failures += k.apply(ops)
        self._sync_rules(plan)
        failures += k.change_members((), change.entries_removed)
        failures += k.change_vips(self._dummy_index, (), change.vips_removed)
        self._check(failures)
        self.draining.record(ops, now)
        self.last_ops = ops
        cleared = self._clear_conntrack(state, changes)
        return self._stats(state, ops, "partial", len(change.entries_added) + len(change.entries_removed),
                           len(change.vips_added) + len(change.vips_removed), cleared)

    def _stats(self, state: ProxyState, ops: Ops, kind: str, members: int, vips: int,
               cleared: int) -> SyncStats:
        endpoints = sum(len(e) for e in state.endpoints.values())
        draining = f", {len(self.draining)} real servers draining" if len(self.draining) else ""
        return SyncStats(
            services=len(state.services), endpoints=endpoints, rules=ops.count,
            detail=f"{kind}: {ops.count} IPVS changes ({len(ops.add_services)} virtual servers added, "
                   f"{len(ops.delete_services)} deleted, {len(ops.add_reals)} real servers added, "
                   f"{len(ops.delete_reals)} deleted){draining}, {members} ipset members, {vips} VIPs "
                   f"changed, {cleared} UDP flows cleared")

    @staticmethod
    def _check(failures: list[str]) -> None:
        if failures:
            more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
            raise KernelError("the kernel refused: " + "; ".join(failures[:5]) + more)

    def _sync_rules(self, plan: Plan, *, force: bool = False) -> None:
        """The iptables rules, restored only when their text changed (or on a full sync)."""
        text = render_rules(plan.nonempty_sets(), self.rule_options)
        if text == self._rules_applied and not force:
            return
        ipt = self.iptables
        saved = {table: ipt.save_blocking(table) for table in ("nat", "filter")}
        try:
            ipt.restore_blocking(with_jumps(text, saved))
        except IptablesError:
            self._rules_applied = ""
            raise
        self._rules_applied = text

    def _intact(self) -> bool:
        """A periodic sync's check that nobody flushed what this mode holds (ipvsadm -C,
        iptables -F, a deleted ipset or kube-ipvs0): a sample of virtual servers, the
        dummy link, and the jump into KUBE-IPVS-FILTER."""
        assert self._plan is not None
        k = self.kernel
        for key in sorted(self._plan.virtual)[:_CANARY_SAMPLE]:
            if k.service(key) is None:
                return False
        if k.dummy_index() != self._dummy_index:
            return False
        jump = f"-A INPUT {n.jump_spec(n.IPVS_FILTER, 'kubernetes ipvs access filter')}"
        try:
            return jump in self.iptables.save_blocking("filter")
        except IptablesError:
            return False

    # -- graceful termination ------------------------------------------------------------

    def _drain_due(self) -> int:
        if not len(self.draining):
            return 0
        k = self.kernel
        reals = {vs: k.reals(vs) for vs in self.draining.virtual_servers()}
        due = self.draining.due(reals, time.monotonic())
        if not due:
            return 0
        ops = Ops(delete_reals=due)
        self._check(k.apply(ops))
        self.draining.deleted(due)
        log.info("deleted %d drained real servers: %s", len(due),
                 ", ".join(f"{r} of {v}" for v, r in due[:5]))
        return len(due)

    async def _drain_loop(self) -> None:
        while True:
            await asyncio.sleep(self.drain_check_interval)
            if not len(self.draining):
                continue
            try:
                async with self._lock:
                    await asyncio.to_thread(self._drain_due)
            except (KernelError, OSError) as exc:
                log.warning("checking drained real servers failed: %s", exc)

    # -- conntrack hygiene --------------------------------------------------------------

    def _clear_conntrack(self, state: ProxyState, changes: StateChange) -> int:
        """kube-proxy's UDP cleanup: flows to a service IP that is gone, and flows to an
        endpoint that stopped serving (UDP has no connection to break)."""
        filters = [conntrack.FlowFilter("UDP", orig_dst=ip) for ip in changes.deleted_udp_cluster_ips
                   if ":" not in ip]
        for name, ep in changes.deleted_udp_endpoints:
            port = state.services.get(name)
            if port is None:
                continue
            for ip in (*port.cluster_ips, *port.external_ips, *port.load_balancer_ips):
                if ":" not in ip:
                    filters.append(conntrack.FlowFilter("UDP", orig_dst=ip, reply_src=ep.ip))
            if port.node_port:
                filters.append(conntrack.FlowFilter("UDP", orig_dport=port.node_port, reply_src=ep.ip))
        if not filters:
            return 0
        try:
            return conntrack.delete_flows(filters)
        except OSError as exc:
            log.warning("could not clear stale UDP conntrack entries: %s", exc)
            return 0

    def _check_forwarding(self) -> None:
        # As the iptables mode: forwarding belongs to the node's network setup; without it
        # pods' traffic to services goes nowhere.
        if not self._warned_forwarding and _IP_FORWARD.exists() and _IP_FORWARD.read_text().strip() == "0":
            log.warning("net.ipv4.ip_forward is 0 on this node: traffic to services from pods will be "
                        "dropped; enable forwarding")
            self._warned_forwarding = True

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """The table, ipsets and rules stay: traffic flows while the proxy restarts."""
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None
        self.kernel.close()

    def cleanup(self) -> list[str]:
        """kube-proxy's CleanupLeftovers for IPVS mode, if it was ever here: the IPVS table
        (which the mode owns, as kube-proxy does), kube-ipvs0, the jumps and chains, then
        the ipsets (which iptables must no longer reference)."""
        done: list[str] = []
        k = IpvsKernel()
        try:
            chains_removed = 0
            was_here = k.dummy_index() is not None
            for variant in VARIANTS:
                if shutil.which(f"iptables-{variant}-save") is None:
                    continue
                ipt = Iptables(variant)
                try:
                    saved = {table: ipt.save_blocking(table) for table in ("nat", "filter")}
                    text, count = cleanup_rules.removal(saved)
                    if text:
                        ipt.restore_blocking(text)
                        chains_removed += count
                        was_here = True
                except (IptablesError, OSError) as exc:
                    raise KernelError(f"{variant} iptables: {exc}") from exc
            if chains_removed:
                done.append(f"removed {chains_removed} chains of IPVS mode")
            sets = k.destroy_sets()
            if sets:
                done.append(f"destroyed {len(sets)} ipsets of IPVS mode")
                was_here = True
            if was_here and ipvs_available() is None:
                flushed = k.flush()
                if flushed:
                    done.append(f"removed {flushed} IPVS virtual servers")
            if k.delete_dummy():
                done.append(f"deleted {n.DUMMY_DEVICE}")
        finally:
            k.close()
        return done

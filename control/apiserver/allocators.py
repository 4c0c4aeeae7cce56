"""Service ClusterIP and NodePort allocation, persistent and conflict-free.

Each allocated IP or port is a key of its own in the store, created with
create-if-absent (as Kubernetes' IPAddress objects do since the
MultiCIDRServiceAllocator): two apiservers on one store can never hand out the
same value, and a crash between reserving and storing the Service leaves at
most a leaked key that `repair()` reclaims on the next start.

The in-memory view of the keys only speeds up picking a free value; whenever it
could be stale (another apiserver on a shared store reserved or released since)
the store decides: a reservation is a create, a release deletes the key only if
the store says the owner still holds it, and a range that looks full is re-read.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import time
from collections.abc import Iterable

import orjson

from control.store import ConflictError, KeyExistsError, KeyNotFoundError, KeyValue, Store


class AllocationError(Exception):
    """A requested value is out of range or taken; `full` when nothing is left."""

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


class _Reservations(dict[int, str]):
    """offset -> owner ("ns/name"), counting the offsets below `split` as it goes, so a
    band's fill is known without a scan (allocation stays O(1) at 10k+ Services)."""

    def __init__(self, split: int) -> None:
        super().__init__()
        self.split = split
        self.below = 0

    def __setitem__(self, offset: int, owner: str) -> None:
        if offset not in self and offset < self.split:
            self.below += 1
        super().__setitem__(offset, owner)

    def pop(self, offset: int, default: str | None = None) -> str | None:  # type: ignore[override]
        if offset in self and offset < self.split:
            self.below -= 1
        return super().pop(offset, default)

    def clear(self) -> None:
        super().clear()
        self.below = 0

    def count_in(self, lo: int, hi: int) -> int:
        if (lo, hi) == (0, self.split):
            return self.below
        if lo == self.split:
            return len(self) - self.below
        return sum(1 for o in self if lo <= o < hi)


class _KeyAllocator:
    """Values reserved as store keys `<prefix><value>`, with an in-memory view of them."""

    def __init__(self, store: Store, prefix: str, size: int) -> None:
        self._store = store
        self._prefix = prefix
        self._size = size
        self._used = _Reservations(self._band()[0])
        self._reserved_at: dict[int, float] = {}

    def _offset(self, value: str) -> int:
        raise NotImplementedError

    def _value(self, offset: int) -> str:
        raise NotImplementedError

    async def load(self) -> None:
        self._used.clear()
        self._reserved_at.clear()
        result = await self._store.list(self._prefix)
        for kv in result.items:
            value = kv.key[len(self._prefix):]
            try:
                offset = self._offset(value)
            except AllocationError:
                continue
            body = orjson.loads(kv.value)
            self._used[offset] = body.get("owner", "")
            self._reserved_at[offset] = float(body.get("reservedAt", 0))

    def _band(self) -> tuple[int, int]:
        # Kubernetes reserves the lower 1/16 of a range (min 16, max 256) for static
        # assignment, and allocates dynamically from the upper band first.
        reserved = min(max(16, self._size // 16), 256)
        if reserved >= self._size:
            reserved = 0
        return reserved, self._size

    async def _reserve(self, offset: int, owner: str) -> bool:
        # The time tells repair() on a shared store a fresh reservation (whose Service is
        # being stored right now by another apiserver) from a leaked one.
        body = orjson.dumps({"owner": owner, "reservedAt": round(time.time(), 6)})
        try:
            await self._store.create(self._prefix + self._value(offset), body)
        except KeyExistsError:
            # Another apiserver took it: learn the owner so the next pick skips it.
            kv = await self._store.get(self._prefix + self._value(offset))
            self._used[offset] = _owner_of(kv) if kv else ""
            return False
        self._used[offset] = owner
        return True

    async def allocate_specific(self, value: str, owner: str) -> bool:
        """Reserves `value` for `owner`; False when `owner` holds it already (then a failed
        write must not release it: it was not taken for that write)."""
        offset = self._offset(value)
        if not self._store.shared:  # the view is exact: this process made every reservation
            if self._used.get(offset) == owner:
                return False
            if offset in self._used or not await self._reserve(offset, owner):
                raise AllocationError("provided value is already allocated")
            return True
        if offset in self._used:
            # The view may be stale: the store's key decides.
            kv = await self._store.get(self._prefix + value)
            if kv is not None:
                self._used[offset] = _owner_of(kv)
                if self._used[offset] == owner:
                    return False
                raise AllocationError("provided value is already allocated")
            self._used.pop(offset, None)
        if not await self._reserve(offset, owner):
            if self._used.get(offset) == owner:
                return False
            raise AllocationError("provided value is already allocated")
        return True

    async def allocate_next(self, owner: str) -> str:
        try:
            return await self._allocate_next(owner)
        except AllocationError:
            if not self._store.shared:
                raise
        # On a shared store the view misses what other apiservers released.
        await self.load()
        return await self._allocate_next(owner)

    async def _allocate_next(self, owner: str) -> str:
        for lo, hi in (self._band(), (0, self._band()[0])):
            free = (hi - lo) - self._used.count_in(lo, hi)
            if free <= 0:
                continue
            # Random probing finds a free value fast while the range is sparse; a scan
            # from a random start finishes the job when it is dense.
            for _ in range(min(64, hi - lo)):
                offset = random.randrange(lo, hi)
                if offset not in self._used and await self._reserve(offset, owner):
                    return self._value(offset)
            start = random.randrange(lo, hi)
            for i in range(hi - lo):
                offset = lo + (start - lo + i) % (hi - lo)
                if offset not in self._used and await self._reserve(offset, owner):
                    return self._value(offset)
        raise AllocationError("range is full", full=True)

    async def release(self, value: str, owner: str | None = None) -> None:
        """Deletes the reservation of `value` if `owner` (None: anyone) holds it in the
        store: on a shared store the value may have been released and taken by another
        Service since this view saw it."""
        try:
            offset = self._offset(value)
        except AllocationError:
            return
        if not self._store.shared:  # the view is exact: this process made every reservation
            if owner is not None and self._used.get(offset, owner) != owner:
                return
            self._used.pop(offset, None)
            with contextlib.suppress(KeyNotFoundError):
                await self._store.delete(self._prefix + value)
            return
        kv = await self._store.get(self._prefix + value)
        if kv is None or (owner is not None and _owner_of(kv) != owner):
            if kv is None:
                self._used.pop(offset, None)
            else:
                self._used[offset] = _owner_of(kv)
            return
        self._used.pop(offset, None)
        with contextlib.suppress(KeyNotFoundError, ConflictError):
            await self._store.delete(self._prefix + value, kv.mod_revision)

    def owner(self, value: str) -> str | None:
        try:
            return self._used.get(self._offset(value))
        except AllocationError:
            return None

    async def repair(self, wanted: dict[str, str], min_age: float = 0.0) -> tuple[int, int]:
        """Makes the reservations equal `wanted` (value -> owner): reserves what a stored
        Service holds but is not reserved, releases what no Service holds and was reserved
        more than `min_age` seconds ago (on a shared store a younger one may belong to a
        Service another apiserver is storing right now). Returns (reserved, released)."""
        await self.load()
        reserved = released = 0
        wanted_offsets = {}
        for value, owner in wanted.items():
            try:
                wanted_offsets[self._offset(value)] = owner
            except AllocationError:
                continue
        for offset, owner in wanted_offsets.items():
            if offset not in self._used:
                reserved += await self._reserve(offset, owner)
        young = time.time() - min_age
        for offset in list(self._used):
            if offset not in wanted_offsets and self._reserved_at.get(offset, 0) <= young:
                await self.release(self._value(offset), self._used[offset])
                released += 1
        return reserved, released


def _owner_of(kv: KeyValue) -> str:
    return str(orjson.loads(kv.value).get("owner", ""))


class ClusterIPAllocator(_KeyAllocator):
    """IPs of the service CIDR; network and broadcast addresses are never handed out."""

    def __init__(self, store: Store, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=True)
        first = 1 if self.network.num_addresses > 2 else 0
        last = self.network.num_addresses - (1 if self.network.version == 4 else 0)
        self._first = first
        super().__init__(store, "/registry/ipaddresses/", max(0, last - first))

    def _offset(self, value: str) -> int:
        try:
            ip = ipaddress.ip_address(value)
        except ValueError as exc:
            raise AllocationError(f"{value!r} is not a valid IP") from exc
        if ip not in self.network:
            raise AllocationError(
                f"provided IP is not in the valid range. The range of valid IPs is {self.network}")
        offset = int(ip) - int(self.network.network_address) - self._first
        if not 0 <= offset < self._size:
            raise AllocationError(
                f"provided IP is not in the valid range. The range of valid IPs is {self.network}")
        return offset

    def _value(self, offset: int) -> str:
        return str(self.network.network_address + self._first + offset)

    def nth(self, n: int) -> str:
        """The n-th address of the range (1: 10.96.0.1), as Kubernetes reserves them."""
        return str(self.network.network_address + n)


class NodePortAllocator(_KeyAllocator):
    def __init__(self, store: Store, port_range: tuple[int, int]) -> None:
        self.low, self.high = port_range
        super().__init__(store, "/registry/servicenodeports/", self.high - self.low + 1)

    def _offset(self, value: str) -> int:
        try:
            port = int(value)
        except ValueError as exc:
            raise AllocationError(f"{value!r} is not a port") from exc
        if not self.low <= port <= self.high:
            raise AllocationError(
                f"provided port is not in the valid range. The range of valid ports is "
                f"{self.low}-{self.high}")
        return port - self.low

    def _value(self, offset: int) -> str:
        return str(self.low + offset)


def parse_port_range(text: str) -> tuple[int, int]:
    try:
        low_s, high_s = text.split("-", 1)
        low, high = int(low_s), int(high_s)
    except ValueError as exc:
        raise ValueError(f"invalid port range {text!r}: want LOW-HIGH, e.g. 30000-32767") from exc
    if not 0 < low <= high <= 65535:
        raise ValueError(f"invalid port range {text!r}: want 1 <= LOW <= HIGH <= 65535")
    return low, high


def service_ips(svc: dict) -> Iterable[str]:
    spec = svc.get("spec") or {}
    ips = list(spec.get("clusterIPs") or [])
    if spec.get("clusterIP") and spec["clusterIP"] not in ips:
        ips.insert(0, spec["clusterIP"])
    return [ip for ip in ips if ip and ip != "None"]


def service_node_ports(svc: dict) -> set[int]:
    spec = svc.get("spec") or {}
    ports = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(int(spec["healthCheckNodePort"]))
    return ports

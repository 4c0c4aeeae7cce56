"""Between the `Store` contract and etcd's API: keys under a prefix, key ranges, revisions,
and watch events. Pure functions over etcd's protobuf messages; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.store.keyrange import KeyRange
from control.store.protocol import Event, EventType, KeyValue


class MissingPrevError(Exception):
    """A watch event came without the version it replaced: etcd looks that version up at
    the event's revision - 1, and compaction had already removed it."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"the version replaced at revision {revision} is compacted")
        self.revision = revision


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The store's keys inside etcd: `prefix` + key, UTF-8 (whose byte order is code point
    order, so etcd's byte-ordered ranges list keys in the order the contract wants)."""

    prefix: bytes = b""

    def key(self, key: str) -> bytes:
        return self.prefix + key.encode("utf-8", "surrogateescape")

    def name(self, raw: bytes) -> str:
        return raw[len(self.prefix):].decode("utf-8", "surrogateescape")

    def range(self, prefix: str, start_after: str = "") -> tuple[bytes, bytes]:
        """etcd's [key, range_end) for a store prefix, from just after `start_after`.

        An empty range_end would mean "this one key" to etcd; every range here is explicit."""
        rng = KeyRange.of(prefix)
        low = self.key(max(rng.low, start_after + "\x00") if start_after else rng.low)
        if rng.high is not None:
            high = self.key(rng.high)
        elif self.prefix:
            high = _after_prefix(self.prefix)
        else:
            high = b"\x00"  # etcd: "every key >= key"
        return low or b"\x00", high  # etcd refuses an empty key; no key sorts below "\0"

    def kv(self, pb: Any) -> KeyValue:
        return KeyValue(self.name(pb.key), pb.value, pb.create_revision, pb.mod_revision)

    def events(self, pb_events: Any, after: int) -> list[Event]:
        """The events of one watch response with a revision above `after`.

        A create is an event whose version is 1 (the key's first version in this life),
        not one without a prev: a missing prev on an update or a delete means compaction
        removed it, and the event would be wrong (an update that looks like a create, a
        delete without its value). MissingPrevError then."""
        out: list[Event] = []
        for ev in pb_events:
            rev = ev.kv.mod_revision
            if rev <= after:
                continue
            if ev.type == 0 and ev.kv.version == 1:  # PUT
                out.append(Event(EventType.PUT, self.kv(ev.kv), None))
                continue
            if not ev.HasField("prev_kv"):
                raise MissingPrevError(rev)
            prev = self.kv(ev.prev_kv)
            if ev.type == 0:
                out.append(Event(EventType.PUT, self.kv(ev.kv), prev))
            else:
                out.append(Event(EventType.DELETE,
                                 KeyValue(prev.key, prev.value, prev.create_revision, rev), prev))
        return out


def _after_prefix(prefix: bytes) -> bytes:
    """The first byte string after every string that starts with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def store_revision(etcd_revision: int) -> int:
    """etcd counts its empty keyspace as revision 1; the contract counts revisions of
    writes, and an empty store is at 0. Every write makes etcd's revision 2 or more."""
    return 0 if etcd_revision <= 1 else etcd_revision

"""Between the Store contract and etcd's messages: key ranges under a prefix select what the
contract's prefixes select, and watch events become the contract's events (or refuse)."""

from __future__ import annotations

import pytest
from aetcd import rpc
from hypothesis import given
from hypothesis import strategies as st

from control.store.etcd_codec import KeySpace, MissingPrevError, store_revision
from control.store.keyrange import KeyRange
from control.store.protocol import Event, EventType, KeyValue

_segment = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/"),
                   min_size=0, max_size=4)
_keys = st.lists(_segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


def _in(rng: tuple[bytes, bytes], raw: bytes) -> bool:
    low, high = rng
    return low <= raw and (high == b"\x00" or raw < high)


@given(key=_keys, prefix=_keys.map(lambda k: k.rsplit("/", 1)[0] + "/") | _keys,
       store_prefix=st.sampled_from(["", "/a", "/tenant-\u00e9"]))
def test_an_etcd_range_holds_exactly_the_keys_the_store_prefix_selects(
        key: str, prefix: str, store_prefix: str) -> None:
    space = KeySpace(store_prefix.encode())
    assert _in(space.range(prefix), space.key(key)) == (key in KeyRange.of(prefix))


@given(key=_keys, store_prefix=st.sampled_from(["", "/a"]))
def test_the_whole_range_of_a_prefixed_space_holds_its_keys_and_no_others(
        key: str, store_prefix: str) -> None:
    mine, other = KeySpace(store_prefix.encode()), KeySpace(b"/b")
    assert _in(mine.range(""), mine.key(key))
    if store_prefix:
        assert not _in(mine.range(""), other.key(key))


@given(keys=st.lists(_keys, min_size=2, max_size=8, unique=True))
def test_etcd_byte_order_is_the_contracts_code_point_order(keys: list[str]) -> None:
    space = KeySpace(b"/p")
    assert sorted(keys, key=space.key) == sorted(keys)
    assert [space.name(space.key(k)) for k in keys] == keys


def test_start_after_moves_the_low_end_past_that_key() -> None:
    space = KeySpace()
    low, high = space.range("/r/", start_after="/r/b")
    assert (low, high) == (b"/r/b\x00", b"/r0")
    assert space.range("/r/", start_after="/a") == (b"/r/", b"/r0")


def _kv(key: bytes, value: bytes, create: int, mod: int, version: int) -> rpc.KeyValue:
    return rpc.KeyValue(key=key, value=value, create_revision=create, mod_revision=mod, version=version)


def test_watch_events_become_creates_updates_and_deletes_with_what_they_replaced() -> None:
    space = KeySpace(b"/np")
    created = rpc.Event(type=rpc.Event.PUT, kv=_kv(b"/np/k", b"1", 5, 5, 1))
    updated = rpc.Event(type=rpc.Event.PUT, kv=_kv(b"/np/k", b"2", 5, 6, 2),
                        prev_kv=_kv(b"/np/k", b"1", 5, 5, 1))
    deleted = rpc.Event(type=rpc.Event.DELETE, kv=rpc.KeyValue(key=b"/np/k", mod_revision=7),
                        prev_kv=_kv(b"/np/k", b"2", 5, 6, 2))
    assert space.events([created, updated, deleted], 0) == [
        Event(EventType.PUT, KeyValue("/k", b"1", 5, 5), None),
        Event(EventType.PUT, KeyValue("/k", b"2", 5, 6), KeyValue("/k", b"1", 5, 5)),
        Event(EventType.DELETE, KeyValue("/k", b"2", 5, 7), KeyValue("/k", b"2", 5, 6)),
    ]
    assert [e.revision for e in space.events([created, updated, deleted], 5)] == [6, 7]


@pytest.mark.parametrize("event", [
    rpc.Event(type=rpc.Event.PUT, kv=_kv(b"/k", b"2", 5, 6, 2)),
    rpc.Event(type=rpc.Event.DELETE, kv=rpc.KeyValue(key=b"/k", mod_revision=7)),
])
def test_an_update_or_delete_whose_replaced_version_is_compacted_is_refused_not_guessed(
        event: rpc.Event) -> None:
    with pytest.raises(MissingPrevError) as err:
        KeySpace().events([event], 0)
    assert err.value.revision == event.kv.mod_revision


def test_etcds_empty_keyspace_is_revision_zero_and_every_write_keeps_its_revision() -> None:
    assert [store_revision(r) for r in (1, 2, 3, 1000)] == [0, 2, 3, 1000]

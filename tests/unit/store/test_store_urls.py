"""Store URLs: what `--store` accepts, what each form means, and a clear refusal (naming the
URL and what to write) for everything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.store.urls import EtcdURL, SQLiteURL, parse_store_url


@pytest.mark.parametrize(("url", "spec"), [
    ("sqlite:///var/lib/np/state.db", SQLiteURL("/var/lib/np/state.db")),
    ("sqlite://rel/state.db?durability=full&compact_interval=0", SQLiteURL("rel/state.db", "full", 0.0)),
    ("etcd://127.0.0.1:2379", EtcdURL((("127.0.0.1", 2379),))),
    ("etcd://etcd-a:2379,etcd-b:22379,[::1]:2379",
     EtcdURL((("etcd-a", 2379), ("etcd-b", 22379), ("::1", 2379)))),
    ("etcd://etcd-a", EtcdURL((("etcd-a", 2379),))),  # etcd's own client port by default
    ("etcd://127.0.0.1:2379/cluster-a/", EtcdURL((("127.0.0.1", 2379),), "/cluster-a")),
    ("etcd://127.0.0.1:2379/?compact_interval=60", EtcdURL((("127.0.0.1", 2379),), "", 60.0)),
])
def test_a_store_url_names_a_sqlite_file_or_etcd_members(url: str, spec: SQLiteURL | EtcdURL) -> None:
    assert parse_store_url(url) == spec


@pytest.mark.parametrize(("url", "message"), [
    ("etcd://", "names no etcd member; write etcd://HOST:PORT"),
    ("etcd://127.0.0.1:port", "'127.0.0.1:port' is not HOST:PORT"),
    ("etcd://127.0.0.1:2379,", "'' is not HOST:PORT"),
    ("etcd://127.0.0.1:0", "'127.0.0.1:0' is not HOST:PORT"),
    ("etcd://127.0.0.1:70000", "is not HOST:PORT"),
    ("etcd://[::1:2379", "is not HOST:PORT"),
    ("etcd://::1:2379", "is not HOST:PORT"),
    ("etcd://user:pw@127.0.0.1:2379", "authentication is not supported"),
    ("etcd://127.0.0.1:2379/a//b", "has an empty segment"),
    ("etcd://127.0.0.1:2379?timeout=3", r"unknown options \['timeout'\]"),
    ("etcd://127.0.0.1:2379?compact_interval=-1", "compact_interval must be seconds"),
    ("etcds://127.0.0.1:2379", "TLS is not supported"),
    ("mysql://db", "unknown scheme 'mysql'; use sqlite:///PATH or etcd://HOST:PORT"),
])
def test_a_bad_etcd_url_is_a_value_error_that_names_it_and_says_what_to_write(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_store_url(url)
    assert repr(url) in str(err.value)


_hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
_ports = st.integers(1, 65535)
_prefixes = st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True), max_size=3).map(
    lambda parts: "".join(f"/{p}" for p in parts))


@given(endpoints=st.lists(st.tuples(_hosts, _ports), min_size=1, max_size=5), prefix=_prefixes,
       interval=st.integers(0, 10_000))
def test_every_etcd_url_written_from_its_parts_parses_back_to_them(
        endpoints: list[tuple[str, int]], prefix: str, interval: int) -> None:
    netloc = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in endpoints)
    spec = parse_store_url(f"etcd://{netloc}{prefix}?compact_interval={interval}")
    assert spec == EtcdURL(tuple(endpoints), prefix, float(interval))


@given(st.text(max_size=40))
def test_any_text_parses_or_is_refused_with_a_value_error(text: str) -> None:
    for url in (text, f"etcd://{text}", f"sqlite://{text}"):
        error = None
        try:
            parse_store_url(url)
        except ValueError as exc:
            error = str(exc)
        assert error is None or repr(url) in error

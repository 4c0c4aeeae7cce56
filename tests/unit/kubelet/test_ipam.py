"""Host-local IPAM: never an address twice, the same one again for the same pod, never the
network, gateway or broadcast address, leaks reclaimed, state that survives a restart."""

from __future__ import annotations

import ipaddress
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.kubelet.ipam import LAST_RESERVED, HostLocalIPAM, IPAMExhausted, candidates, usable


def test_the_first_addresses_skip_the_network_and_the_gateway(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/24", tmp_path)
    assert ipam.gateway == "10.244.1.1"
    assert [ipam.allocate("uid-a"), ipam.allocate("uid-b")] == ["10.244.1.2", "10.244.1.3"]


def test_a_pod_gets_the_same_address_again_also_after_a_restart(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/24", tmp_path)
    a = ipam.allocate("uid-a")
    ipam.allocate("uid-b")
    assert ipam.allocate("uid-a") == a
    restarted = HostLocalIPAM("10.244.1.0/24", tmp_path)
    assert restarted.allocate("uid-a") == a
    assert restarted.lookup("uid-a") == a and restarted.owner(a) == "uid-a"


def test_each_held_address_is_a_file_named_for_it_holding_the_pod_uid(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/24", tmp_path)
    ip = ipam.allocate("3f2a9c1e-0000-4000-8000-000000000001")
    assert (tmp_path / ip).read_text() == "3f2a9c1e-0000-4000-8000-000000000001"
    assert (tmp_path / LAST_RESERVED).read_text() == ip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_released_address_is_handed_out_again_only_after_the_others(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/29", tmp_path)  # usable .2 - .6
    for uid in ("a", "b", "c"):
        ipam.allocate(uid)
    assert ipam.release("b") == ["10.244.1.3"]
    assert ipam.release("b") == []
    assert [ipam.allocate(u) for u in ("d", "e", "f")] == ["10.244.1.5", "10.244.1.6", "10.244.1.3"]


def test_the_broadcast_address_is_never_handed_out(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/29", tmp_path)
    got = {ipam.allocate(f"uid-{i}") for i in range(5)}
    assert got == {f"10.244.1.{i}" for i in range(2, 7)}
    with pytest.raises(IPAMExhausted, match=r"10\.244\.1\.0/29"):
        ipam.allocate("one-too-many")


def test_a_full_range_says_so_and_frees_up_after_a_release(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/30", tmp_path)  # .1 is the gateway, .2 the only pod address
    assert ipam.allocate("a") == "10.244.1.2"
    with pytest.raises(IPAMExhausted):
        ipam.allocate("b")
    ipam.release("a")
    assert ipam.allocate("b") == "10.244.1.2"


def test_reclaim_frees_the_addresses_of_pods_that_are_gone(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/24", tmp_path)
    ips = {uid: ipam.allocate(uid) for uid in ("a", "b", "c")}
    assert HostLocalIPAM("10.244.1.0/24", tmp_path).reclaim({"a", "c", "never-held"}) == [ips["b"]]
    assert ipam.lookup("b") is None
    assert ipam.held() == {ips["a"]: "a", ips["c"]: "c"}


def test_an_address_from_a_former_pod_cidr_is_replaced(tmp_path: Path) -> None:
    HostLocalIPAM("10.244.1.0/24", tmp_path).allocate("a")
    ipam = HostLocalIPAM("10.244.7.0/24", tmp_path)
    assert ipam.allocate("a") == "10.244.7.2"
    assert ipam.held_ips() == ["10.244.7.2"]


def test_files_that_are_not_addresses_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("x")
    ipam = HostLocalIPAM("10.244.1.0/24", tmp_path)
    ipam.allocate("a")
    assert ipam.held_ips() == ["10.244.1.2"]


@pytest.mark.parametrize("cidr", ["10.244.1.0/31", "10.244.1.1/32", "fd00::/64"])
def test_ranges_without_room_for_a_gateway_and_pods_are_refused(tmp_path: Path, cidr: str) -> None:
    with pytest.raises(ValueError, match="pod CIDR"):
        HostLocalIPAM(cidr, tmp_path)


@pytest.mark.parametrize("uid", ["", " a", "a\nb"])
def test_unusable_uids_are_refused(tmp_path: Path, uid: str) -> None:
    with pytest.raises(ValueError, match="pod uid"):
        HostLocalIPAM("10.244.1.0/24", tmp_path).allocate(uid)


def test_concurrent_allocations_from_two_instances_never_share_an_address(tmp_path: Path) -> None:
    # Two instances over one directory stand for two kubelet processes (the file lock).
    pools = [HostLocalIPAM("10.244.1.0/24", tmp_path) for _ in range(2)]
    got: dict[str, str] = {}
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(30):
            uid = f"pod-{n}-{i}"
            ip = pools[n % 2].allocate(uid)
            assert pools[(n + 1) % 2].allocate(uid) == ip  # the same pod, the other instance
            with lock:
                got[uid] = ip

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 180 and len(set(got.values())) == 180


def test_candidates_start_after_the_last_address_and_wrap_round() -> None:
    net = ipaddress.IPv4Network("10.0.0.0/29")
    assert [str(a) for a in usable(net)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    assert list(candidates(net, "10.0.0.4")) == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert next(candidates(net, None)) == "10.0.0.2"
    assert next(candidates(net, "192.168.0.1")) == "10.0.0.2"  # from another CIDR


_ops = st.lists(st.tuples(st.sampled_from(["allocate", "release", "reclaim"]),
                          st.integers(min_value=0, max_value=7)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=_ops)
def test_any_sequence_keeps_one_address_per_pod_and_one_pod_per_address(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        ipam = HostLocalIPAM("10.244.3.0/29", Path(d))  # 5 addresses for 8 pods: exhaustion happens
        model: dict[str, str] = {}
        for op, n in ops:
            uid = f"pod-{n}"
            if op == "allocate":
                try:
                    ip = ipam.allocate(uid)
                except IPAMExhausted:
                    assert uid not in model and len(model) == 5
                    continue
                assert model.setdefault(uid, ip) == ip
            elif op == "release":
                ipam.release(uid)
                model.pop(uid, None)
            else:
                live = {f"pod-{i}" for i in range(n)}
                ipam.reclaim(live)
                model = {u: ip for u, ip in model.items() if u in live}
            held = ipam.held()
            assert held == {ip: u for u, ip in model.items()}
            assert not {"10.244.3.0", "10.244.3.1", "10.244.3.7"} & set(held)

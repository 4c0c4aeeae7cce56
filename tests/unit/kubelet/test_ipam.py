"""Host-local IPAM: no address twice, the same one again for the same pod, leaks reclaimed."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.kubelet.ipam import HostLocalIPAM, IPAMExhausted


def test_addresses_skip_the_gateway_and_are_stable_per_pod(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/24", tmp_path)
    a, b = ipam.allocate("uid-a"), ipam.allocate("uid-b")
    assert (a, b) == ("10.244.1.2", "10.244.1.3")
    assert ipam.allocate("uid-a") == a
    assert HostLocalIPAM("10.244.1.0/24", tmp_path).allocate("uid-a") == a  # after a restart


def test_released_addresses_are_reused_and_leaks_reclaimed(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/24", tmp_path)
    for uid in ("a", "b", "c"):
        ipam.allocate(uid)
    ipam.release("b")
    assert ipam.allocate("d") == "10.244.1.3"
    assert sorted(ipam.reclaim({"a", "d"})) == ["10.244.1.4"]
    assert ipam.lookup("c") is None


def test_a_full_range_says_so(tmp_path: Path) -> None:
    ipam = HostLocalIPAM("10.244.1.0/30", tmp_path)  # hosts .1 (gateway) and .2
    ipam.allocate("a")
    with pytest.raises(IPAMExhausted):
        ipam.allocate("b")

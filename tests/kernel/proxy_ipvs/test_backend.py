"""The IPVS backend against the guest kernel, driven directly (no apiserver): what it
programs equals what `proxy render` prints, schedulers and persistence reach the kernel,
a full sync repairs exactly what someone changed, a partial sync reads and writes only
the service that changed, and excluded ranges are left alone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from netplane.ctl.manifests import load
from netplane.kernel.iptables import Iptables
from netplane.model import ProxyState, StateChange, diff
from netplane.model.servicemap import Endpoint, ServicePort, ServicePortName
from netplane.proxy_ipvs.backend import IpvsBackend
from netplane.proxy_ipvs.planner import Plan, PlanOptions
from netplane.proxy_ipvs.render import ipvsadm_text

pytestmark = [pytest.mark.uml, pytest.mark.root]

DATA = Path(__file__).parents[2] / "unit" / "proxy_ipvs" / "testdata"
NODE_IP = "192.168.77.10"


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def kernel_ipvsadm() -> list[str]:
    return sorted(sh("ipvsadm", "-Sn").splitlines())


@pytest.fixture
def node_ip() -> Iterator[str]:
    """The guest's root namespace plays the node: an address for node ports; everything
    the backend made is removed afterwards."""
    sh("ip", "link", "add", "np-eth0", "type", "dummy")
    sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", "np-eth0")
    try:
        yield NODE_IP
    finally:
        IpvsBackend("node-1", iptables=Iptables("legacy")).cleanup()
        subprocess.run(["ip", "link", "del", "np-eth0"], check=False)


def backend(**kwargs: object) -> IpvsBackend:
    return IpvsBackend("node-1", iptables=Iptables("legacy"), cluster_cidr="10.0.0.0/24",
                       drain_check_interval=0, **kwargs)  # type: ignore[arg-type]


def representative() -> ProxyState:
    objects = [m.obj for m in load([DATA / "representative.yaml"])]
    return ProxyState.build([o for o in objects if o["kind"] == "Service"],
                            [o for o in objects if o["kind"] == "EndpointSlice"])


def synthetic(services: int, endpoints: int, moved: int = -1) -> ProxyState:
    svcs, eps = {}, {}
    for i in range(services):
        name = ServicePortName("bench", f"s{i}", "p", "TCP")
        svcs[name] = ServicePort((f"10.96.{i // 250}.{i % 250 + 1}",), 80, "TCP", target_port=8080)
        eps[name] = tuple(Endpoint(f"10.200.{i}.{j + (100 if i == moved and j == 0 else 1)}", 8080,
                                   node_name="node-2") for j in range(endpoints))
    return ProxyState(MappingProxyType(svcs), MappingProxyType(eps))


def test_the_kernel_holds_exactly_what_render_prints(node_ip: str) -> None:
    state = representative()
    b = backend()
    b.sync_blocking(state, diff(ProxyState(), state), True)
    plan = Plan.build(state, PlanOptions("node-1", (node_ip,)))
    assert kernel_ipvsadm() == sorted(ipvsadm_text(plan).splitlines())
    members = {line for line in sh("ipset", "save").splitlines() if line.startswith("add ")}
    assert members == {f"add {name} {entry}" for name, entries in plan.ipsets().items() for entry in entries}
    lines = sh("ip", "-4", "-o", "addr", "show", "dev", "kube-ipvs0").splitlines()
    bound = {line.split()[3] for line in lines}  # "3: kube-ipvs0    inet 10.96.0.1/32 scope global ..."
    assert bound == {f"{ip}/32" for ip in plan.vips}


@pytest.mark.parametrize(("scheduler", "flags"), [("wrr", ""), ("lc", ""), ("sh", ""), ("mh", " -b mh-port")])
def test_the_scheduler_and_persistence_reach_the_kernel(node_ip: str, scheduler: str, flags: str) -> None:
    state = representative()
    backend(scheduler=scheduler).sync_blocking(state, diff(ProxyState(), state), True)
    lines = kernel_ipvsadm()
    assert f"-A -t 172.30.0.41:80 -s {scheduler}{flags}" in lines
    # ClientIP affinity with a 3600 s timeout is IPVS persistence.
    assert f"-A -t 172.30.0.50:80 -s {scheduler} -p 3600{flags}" in lines


def test_a_full_sync_repairs_exactly_what_was_changed_behind_its_back(node_ip: str) -> None:
    state = representative()
    b = backend()
    b.sync_blocking(state, diff(ProxyState(), state), True)
    wanted = kernel_ipvsadm()
    sh("ipvsadm", "-d", "-t", "172.30.0.43:80", "-r", "10.180.1.1:8080")
    sh("ipvsadm", "-E", "-t", "172.30.0.41:80", "-s", "wlc")
    sh("ipvsadm", "-A", "-t", "10.0.0.99:99", "-s", "rr")
    sh("ipset", "del", "KUBE-CLUSTER-IP", "172.30.0.42,tcp:80")
    sh("ip", "addr", "del", "172.30.0.42/32", "dev", "kube-ipvs0")
    b.sync_blocking(state, StateChange(), True)
    ops = b.last_ops
    assert [str(k) for k, _ in ops.add_reals] == ["TCP/172.30.0.43:80"]
    assert [str(vs.key) for vs in ops.edit_services] == ["TCP/172.30.0.41:80"]
    assert [str(k) for k in ops.delete_services] == ["TCP/10.0.0.99:99"]
    assert not ops.add_services and not ops.delete_reals
    assert kernel_ipvsadm() == wanted
    assert "172.30.0.42,tcp:80" in sh("ipset", "list", "KUBE-CLUSTER-IP")
    assert "172.30.0.42/32" in sh("ip", "-4", "addr", "show", "dev", "kube-ipvs0")


def test_a_partial_sync_reads_and_writes_only_the_changed_service(node_ip: str) -> None:
    before, after = synthetic(200, 10), synthetic(200, 10, moved=7)
    b = backend()
    b.sync_blocking(before, diff(ProxyState(), before), True)
    # Someone deletes a real server of another service: a partial sync does not look there.
    sh("ipvsadm", "-d", "-t", "10.96.0.4:80", "-r", "10.200.3.1:8080")
    b.sync_blocking(after, diff(before, after), False)
    ops = b.last_ops
    assert [(str(v), str(r)) for v, r in ops.add_reals] == [("TCP/10.96.0.8:80", "10.200.7.100:8080")]
    assert [(str(v), str(r)) for v, r in ops.delete_reals] == [("TCP/10.96.0.8:80", "10.200.7.1:8080")]
    assert "-a -t 10.96.0.4:80 -r 10.200.3.1:8080 -m -w 1" not in kernel_ipvsadm()
    b.sync_blocking(after, StateChange(), True)  # a full one does
    assert "-a -t 10.96.0.4:80 -r 10.200.3.1:8080 -m -w 1" in kernel_ipvsadm()
    assert b.last_ops.count == 1


def test_virtual_servers_in_excluded_ranges_are_left_alone(node_ip: str) -> None:
    state = representative()
    sh("ipvsadm", "-A", "-t", "10.99.0.1:80", "-s", "rr")
    backend(exclude_cidrs=("10.99.0.0/16",)).sync_blocking(state, diff(ProxyState(), state), True)
    assert "-A -t 10.99.0.1:80 -s rr" in kernel_ipvsadm()


def test_ipvs_timeouts_are_set_as_ipvsadm_set_does(node_ip: str) -> None:
    state = representative()
    backend(tcp_timeout=900, tcp_fin_timeout=60, udp_timeout=120).sync_blocking(
        state, diff(ProxyState(), state), True)
    assert "Timeout (tcp tcpfin udp): 900 60 120" in sh("ipvsadm", "-L", "--timeout")

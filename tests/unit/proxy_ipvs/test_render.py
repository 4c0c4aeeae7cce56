"""`netplane proxy render --mode ipvs`: the virtual and real servers, VIPs, ipset members and
iptables rules IPVS mode would program, against a golden file reviewed line by line
against kube-proxy's IPVS proxier; bad input is one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from netplane.ctl.manifests import load
from netplane.model import ProxyState
from netplane.proxy_ipvs.iptables_rules import RuleOptions
from netplane.proxy_ipvs.planner import PlanOptions
from netplane.proxy_ipvs.render import render_text
from tests.golden import assert_golden

DATA = Path(__file__).parent / "testdata"
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]
ARGS = ["--node-name", "node-1", "--node-ip", "192.168.77.10", "--cluster-cidr", "10.0.0.0/24"]


def _state() -> ProxyState:
    objects = [m.obj for m in load([DATA / "representative.yaml"])]
    return ProxyState.build([o for o in objects if o["kind"] == "Service"],
                            [o for o in objects if o["kind"] == "EndpointSlice"])


def test_representative_services_render_as_the_golden_file() -> None:
    text = render_text(_state(), PlanOptions("node-1", ("192.168.77.10",)),
                       RuleOptions(cluster_cidr="10.0.0.0/24"))
    assert_golden(text, DATA / "representative.ipvs")


def test_the_command_prints_the_golden_file() -> None:
    out = subprocess.run([*NETPLANE, "proxy", "render", "--mode", "ipvs", "-f",
                          str(DATA / "representative.yaml"), *ARGS],
                         capture_output=True, text=True, check=True)
    assert out.stdout == (DATA / "representative.ipvs").read_text()
    assert "2 services without a ClusterIP" in out.stderr


def test_the_mh_scheduler_hashes_source_ports_and_without_a_cidr_the_node_is_masqueraded() -> None:
    text = render_text(_state(), PlanOptions("node-1", (), "mh"), RuleOptions())
    assert "-A -t 172.30.0.41:80 -s mh -b mh-port\n" in text
    assert "-A -t 172.30.0.50:80 -s mh -p 3600 -b mh-port\n" in text
    assert "-m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ" in text
    assert ":30080" not in text, "no node address: no node-port virtual servers"


def test_masquerade_all_marks_every_cluster_ip_packet() -> None:
    text = render_text(_state(), PlanOptions("node-1"),
                       RuleOptions(masquerade_all=True, cluster_cidr="10.0.0.0/24"))
    assert "-m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ\n" in text


def _render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETPLANE, "proxy", "render", "--mode", "ipvs", *args], capture_output=True,
                          text=True)


def test_an_unknown_scheduler_is_one_line_and_exit_2() -> None:
    out = _render("-f", str(DATA / "representative.yaml"), "--ipvs-scheduler", "fastest")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "fastest" in out.stderr and "rr" in out.stderr


def test_a_bad_node_ip_is_one_line_and_exit_2() -> None:
    out = _render("-f", str(DATA / "representative.yaml"), "--node-ip", "300.1.1.1")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "--node-ip" in out.stderr


def test_a_broken_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
    out = _render("-f", str(tmp_path / "bad.yaml"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "bad.yaml" in out.stderr

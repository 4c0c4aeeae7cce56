"""The report as people and programs read it, and the command's answers to bad input."""

from __future__ import annotations

import json

import pytest

from netplane.cli.main import main
from netplane.trace.evidence import choose, rule_id
from netplane.trace.packet import Packet, TargetError, parse_target
from netplane.trace.report import Hop, Outcome, Report, netfilter_view
from netplane.trace.text import render
from netplane.trace.walker import walk
from tests.unit.trace.fixtures import NODE, POD, representative

RULES = representative()


def _report(dst: str, port: int) -> Report:
    pkt = Packet("tcp", POD, 40000, dst, port)
    paths = walk(RULES, pkt, NODE, "cbr0")
    deltas = {rule_id(r): 0 for r in RULES.rules()}
    for s in paths[0].fired:
        assert s.rule is not None
        deltas[rule_id(s.rule)] = 1
    choice = choose(paths, deltas)
    nf = netfilter_view("nft", choice, len(paths), deltas, None)
    outcome = Outcome("delivered", "DNAT on node-1 chose it", "10.180.0.1:8080", "ns1/three-abc")
    hop = Hop("node-1", "np-x-node-1", "iptables", str(pkt), "cbr0", "forwarded", "", nf)
    pod = {"namespace": "default", "name": "client", "ip": POD, "node": "node-1", "netns": "np-x-p-1"}
    answer = {"kind": "syn-ack", "src": dst, "sport": port, "detail": "SA", "after_ms": 0.5}
    return Report(pod,
                  {"ip": dst, "port": port, "proto": "tcp", "service": "ns1/three", "kind": "cluster IP",
                   "endpoints": 3, "ready": 3},
                  {"netns": "np-x-p-1", "src": POD, "sport": 40000, "sent": ["SYN"], "handshake": False,
                   "answers": [answer]},
                  (hop,), outcome)


def test_the_text_shows_each_rule_with_its_counter_and_the_statistic_choice() -> None:
    text = render(_report("172.30.0.43", 80))
    lines = text.splitlines()
    assert lines[0].startswith("trace: pod default/client (10.0.0.5 on node-1) -> 172.30.0.43:80/TCP, "
                               "service ns1/three (cluster IP, 3 endpoints, 3 ready)")
    assert "answer: syn-ack from 172.30.0.43:80 (SA) after 0.5 ms" in lines
    assert "    +1  nat PREROUTING #1: jump KUBE-SERVICES" in lines
    chosen = next(line for line in lines if "KUBE-SVC-CYJJNRDIWBDS7HGJ #" in line and "taken]" in line)
    assert chosen.strip().startswith("+1") and "statistic match: random with probability 0.3333" in chosen
    assert "  path: 3 paths possible; only this path's rules all counted the probe" in lines
    assert lines[-1] == ("result: DELIVERED endpoint 10.180.0.1:8080 (pod ns1/three-abc): "
                         "DNAT on node-1 chose it")


def test_the_json_holds_every_step_with_its_counter() -> None:
    data = json.loads(_report("172.30.0.43", 80).to_json())
    steps = data["hops"][0]["netfilter"]["steps"]
    assert steps[0]["chain"] == "PREROUTING" and steps[0]["packets"] == 1
    assert any(s["assumed"] and s["probability"] for s in steps)
    assert data["outcome"]["endpoint"] == "10.180.0.1:8080"


@pytest.mark.parametrize(("text", "message"), [
    ("10.96.0.10", "is not VIP:PORT"), ("web:80", "is not an IP address"), ("10.96.0.10:0", "is not a port"),
    ("10.96.0.10:http", "is not a port"), ("[fd00::1]:80", "only IPv4")])
def test_a_bad_target_is_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_target(text)
    assert parse_target("10.96.0.10:53") == ("10.96.0.10", 53)


def test_the_command_refuses_a_bad_target_in_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--from", "client", "--to", "10.96.0.10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("netplane trace: --to: '10.96.0.10' is not VIP:PORT")


def test_the_command_needs_root(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main(["trace", "--from", "client", "--to", "10.96.0.10:53"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run it as root" in err

"""`netplane trace` on a real 2-node cluster per proxy mode: a probe crafted with scapy
leaves a client pod on node-1, and the trace must show the path the kernel (or the
userspace proxy) really gave it. IPVS mode runs the same tests inside user-mode Linux
(tests/kernel/test_trace_ipvs.py). Each claim is checked against something the trace did
not produce itself: the endpoint a UDP probe names is the pod that answered it, the
counters and conntrack entries read independently with iptables-save and conntrack."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from control.cluster.layout import Layout
from netplane.trace.namespaces import NodeHandle
from netplane.trace.prober import Prober
from netplane.trace.proxyapi import ProxyUnreachable, proxy_mode
from tests.e2e.conftest import NETPLANE, eventually, running_cluster

NETEXEC = [sys.executable, "-m", "netplane.cli.main", "agnhost", "netexec", "--http-port", "8080",
           "--udp-port", "8081"]
MODES = ["userspace", "iptables"]


def _pod(name: str, node: str, labels: dict[str, str], command: list[str], ready: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "netplane/agnhost", "command": command}
    if ready:
        container["ports"] = [{"name": "http", "containerPort": 8080},
                              {"name": "udp", "containerPort": 8081, "protocol": "UDP"}]
        container["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [container], "terminationGracePeriodSeconds": 1}}


def _service(name: str, selector: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": selector}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "udp", "port": 90, "targetPort": 8081, "protocol": "UDP"}], **spec}}


@pytest.fixture(scope="module", params=MODES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    """Shadows the session cluster: one per proxy mode."""
    with running_cluster(tmp_path_factory.mktemp(f"trace-{request.param}") / "state",
                         "--proxy-mode", request.param) as layout:
        yield layout


def _mode(cluster: Layout) -> str:
    record = cluster.read_record()
    assert record is not None
    return record.proxy_mode


def _nodes(cluster: Layout) -> dict[str, Any]:
    record = cluster.read_record()
    assert record is not None
    return {n.name: n for n in record.nodes}


def in_netns(netns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True,
                          check=True).stdout


def real_servers(netns: str, proto: str, vip: str, port: int) -> list[str] | None:
    """ipvsadm's real servers ("ip:port") of one virtual server; None when there is none."""
    found = subprocess.run(["ip", "netns", "exec", netns, "ipvsadm", "-Ln", f"--{proto}-service",
                            f"{vip}:{port}"], capture_output=True, text=True)
    if found.returncode != 0:
        return None
    return [line.split()[1] for line in found.stdout.splitlines()
            if line.split()[:1] == ["->"] and line.split()[1][0].isdigit()]


def ipvs_connections(netns: str) -> list[str]:
    """The IPVS connection table as ipvsadm prints it (-Lnc), one line per entry."""
    return in_netns(netns, "ipvsadm", "-Lnc").splitlines()[2:]


def _programmed(cluster: Layout, mode: str, web: str, empty: str) -> bool:
    """Both nodes' proxies serve tr-web with its two endpoints and tr-empty with none."""
    for node in _nodes(cluster).values():
        if mode == "ipvs":
            if len(real_servers(node.netns, "tcp", web, 80) or []) != 2 or real_servers(
                    node.netns, "tcp", empty, 80) != []:
                return False
        elif mode == "iptables":
            saved = in_netns(node.netns, "iptables-save")
            if (saved.count('"default/tr-web:http -> ') != 2
                    or "default/tr-empty:http has no endpoints" not in saved):
                return False
        else:
            out = in_netns(node.netns, "curl", "-s", "http://127.0.0.1:10249/debug/userspace/listeners")
            listeners = {(e["service"], e["kind"]): e for e in json.loads(out)}
            web = listeners.get(("default/tr-web:http", "cluster IP"))
            empty = ("default/tr-empty:http", "cluster IP")
            if web is None or len(web["endpoints"]) != 2 or empty not in listeners:
                return False
    return True


@pytest.fixture(scope="module")
def setup(cluster: Layout) -> dict[str, Any]:
    api = k8s_config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
    core = k8s.CoreV1Api(api)
    for i in (1, 2):
        core.create_namespaced_pod("default", _pod(f"tr-web-{i}", f"node-{i}", {"app": "tr-web"}, NETEXEC,
                                                   True))
    core.create_namespaced_pod("default", _pod("tr-client", "node-1", {"app": "tr-client"},
                                               ["sleep", "1000000"], False))
    web = core.create_namespaced_service("default", _service("tr-web", "tr-web", type="NodePort"))
    empty = core.create_namespaced_service("default", _service("tr-empty", "nothing-has-this-label"))

    def running() -> dict[str, str] | None:
        pods = {p.metadata.name: p for p in core.list_namespaced_pod("default").items}
        if len(pods) < 3 or any(p.status.phase != "Running" or not p.status.pod_ip for p in pods.values()):
            return None
        return {name: p.status.pod_ip for name, p in pods.items()}

    ips = eventually(running, "the trace test's pods to run")
    eventually(lambda: _programmed(cluster, _mode(cluster), web.spec.cluster_ip, empty.spec.cluster_ip),
               "both proxies to serve the services")
    api.close()
    return {"web": web.spec.cluster_ip, "empty": empty.spec.cluster_ip, "ips": ips,
            "node_port": next(p.node_port for p in web.spec.ports if p.name == "http"),
            "backends": {ips["tr-web-1"]: "tr-web-1", ips["tr-web-2"]: "tr-web-2"}}


def trace(cluster: Layout, *args: str, json_out: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETPLANE, "trace", "--kubeconfig", str(cluster.admin_kubeconfig), "--from",
                           "tr-client", *args, *(["-o", "json"] if json_out else [])],
                          capture_output=True, text=True, timeout=120)


def report(cluster: Layout, *args: str) -> dict[str, Any]:
    out = trace(cluster, *args)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def _steps(hop: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in hop["netfilter"]["steps"] if s["kind"] == "rule"]


def _dnat_counters(netns: str, service: str) -> dict[str, int]:
    """Packets per endpoint of `service`'s DNAT rules, read with iptables-save -c."""
    out = {}
    for line in in_netns(netns, "iptables-save", "-c", "-t", "nat").splitlines():
        if f'--comment "{service}"' in line and "-j DNAT" in line:
            packets = int(line[1:line.index(":")])
            out[line.rsplit("--to-destination ", 1)[1]] = packets
    return out


def test_a_working_service_shows_its_path_and_the_endpoint_the_kernel_or_proxy_chose(
        cluster: Layout, setup: dict[str, Any]) -> None:
    mode = _mode(cluster)
    node1 = _nodes(cluster)["node-1"]
    before = _dnat_counters(node1.netns, "default/tr-web:http") if mode == "iptables" else {}
    data = report(cluster, "--to", f"{setup['web']}:80")
    outcome, [hop] = data["outcome"], data["hops"]
    assert outcome["verdict"] == "delivered", outcome
    endpoint = outcome["endpoint"]
    assert endpoint.rpartition(":")[0] in setup["backends"] and endpoint.endswith(":8080")
    assert outcome["endpoint_pod"] == f"default/{setup['backends'][endpoint.rpartition(':')[0]]}"
    assert data["probe"]["answers"][0]["kind"] == "syn-ack"
    assert data["target"]["service"] == "default/tr-web:http" and data["target"]["ready"] == 2
    if mode == "iptables":
        steps = _steps(hop)
        chains = [s["chain"] for s in steps]
        assert chains[:2] == ["PREROUTING", "KUBE-SERVICES"]
        assert chains[2].startswith("KUBE-SVC-") and chains[3].startswith("KUBE-SEP-")
        dnat = next(s for s in steps if s["action"].startswith("DNAT"))
        assert dnat["action"] == f"DNAT to {endpoint}" and dnat["packets"] >= 1
        assert f"DNAT to {endpoint}" in hop["netfilter"]["conntrack"]
        assert hop["netfilter"]["fits"]
        # Read back on our own: the chosen endpoint's DNAT rule counted the probe, the
        # other one nothing (no one else talks to this service).
        after = _dnat_counters(node1.netns, "default/tr-web:http")
        assert after[endpoint] - before[endpoint] >= 1
        assert all(after[ep] == before[ep] for ep in after if ep != endpoint)
    elif mode == "ipvs":
        steps = _steps(hop)
        assert [s["chain"] for s in steps][:2] == ["PREROUTING", "KUBE-SERVICES"]
        assert any("--match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT" in s["rule"] for s in steps)
        assert hop["netfilter"]["fits"]
        proxy = hop["proxy"]["data"]
        assert proxy["virtual_server"]["address"] == f"{setup['web']}:80"
        assert sorted(r["address"] for r in proxy["virtual_server"]["reals"]) == sorted(
            f"{ip}:8080" for ip in setup["backends"])
        assert proxy["connection"]["real"] == endpoint
        # The kernel's own word, read with ipvsadm: the probe's connection went there.
        client = f"{data['probe']['src']}:{data['probe']['sport']}"
        assert any(client in line and line.rstrip().endswith(endpoint) for line in ipvs_connections(
            _nodes(cluster)["node-1"].netns)), ipvs_connections(_nodes(cluster)["node-1"].netns)
    else:
        proxy = hop["proxy"]["data"]
        assert proxy["listener"]["address"] == setup["web"] and proxy["listener"]["port"] == 80
        assert f"{setup['web']}:80" in proxy["kernel_sockets"]
        assert proxy["pick"]["endpoint"] == endpoint
        assert proxy["pick"]["client"] == f"{data['probe']['src']}:{data['probe']['sport']}"


def test_a_udp_probe_names_the_endpoint_that_answered_it(cluster: Layout, setup: dict[str, Any]) -> None:
    data = report(cluster, "--to", f"{setup['web']}:90", "--proto", "udp")
    answer = next(a for a in data["probe"]["answers"] if a["kind"] == "udp")
    # netexec answers "hostname" with its pod's name: the trace must name the same pod.
    assert data["outcome"]["endpoint_pod"] == f"default/{answer['detail']}", data["outcome"]


def test_a_service_without_endpoints_shows_the_rejection_and_why(cluster: Layout,
                                                                setup: dict[str, Any]) -> None:
    out = trace(cluster, "--to", f"{setup['empty']}:80", json_out=False)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "result: REJECTED: service default/tr-empty:http has no ready endpoints" in text
    data = report(cluster, "--to", f"{setup['empty']}:80")
    assert data["outcome"]["verdict"] == "rejected"
    if _mode(cluster) == "iptables":
        stop = _steps(data["hops"][0])[-1]
        assert (stop["table"], stop["chain"], stop["action"]) == ("filter", "KUBE-SERVICES",
                                                                  "REJECT with icmp-port-unreachable")
        assert stop["comment"] == "default/tr-empty:http has no endpoints" and stop["packets"] >= 1
        assert "REJECT with icmp-port-unreachable" in text and "-j REJECT" in text
        [answer] = data["probe"]["answers"]
        assert answer["kind"] == "icmp-unreachable" and answer["detail"].startswith("port-unreachable")
    elif _mode(cluster) == "ipvs":
        # IPVS itself answers: a virtual server without real servers sends port unreachable.
        assert data["hops"][0]["proxy"]["data"]["virtual_server"]["reals"] == []
        assert "has no real servers" in data["outcome"]["reason"] and "ICMP port unreachable" in text
        [answer] = data["probe"]["answers"]
        assert answer["kind"] == "icmp-unreachable" and answer["detail"].startswith("port-unreachable")
    else:
        assert "the userspace proxy reset the connection" in data["outcome"]["reason"]
        assert [a["kind"] for a in data["probe"]["answers"]] == ["syn-ack", "reset"]
        assert data["hops"][0]["proxy"]["data"]["pick"]["endpoint"] is None


def test_a_udp_probe_to_a_service_without_endpoints_is_stopped(cluster: Layout,
                                                               setup: dict[str, Any]) -> None:
    data = report(cluster, "--to", f"{setup['empty']}:90", "--proto", "udp")
    verdict = "dropped" if _mode(cluster) == "userspace" else "rejected"
    assert data["outcome"]["verdict"] == verdict
    assert data["outcome"]["reason"].startswith("service default/tr-empty:udp has no ready endpoints")


def test_a_node_port_reached_from_a_pod_on_the_other_node(cluster: Layout, setup: dict[str, Any]) -> None:
    node2 = _nodes(cluster)["node-2"]
    data = report(cluster, "--to", f"{node2.underlay_ip}:{setup['node_port']}")
    assert [h["node"] for h in data["hops"]] == ["node-1", "node-2"]
    first, second = data["hops"]
    assert first["outcome"].startswith(f"forwarded to {node2.underlay_ip}:{setup['node_port']}")
    assert data["target"]["kind"] == "node port"
    outcome = data["outcome"]
    assert outcome["verdict"] == "delivered" and outcome["endpoint"].rpartition(":")[0] in setup["backends"]
    if _mode(cluster) == "iptables":
        chains = [s["chain"] for s in _steps(second)]
        assert "KUBE-NODEPORTS" in chains and any(c.startswith("KUBE-EXT-") for c in chains)
        # Masqueraded to node-2's address on the way to the endpoint: its bridge's for the
        # endpoint on node-2, its underlay address for the one back on node-1.
        local = setup["backends"][outcome["endpoint"].rpartition(":")[0]] == "tr-web-2"
        source = "10.244.2.1 (cbr0)" if local else f"{node2.underlay_ip} (eth0)"
        assert _steps(second)[-1]["action"] == f"MASQUERADE: source becomes {source}"
        assert f"DNAT to {outcome['endpoint']}" in second["netfilter"]["conntrack"]
        flows = in_netns(node2.netns, "conntrack", "-L", "-p", "tcp", "--sport", str(data["probe"]["sport"]))
        assert f"src={outcome['endpoint'].rpartition(':')[0]}" in flows  # the kernel's own word
    elif _mode(cluster) == "ipvs":
        assert any("KUBE-NODE-PORT" in s["rule"] for s in _steps(second))
        proxy = second["proxy"]["data"]
        assert proxy["virtual_server"]["address"] == f"{node2.underlay_ip}:{setup['node_port']}"
        assert proxy["connection"]["real"] == outcome["endpoint"]
        client = f"{data['probe']['src']}:{data['probe']['sport']}"
        assert any(client in line and line.rstrip().endswith(outcome["endpoint"])
                   for line in ipvs_connections(node2.netns))
    else:
        assert second["proxy"]["data"]["listener"]["kind"] == "node port"
        assert second["proxy"]["data"]["pick"]["endpoint"] == outcome["endpoint"]


def test_bad_input_gets_one_line_and_a_failing_exit(cluster: Layout, setup: dict[str, Any]) -> None:
    unknown = subprocess.run([*NETPLANE, "trace", "--kubeconfig", str(cluster.admin_kubeconfig), "--from",
                              "no-such-pod", "--to", f"{setup['web']}:80"], capture_output=True, text=True)
    assert unknown.returncode == 1
    assert unknown.stderr == "netplane trace: pod default/no-such-pod not found (is -n/--namespace right?)\n"
    bad = trace(cluster, "--to", "web:80")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not an IP address" in bad.stderr


def test_a_node_without_a_proxy_listening_is_named(cluster: Layout) -> None:
    node = _nodes(cluster)["node-1"]
    assert proxy_mode(NodeHandle("node-1", node.netns)) == _mode(cluster)
    with pytest.raises(ProxyUnreachable, match=f"no proxy on node node-1: nothing answers on 127.0.0.1:10999 "
                                               f"in its network namespace {node.netns}"):
        proxy_mode(NodeHandle("node-1", node.netns), port=10999)


def test_the_probe_removes_its_rule_from_the_pod_also_when_killed(cluster: Layout,
                                                                  setup: dict[str, Any]) -> None:
    if _mode(cluster) != "userspace":
        pytest.skip("the pod-side rule holds a handshake open, which only userspace mode needs")
    pod_ns = next(n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                            check=True).stdout.split() if n.endswith(f"-p-{_uid8(cluster)}"))
    prober = Prober(pod_ns, "tcp", setup["web"], 80, handshake=True)
    prober.start()
    try:
        assert "netplane trace" in in_netns(pod_ns, "iptables-save")
        assert prober.proc is not None
        prober.proc.terminate()  # as a trace interrupted half way would
        prober.proc.wait(10)
    finally:
        prober.close()
    assert "netplane trace" not in in_netns(pod_ns, "iptables-save")


def _uid8(cluster: Layout) -> str:
    api = k8s_config.new_client_from_config(config_file=str(cluster.admin_kubeconfig))
    try:
        return str(k8s.CoreV1Api(api).read_namespaced_pod("tr-client", "default").metadata.uid[:8])
    finally:
        api.close()

"""The ingress add-on's objects are valid as the apiserver validates them, and `netplane
up`'s host ports read and refuse their flags as they should."""

from __future__ import annotations

import socket

import pytest

from control.cluster import hostports
from control.cluster.addons import AddonContext, collection_path
from control.cluster.addons import ingress as addon
from netplane.model import apply_defaults, validate


def test_the_addon_objects_are_valid_and_the_class_is_the_default() -> None:
    ctx = AddonContext(cluster_id="abc", cluster_dns_ip="10.96.0.10", cluster_domain="cluster.local",
                       node_names=("node-1",), kubeconfig="/k", options={"ingress_https_port": 18443})
    objs = addon.manifests(ctx)
    for obj in objs:
        apply_defaults(obj)
        assert validate(obj) == [], obj["kind"]
        assert collection_path(obj)  # up knows where to create it
    kinds = {o["kind"]: o for o in objs}
    annotations = kinds["IngressClass"]["metadata"]["annotations"]
    assert annotations["ingressclass.kubernetes.io/is-default-class"] == "true"
    ports = {p["name"]: p["nodePort"] for p in kinds["Service"]["spec"]["ports"]}
    assert ports == {"http": addon.HTTP_NODE_PORT, "https": addon.HTTPS_NODE_PORT}
    command = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--https-port") + 1] == "18443"


@pytest.mark.parametrize(("text", "address"), [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("9090",
                                                                                         ("127.0.0.1", 9090)),
                                               ("localhost:81", ("127.0.0.1", 81)), ("0", None)])
def test_host_ports_read_like_kinds_port_mappings(text: str, address: tuple[str, int] | None) -> None:
    assert hostports.parse(text, "--ingress-port") == address


@pytest.mark.parametrize(("text", "message"), [("0.0.0.0:80", "not a loopback address"), ("x:y", "ADDR:PORT"),
                                               ("127.0.0.1:70000", "out of range")])
def test_bad_host_ports_are_refused_with_the_flag_named(text: str, message: str) -> None:
    with pytest.raises(hostports.HostPortError, match=message):
        hostports.parse(text, "--ingress-port")


def test_a_taken_port_fails_only_when_it_was_asked_for() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(hostports.HostPortError, match="in use"):
            hostports.reserve(f"127.0.0.1:{port}", "0", required=True)
        assert hostports.reserve(f"127.0.0.1:{port}", "0", required=False) == []

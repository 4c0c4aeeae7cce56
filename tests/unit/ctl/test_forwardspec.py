"""`netplane ctl port-forward`'s arguments and kubectl's port translation: what a user writes,
which pod is picked, and which port of it each local port reaches."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplane.cli.main import build_parser
from netplane.ctl.forwardspec import (
    ForwardedPort,
    ForwardSpecError,
    PortSpec,
    Target,
    check_service_ports,
    forwardable_pods,
    parse_port,
    parse_target,
    pod_ports,
    service_ports,
    split_addresses,
)
from netplane.model.core import Service
from netplane.model.meta import decode
from netplane.model.pod import Pod

# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "target"), [
    ("web-0", Target("pod", "web-0")),
    ("pod/web-0", Target("pod", "web-0")),
    ("pods/web-0", Target("pod", "web-0")),
    ("po/web-0", Target("pod", "web-0")),
    ("svc/web", Target("service", "web")),
    ("service/web", Target("service", "web")),
    ("services/web", Target("service", "web")),
    ("deploy/web", Target("deployment", "web")),
    ("deployment/web", Target("deployment", "web")),
    ("deployments.apps/web", Target("deployment", "web")),
    ("SVC/web", Target("service", "web")),
])
def test_a_target_is_a_pod_name_or_type_slash_name(text: str, target: Target) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize(("text", "words"), [
    ("rs/web", 'cannot forward to a "rs"'),
    ("svc/", "is not TYPE/NAME"),
    ("svc/a/b", "is not TYPE/NAME"),
])
def test_a_target_of_another_kind_or_without_a_name_is_refused(text: str, words: str) -> None:
    with pytest.raises(ForwardSpecError, match=words):
        parse_target(text)


@pytest.mark.parametrize(("text", "spec"), [
    ("8080", PortSpec(None, 8080)),
    ("9000:80", PortSpec(9000, 80)),
    (":80", PortSpec(0, 80)),
    ("0:80", PortSpec(0, 80)),
    ("http", PortSpec(None, "http")),
    ("9000:http-alt", PortSpec(9000, "http-alt")),
    (":web", PortSpec(0, "web")),
    ("65535:1", PortSpec(65535, 1)),
])
def test_a_port_argument_is_remote_or_local_colon_remote(text: str, spec: PortSpec) -> None:
    assert parse_port(text) == spec


@pytest.mark.parametrize(("text", "words"), [
    ("1:2:3", "invalid port format"),
    ("0", "out of range"),
    ("8080:0", "out of range"),
    ("70000", "out of range"),
    ("70000:80", "out of range"),
    ("x:80", "local port 'x' is not a port number"),
    ("-1:80", "not a port number"),
    ("", "neither a port number nor a port name"),
    ("8080:", "neither a port number nor a port name"),
    ("Http", "neither"),
    ("-http", "neither"),
    ("http--alt", "neither"),
    ("a-name-longer-than-15", "neither"),
])
def test_a_malformed_port_argument_is_refused_with_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ForwardSpecError, match=words):
        parse_port(text)


@given(st.integers(min_value=0, max_value=65535), st.integers(min_value=1, max_value=65535))
def test_every_local_and_remote_port_number_round_trips(local: int, remote: int) -> None:
    assert parse_port(f"{local}:{remote}") == PortSpec(local, remote)
    assert parse_port(str(remote)) == PortSpec(None, remote)


@given(st.text(max_size=20))
def test_any_port_text_parses_or_is_refused_with_a_forward_spec_error(text: str) -> None:
    try:
        spec = parse_port(text)
    except ForwardSpecError:
        return
    assert isinstance(spec.remote, str) or 1 <= spec.remote <= 65535


def test_addresses_are_comma_separated_or_repeated_and_kept_in_order_once() -> None:
    assert split_addresses(["127.0.0.1,::1", "10.0.0.1", "::1"]) == ["127.0.0.1", "::1", "10.0.0.1"]
    with pytest.raises(ForwardSpecError, match="empty entry"):
        split_addresses(["127.0.0.1,"])


def test_the_command_line_parses_target_ports_address_and_namespace() -> None:
    args = build_parser().parse_args(["ctl", "port-forward", "svc/web", "8080:http", ":9000", "-n", "shop",
                                      "--address", "127.0.0.1,::1"])
    assert args.verb == "port-forward" and args.namespace == "shop"
    assert args.target == Target("service", "web")
    assert args.ports == [PortSpec(8080, "http"), PortSpec(0, 9000)]
    assert args.address == ["127.0.0.1,::1"]  # split (and defaulted) when the command runs


def test_the_command_line_refuses_a_bad_port_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["ctl", "port-forward", "pod/web", "1:2:3"])
    assert exited.value.code == 2
    assert "invalid port format '1:2:3'" in capsys.readouterr().err


# -- ports of a pod -------------------------------------------------------------------------


def _pod(name: str = "web-0", ports: list[dict[str, Any]] | None = None, *,
         created: str = "2024-01-01T00:00:00Z", node: str = "node-1", deleted: str | None = None,
         **status: Any) -> Pod:
    return decode(Pod, {
        "metadata": {"name": name, "creationTimestamp": created, "deletionTimestamp": deleted},
        "spec": {"nodeName": node,
                 "containers": [{"name": "c", "ports": ports or []}]},
        "status": status or {"phase": "Running",
                             "conditions": [{"type": "Ready", "status": "True",
                                             "lastTransitionTime": "2024-01-01T00:00:05Z"}]}})


WEB_PORTS = [{"name": "web", "containerPort": 8080}, {"name": "metrics", "containerPort": 9100},
             {"name": "dns", "containerPort": 53, "protocol": "UDP"}]


def test_a_pod_port_number_is_forwarded_as_is_and_local_defaults_to_it() -> None:
    pod = _pod(ports=WEB_PORTS)
    specs = [PortSpec(None, 8080), PortSpec(9000, 8080), PortSpec(0, 7)]
    assert pod_ports(specs, pod) == [ForwardedPort(8080, 8080), ForwardedPort(9000, 8080),
                                     ForwardedPort(0, 7)]


def test_a_pod_port_name_is_the_number_of_the_container_port_of_that_name() -> None:
    pod = _pod(ports=WEB_PORTS)
    assert pod_ports([PortSpec(None, "metrics"), PortSpec(1234, "web")], pod) == [
        ForwardedPort(9100, 9100), ForwardedPort(1234, 8080)]


def test_a_pod_port_name_the_pod_does_not_have_is_an_error() -> None:
    with pytest.raises(ForwardSpecError, match="Pod 'web-0' does not have a named port 'http'"):
        pod_ports([PortSpec(None, "http")], _pod(ports=WEB_PORTS))


def test_a_pod_port_that_is_only_udp_is_refused() -> None:
    with pytest.raises(ForwardSpecError, match="UDP protocol is not supported for dns"):
        pod_ports([PortSpec(None, "dns")], _pod(ports=WEB_PORTS))
    both = [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53, "protocol": "TCP"}]
    assert pod_ports([PortSpec(None, 53)], _pod(ports=both)) == [ForwardedPort(53, 53)]


# -- ports of a service ---------------------------------------------------------------------


def _service(*ports: dict[str, Any]) -> Service:
    return decode(Service, {"metadata": {"name": "web"},
                            "spec": {"selector": {"app": "web"}, "ports": list(ports)}})


SERVICE = _service({"name": "http", "port": 80, "targetPort": "web"},
                   {"name": "metrics", "port": 9100, "targetPort": 9100},
                   {"name": "admin", "port": 81},
                   {"name": "alt", "port": 8000, "targetPort": 8080},
                   {"name": "quoted", "port": 82, "targetPort": "8081"},
                   {"name": "dns", "port": 53, "protocol": "UDP"})


@pytest.mark.parametrize(("spec", "forwarded"), [
    # A named targetPort is the pod's container port of that name.
    (PortSpec(None, 80), ForwardedPort(80, 8080)),
    # Without LOCAL, the local port is the service port, not the pod's (kubectl's rule).
    (PortSpec(None, "http"), ForwardedPort(80, 8080)),
    (PortSpec(0, "http"), ForwardedPort(0, 8080)),
    (PortSpec(5000, 80), ForwardedPort(5000, 8080)),
    (PortSpec(None, 9100), ForwardedPort(9100, 9100)),
    # No targetPort: the service port itself.
    (PortSpec(None, "admin"), ForwardedPort(81, 81)),
    (PortSpec(None, 8000), ForwardedPort(8000, 8080)),
    (PortSpec(None, 82), ForwardedPort(82, 8081)),
])
def test_a_service_port_reaches_its_target_port_on_the_pod(spec: PortSpec, forwarded: ForwardedPort) -> None:
    assert service_ports([spec], SERVICE, _pod(ports=WEB_PORTS)) == [forwarded]


@pytest.mark.parametrize(("spec", "words"), [
    (PortSpec(None, 8080), "Service web does not have a service port 8080"),
    (PortSpec(None, "web"), "Service 'web' does not have a named port 'web'"),
    (PortSpec(None, "dns"), "UDP protocol is not supported for dns"),
    (PortSpec(None, 53), "UDP protocol is not supported for 53"),
])
def test_a_port_the_service_does_not_expose_over_tcp_is_refused_before_a_pod_is_chosen(
        spec: PortSpec, words: str) -> None:
    with pytest.raises(ForwardSpecError, match=words):
        check_service_ports([spec], SERVICE)


def test_a_named_target_port_the_chosen_pod_lacks_is_an_error() -> None:
    with pytest.raises(ForwardSpecError, match="Pod 'web-0' does not have a named port 'web'"):
        service_ports([PortSpec(None, 80)], SERVICE, _pod(ports=[{"name": "other", "containerPort": 1}]))


# -- which pod ------------------------------------------------------------------------------


def _ready(since: str) -> list[dict[str, str]]:
    return [{"type": "Ready", "status": "True", "lastTransitionTime": since}]


def test_only_running_ready_scheduled_pods_not_being_deleted_are_forwardable() -> None:
    pending = _pod("pending", phase="Pending")
    unready = _pod("unready", phase="Running", conditions=[{"type": "Ready", "status": "False"}])
    unscheduled = _pod("unscheduled", node="", phase="Running", conditions=_ready("2024-01-01T00:00:00Z"))
    deleting = _pod("deleting", deleted="2024-01-02T00:00:00Z")
    good = _pod("good")
    assert [p.metadata.name for p in forwardable_pods([pending, unready, unscheduled, deleting, good])] == [
        "good"]
    assert forwardable_pods([pending, unready]) == []


def test_the_pod_ready_the_longest_is_picked_first_then_the_most_restarted_then_the_oldest() -> None:
    late = _pod("late", phase="Running", conditions=_ready("2024-01-01T00:09:00Z"))
    early = _pod("early", phase="Running", conditions=_ready("2024-01-01T00:01:00Z"))
    restarted = _pod("restarted", phase="Running", conditions=_ready("2024-01-01T00:01:00Z"),
                     containerStatuses=[{"name": "c", "restartCount": 3}])
    older = _pod("older", created="2023-06-01T00:00:00Z", phase="Running",
                 conditions=_ready("2024-01-01T00:01:00Z"))
    assert [p.metadata.name for p in forwardable_pods([late, early, restarted, older])] == [
        "restarted", "older", "early", "late"]


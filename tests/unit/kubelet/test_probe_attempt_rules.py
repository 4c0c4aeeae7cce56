"""The probe attempts that fail before any socket or process: a port the container does not
name, an exec probe without a command, a probe without a handler."""

from __future__ import annotations

from typing import Any, cast

import aiohttp

from control.kubelet.probes import ProbeTarget, attempt
from netplane.model import Container, Probe, decode

NO_SESSION = cast(aiohttp.ClientSession, None)  # never reached: these attempts do no I/O


def _target() -> ProbeTarget:
    def never(_argv: list[str]) -> list[str]:
        raise AssertionError("no process may be started")

    return ProbeTarget(pod_ip="192.0.2.10", exec_argv=never, env={})


def _container(**fields: Any) -> Container:
    return decode(Container, {"name": "c", "ports": [{"name": "http", "containerPort": 8080}], **fields})


async def test_a_tcp_socket_probe_on_a_port_name_the_container_lacks_fails() -> None:
    probe = decode(Probe, {"tcpSocket": {"port": "grpc"}})
    assert await attempt(probe, _container(), _target(), NO_SESSION) is False


async def test_an_http_probe_on_a_port_name_the_container_lacks_fails() -> None:
    probe = decode(Probe, {"httpGet": {"path": "/", "port": "grpc"}})
    assert await attempt(probe, _container(), _target(), NO_SESSION) is False


async def test_an_exec_probe_without_a_command_fails() -> None:
    probe = decode(Probe, {"exec": {"command": []}})
    assert await attempt(probe, _container(), _target(), NO_SESSION) is False


async def test_a_probe_without_a_handler_fails() -> None:
    assert await attempt(decode(Probe, {}), _container(), _target(), NO_SESSION) is False


def test_timeout_seconds_defaults_to_one_second_as_in_kubernetes() -> None:
    assert decode(Probe, {"tcpSocket": {"port": 80}}).timeout_seconds == 1

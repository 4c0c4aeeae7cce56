"""The built-in test server over loopback (no root): what a test or a demo sees."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import pytest

from control.apiserver.process import free_port
from netplane.agnhost.netexec import Netexec, NetexecOptions
from netplane.agnhost.serve_hostname import ServeHostname, ServeHostnameOptions


@pytest.fixture
async def netexec(tmp_path) -> AsyncIterator[Netexec]:
    server = Netexec(NetexecOptions(http_port=0, udp_port=0, host="127.0.0.1",
                                    not_ready_file=tmp_path / "not-ready"), name="pod-a")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(http: aiohttp.ClientSession, server: Netexec, path: str) -> tuple[int, str]:
    async with http.get(f"http://127.0.0.1:{server.ports['http']}{path}") as resp:
        return resp.status, await resp.text()


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.replies.put_nowait(data)


async def _udp(port: int, text: str, wait: float = 5.0) -> tuple[str | None, int]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Reply, remote_addr=("127.0.0.1", port))
    local_port = transport.get_extra_info("sockname")[1]
    try:
        transport.sendto(text.encode())
        try:
            async with asyncio.timeout(wait):
                return (await proto.replies.get()).decode(), local_port
        except TimeoutError:
            return None, local_port
    finally:
        transport.close()


async def test_netexec_answers_hostname_echo_and_the_client_address(netexec, http):
    assert await _get(http, netexec, "/hostname") == (200, "pod-a")
    assert await _get(http, netexec, "/echo?msg=hello%20world") == (200, "hello world")
    assert await _get(http, netexec, "/echo?msg=oops&code=503") == (503, "oops")
    status, text = await _get(http, netexec, "/clientip")
    host, _, port = text.rpartition(":")
    assert (status, host) == (200, "127.0.0.1") and port.isdigit()
    status, text = await _get(http, netexec, "/")
    assert status == 200 and text.startswith("NOW: ")
    assert await _get(http, netexec, "/healthz") == (200, "ok")


async def test_readiness_can_be_failed_and_restored_over_http(netexec, http):
    assert await _get(http, netexec, "/readyz") == (200, "ok")
    await _get(http, netexec, "/fail-readiness")
    status, text = await _get(http, netexec, "/readyz")
    assert status == 503 and "fail-readiness" in text
    assert (await _get(http, netexec, "/healthz"))[0] == 200  # liveness is unaffected
    await _get(http, netexec, "/pass-readiness")
    assert (await _get(http, netexec, "/readyz"))[0] == 200


async def test_readiness_fails_while_the_not_ready_file_exists(netexec, http):
    netexec.options.not_ready_file.touch()
    assert (await _get(http, netexec, "/readyz"))[0] == 503
    netexec.options.not_ready_file.unlink()
    assert (await _get(http, netexec, "/readyz"))[0] == 200


async def test_dial_reaches_another_server_over_http_and_udp(netexec, http):
    other = ServeHostname(ServeHostnameOptions(port=0, udp=True, host="127.0.0.1"), name="pod-b")
    await other.start()
    try:
        port = other.ports["tcp"]
        status, text = await _get(http, netexec, f"/dial?request=hostname&host=127.0.0.1&port={port}"
                                                 "&protocol=http&tries=3")
        assert (status, json.loads(text)) == (200, {"responses": ["pod-b"] * 3})
        status, text = await _get(http, netexec, f"/dial?request=hostname&host=127.0.0.1"
                                                 f"&port={other.ports['udp']}&protocol=udp")
        assert json.loads(text) == {"responses": ["pod-b"]}
        # netexec dialing its own UDP port: the UDP command protocol.
        status, text = await _get(http, netexec, f"/dial?request=echo%20Hi&host=127.0.0.1"
                                                 f"&port={netexec.ports['udp']}&protocol=udp")
        assert json.loads(text) == {"responses": ["hi"]}
    finally:
        await other.stop()


async def test_dial_reports_failures_as_errors(netexec, http):
    port = free_port()
    status, text = await _get(http, netexec, f"/dial?request=hostname&host=127.0.0.1&port={port}"
                                             "&protocol=http&tries=2")
    errors = json.loads(text)["errors"]
    assert status == 200 and len(errors) == 2
    assert "connection refused" in errors[0]


@pytest.mark.parametrize(("query", "expected"), [
    ("host=127.0.0.1&port=1&protocol=http", "Missing request"),
    ("request=hostname&host=127.0.0.1&port=1&protocol=sctp", "Unsupported protocol"),
    ("request=hostname&host=127.0.0.1&port=1&tries=many", "Error parsing tries"),
])
async def test_dial_rejects_bad_requests(netexec, http, query, expected):
    status, text = await _get(http, netexec, f"/dial?{query}")
    assert status == 400 and expected in text


async def test_udp_commands(netexec):
    port = netexec.ports["udp"]
    assert (await _udp(port, "hostname"))[0] == "pod-a"
    assert (await _udp(port, "echo Hello There\n"))[0] == "hello there"
    reply, local_port = await _udp(port, "clientip")
    assert reply == f"127.0.0.1:{local_port}"
    assert (await _udp(port, "what", wait=0.3))[0] is None


async def test_shell_is_refused_unless_allowed(netexec, http):
    assert (await _get(http, netexec, "/shell?cmd=echo%20hi"))[0] == 403
    netexec.options.allow_shell = True
    status, text = await _get(http, netexec, "/shell?cmd=echo%20hi")
    assert (status, json.loads(text)) == (200, {"output": "hi\n"})
    _, text = await _get(http, netexec, "/shell?cmd=exit%203")
    assert json.loads(text) == {"error": "exit status 3"}


async def test_exit_answers_then_asks_the_process_to_exit(netexec, http):
    assert (await _get(http, netexec, "/exit?code=200"))[0] == 400
    assert (await _get(http, netexec, "/exit?code=7"))[0] == 200
    assert netexec.done.is_set() and netexec.exit_code == 7


async def test_serve_hostname_over_tcp_udp_and_http():
    tcp = ServeHostname(ServeHostnameOptions(port=0, tcp=True, http=False, udp=True,
                                             host="127.0.0.1"), name="pod-c")
    await tcp.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp.ports["tcp"])
        assert await reader.read() == b"pod-c"  # then the server closes
        writer.close()
        assert tcp.ports["udp"] == tcp.ports["tcp"]
        assert (await _udp(tcp.ports["udp"], "anything"))[0] == "pod-c"
    finally:
        await tcp.stop()
    web = ServeHostname(ServeHostnameOptions(port=0, close=True, host="127.0.0.1"), name="pod-d")
    await web.start()
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{web.ports['tcp']}/any/path") as resp:
            assert await resp.text() == "pod-d"
            assert resp.headers.get("Connection", "").lower() == "close"
    finally:
        await web.stop()


def test_serve_hostname_refuses_tcp_and_http_on_one_port():
    with pytest.raises(ValueError, match="both"):
        ServeHostname(ServeHostnameOptions(tcp=True, http=True))


# -- as a process, the way the kubelet runs it ----------------------------------------------

# (Not `-m netplane.cli.main`: run as __main__, that module's CliError is a second class.)
NETPLANE = [sys.executable, "-c", "import sys; from netplane.cli.main import main; sys.exit(main())"]


def _wait_http(url: str, deadline: float = 30.0) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError:
            raise
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*NETPLANE, "agnhost", *args],
                            env={**os.environ, "HOSTNAME": "pod-from-env"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_the_netexec_process_answers_with_hostname_from_the_environment_and_stops_on_sigterm():
    port = free_port()
    proc = _spawn("netexec", f"--http-port={port}", "--udp-port=-1")
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/hostname") == "pod-from-env"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_the_netexec_process_exits_with_the_code_asked_for():
    port = free_port()
    proc = _spawn("netexec", "--http-port", str(port), "--udp-port", "-1")
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        _wait_http(f"http://127.0.0.1:{port}/exit?code=3")
        assert proc.wait(20) == 3
    finally:
        proc.kill()
        proc.wait()


def _readyz_status_after_sigterm(url: str) -> int:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            _wait_http(url)
        except urllib.error.HTTPError as exc:
            return exc.code
        time.sleep(0.02)
    return 200


def test_delay_shutdown_fails_readiness_but_keeps_serving():
    port = free_port()
    proc = _spawn("netexec", "--http-port", str(port), "--udp-port", "-1", "--delay-shutdown", "2s")
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz")
        proc.send_signal(signal.SIGTERM)
        assert _readyz_status_after_sigterm(f"http://127.0.0.1:{port}/readyz") == 503
        assert _wait_http(f"http://127.0.0.1:{port}/hostname") == "pod-from-env"
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_go_style_flags_work_for_serve_hostname():
    port = free_port()
    proc = _spawn("serve-hostname", f"--port={port}", "--http=true", "--udp=false")
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/") == "pod-from-env"
    finally:
        proc.terminate()
        proc.wait(20)


def test_cli_errors_are_one_line():
    proc = subprocess.run([*NETPLANE, "agnhost", "serve-hostname", "--tcp", "--http"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "netplane agnhost: can't serve both --tcp and --http on one port; pass --http=false"]

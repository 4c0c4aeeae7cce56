"""The userspace relay on real loopback sockets: bytes arrive exact whichever path they
take (copy or splice), half-closes and resets pass through, a slow reader holds the writer
back instead of filling the proxy's memory, a refused endpoint is retried on the next,
and no descriptor outlives its connection. No root needed.

Every test runs twice: with the poller's C copy loop (_pump.c) and with the pure-Python
loop that stands in when no C compiler built it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator

import pytest

from netplane.model.servicemap import Endpoint
from netplane.proxy_userspace import poller, relay
from netplane.proxy_userspace.balancer import Balancer
from netplane.proxy_userspace.poller import Poller
from netplane.proxy_userspace.relay import COPY_SIZE, PipePool
from netplane.proxy_userspace.tcp import TcpService


async def _serve(handler: object) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    return server, server.sockets[0].getsockname()[1]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


_PUMP = True  # set per test by the `copy_loop` fixture


@pytest.fixture(autouse=True, params=["c-loop", "python-loop"])
def copy_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "c-loop" and not poller.HAVE_PUMP:
        pytest.skip("the C copy loop was not built (no C compiler at install time)")
    monkeypatch.setattr(f"{__name__}._PUMP", request.param == "c-loop")
    return str(request.param)


def _listener(ports: list[int], pool: PipePool | None = None) -> TcpService:
    balancer = Balancer()
    balancer.set_endpoints([Endpoint("127.0.0.1", p) for p in ports])
    return TcpService(Poller(asyncio.get_running_loop(), pump=_PUMP), "test", "127.0.0.1", 0, balancer,
                      pool or PipePool(), dial_timeouts=(0.5, 0.5, 0.5))


async def _reset_seen(port: int, send: bytes) -> bool:
    """True if the connection ends in a reset (at connect or at a read), not a clean EOF."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(send)
        while await reader.read(10):
            pass
    except ConnectionResetError:
        return True
    return False


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server, port = await _serve(_echo)
    yield port
    server.close()
    await server.wait_closed()


async def test_small_messages_go_both_ways_on_a_kept_alive_connection(
        echo_port: int, copy_loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """...copied by the loop in use: the C loop without calling into the Python relay,
    the Python loop by reading every message itself."""
    reads = 0
    python_read = relay._Direction.on_readable

    def counted(self: relay._Direction) -> None:
        nonlocal reads
        reads += 1
        python_read(self)

    monkeypatch.setattr(relay._Direction, "on_readable", counted)
    svc = _listener([echo_port])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        for i in range(200):
            msg = f"request {i}\n".encode()
            writer.write(msg)
            assert await reader.readexactly(len(msg)) == msg
        writer.close()
        assert len(svc.relays) == 1
        connection = next(iter(svc.relays))
        assert connection.forward.pipe is None, "small messages never need a pipe"
    finally:
        svc.close()
    if copy_loop == "c-loop":
        assert reads <= 2, f"the Python relay read {reads} of 400 messages"
    else:
        assert reads >= 400


async def test_a_bulk_stream_switches_to_splice_and_arrives_byte_exact() -> None:
    size = 64 * 1024 * 1024
    payload = os.urandom(1024 * 1024)
    digest = hashlib.sha256(payload * (size // len(payload))).hexdigest()

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        for _ in range(size // len(payload)):
            writer.write(payload)
            await writer.drain()
        writer.close()

    server, port = await _serve(source)
    pool = PipePool()
    svc = _listener([port], pool)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        writer.write(b"g")
        h = hashlib.sha256()
        got = 0
        while chunk := await reader.read(1 << 20):
            h.update(chunk)
            got += len(chunk)
        writer.close()
        assert got == size and h.hexdigest() == digest
        assert pool.created >= 1, "the bulk direction was spliced"
    finally:
        svc.close()
        server.close()


async def test_a_half_close_passes_through_and_the_answer_still_arrives() -> None:
    async def wait_for_eof_then_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await reader.read()  # until the client's FIN arrives through the proxy
        writer.write(b"got %d bytes" % len(body))
        await writer.drain()
        writer.close()

    server, port = await _serve(wait_for_eof_then_answer)
    svc = _listener([port])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        writer.write(b"x" * 100_000)
        writer.write_eof()
        assert await reader.read() == b"got 100000 bytes"
        writer.close()
    finally:
        svc.close()
        server.close()


async def test_a_slow_reader_holds_the_writer_back() -> None:
    stalled = asyncio.Event()

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stalled.wait()
        writer.close()

    server, port = await _serve(never_reads)
    svc = _listener([port])
    loop = asyncio.get_running_loop()
    client = socket.create_connection(("127.0.0.1", svc.port))
    client.setblocking(False)
    try:
        chunk = b"z" * 65536
        sent = 0
        for _ in range(2000):  # up to 128 MB: far beyond every buffer on the path
            try:
                sent += client.send(chunk)
            except BlockingIOError:
                await asyncio.sleep(0.05)
                try:
                    sent += client.send(chunk)
                except BlockingIOError:
                    break
        assert sent < 64 * 1024 * 1024, "the proxy kept reading although nobody drained it"
        relay = next(iter(svc.relays))
        assert relay.forward.pending is None or len(relay.forward.pending) <= COPY_SIZE
    finally:
        stalled.set()
        client.close()
        svc.close()
        server.close()
        await loop.shutdown_asyncgens()


async def test_a_reset_from_the_endpoint_resets_the_client() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    server, port = await _serve(reset)
    svc = _listener([port])
    try:
        assert await _reset_seen(svc.port, b"a")
    finally:
        svc.close()
        server.close()


async def test_a_refused_endpoint_is_skipped_for_the_next(echo_port: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, never listening: connections are refused
        svc = _listener([dead, echo_port])
        try:
            for _ in range(4):
                reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
                writer.write(b"ping")
                assert await reader.readexactly(4) == b"ping"
                writer.close()
        finally:
            svc.close()


async def test_no_endpoints_resets_the_client_at_once() -> None:
    svc = _listener([])
    try:
        assert await _reset_seen(svc.port, b"")
    finally:
        svc.close()
    assert svc.refused == 1


async def test_no_descriptor_outlives_its_connection(echo_port: int) -> None:
    pool = PipePool()
    svc = _listener([echo_port], pool)
    before = len(os.listdir("/proc/self/fd"))
    try:
        for _ in range(3):
            conns = [await asyncio.open_connection("127.0.0.1", svc.port) for _ in range(50)]
            for _reader, writer in conns:
                writer.write(b"x" * (COPY_SIZE * 2))  # some turn bulk and take pipes
            for reader, writer in conns:
                await reader.readexactly(COPY_SIZE * 2)
                writer.close()
                await writer.wait_closed()
        for _ in range(100):
            if not svc.relays:
                break
            await asyncio.sleep(0.05)
        assert not svc.relays
        pool.close()
        assert len(os.listdir("/proc/self/fd")) <= before
    finally:
        svc.close()

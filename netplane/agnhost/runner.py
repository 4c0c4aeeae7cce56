"""Running an agnhost server as the process: until SIGTERM/SIGINT (or /exit), and the
small `connect` and `pause` commands."""

from __future__ import annotations

import asyncio
import signal
import sys

from netplane.agnhost.netexec import Netexec, NetexecOptions
from netplane.agnhost.serve_hostname import ServeHostname, ServeHostnameOptions


async def run_serve_hostname(options: ServeHostnameOptions) -> int:
    server = ServeHostname(options)
    await server.start()
    try:
        await _until_signal()
    finally:
        await server.stop()
    return 0


async def run_netexec(options: NetexecOptions) -> int:
    server = Netexec(options)
    await server.start()
    loop = asyncio.get_running_loop()
    terminating: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        task = loop.create_task(server.terminate())
        terminating.add(task)
        task.add_done_callback(terminating.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await server.done.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for task in terminating:
            task.cancel()
        await server.stop()
    return server.exit_code or 0


async def _until_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def run_pause() -> int:
    """Sleeps until SIGTERM/SIGINT, then exits 0 (agnhost pause)."""
    await _until_signal()
    return 0


async def run_connect(host: str, port: int, seconds: float) -> int:
    """agnhost connect: 0 if a TCP connection opens; else "TIMEOUT", "REFUSED" or
    "OTHER: <error>" on stderr and 1."""
    try:
        async with asyncio.timeout(seconds):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        print("TIMEOUT", file=sys.stderr)
        return 1
    except ConnectionRefusedError:
        print("REFUSED", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"OTHER: {exc}", file=sys.stderr)
        return 1
    writer.close()
    return 0

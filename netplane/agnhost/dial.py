"""The client side of netexec's /dial: one request to another pod over HTTP or UDP,
as Kubernetes' agnhost dialHTTP/dialUDP (the e2e pod-to-pod connectivity check)."""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp
from yarl import URL

from netplane.agnhost.addresses import join_host_port

HTTP_TIMEOUT = 5.0
UDP_TIMEOUT = 5.0


class DialError(Exception):
    """One try failed; the message is what /dial reports in "errors"."""


async def dial_http(session: aiohttp.ClientSession, request: str, host_port: str,
                    seconds: float = HTTP_TIMEOUT) -> str:
    """GET http://host:port/<request>; the body, whatever the status (as agnhost)."""
    url = f"http://{host_port}/{request}"
    try:
        async with session.get(URL(url, encoded=True),
                               timeout=aiohttp.ClientTimeout(total=seconds)) as resp:
            return await resp.text(errors="replace")
    except TimeoutError:
        raise DialError(f'Get "{url}": context deadline exceeded (Client.Timeout exceeded '
                        "while awaiting headers)") from None
    except aiohttp.ClientConnectorError as exc:
        err = exc.os_error
        reason = os.strerror(err.errno).lower() if err.errno else str(err)
        raise DialError(f'Get "{url}": dial tcp {host_port}: connect: {reason}') from None
    except (aiohttp.ClientError, OSError) as exc:
        raise DialError(f'Get "{url}": {exc}') from None


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def dial_udp(request: str, host: str, port: int, seconds: float = UDP_TIMEOUT) -> str:
    """Sends "<request>\\n" and returns the first datagram back."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        transport, proto = await loop.create_datagram_endpoint(_OneReply, remote_addr=infos[0][4])
    except OSError as exc:
        raise DialError(f"dial udp {join_host_port(host, port)}: {exc}") from None
    try:
        transport.sendto(f"{request}\n".encode())
        async with asyncio.timeout(seconds):
            data = await proto.reply
    except (TimeoutError, OSError) as exc:
        detail = "i/o timeout" if isinstance(exc, TimeoutError) else str(exc)
        raise DialError(f"reading from udp connection failed. err:'read udp "
                        f"{join_host_port(host, port)}: {detail}'") from None
    finally:
        transport.close()
        if not proto.reply.done():
            proto.reply.cancel()
    if not data:
        raise DialError("reading from udp connection failed. err:'empty reply'")
    return data.decode(errors="replace")

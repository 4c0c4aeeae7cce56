"""A netlink socket that sends many requests per system call. The kernel processes the
messages of one send() one after the other, synchronously, so a batch of 64 KB carries
~600 IPVS real servers in one call; only failures are answered (no NLM_F_ACK), each
naming the sequence number of the request it refused. Blocking: run it in a thread."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable, Iterable, Iterator

from netplane.proxy_ipvs import wire as w

NETLINK_ROUTE, NETLINK_NETFILTER, NETLINK_GENERIC = 0, 12, 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acknowledgements without a copy of the request
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
BATCH_BYTES = 64 * 1024
_BUFFER = 8 * 1024 * 1024
_GENL_ID_CTRL, _CTRL_CMD_GETFAMILY, _CTRL_ATTR_FAMILY_ID, _CTRL_ATTR_FAMILY_NAME = 0x10, 3, 1, 2


class NetlinkError(OSError):
    """The kernel refused a request; `errno` says why, the message says what."""


class NetlinkSocket:
    def __init__(self, protocol: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, plain, _BUFFER)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.sock.bind((0, 0))
        self._seq = 0
        self._buf = bytearray(1 << 20)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _recv(self, flags: int = 0) -> memoryview:
        n = self.sock.recv_into(self._buf, 0, flags)
        return memoryview(self._buf)[:n]

    def send_batch(self, messages: Iterable[bytes]) -> list[tuple[int, int]]:
        """Sends every message, BATCH_BYTES per system call; returns (seq, errno) of each
        one the kernel refused, in order. The messages must not ask for an ACK."""
        failures: list[tuple[int, int]] = []
        chunk: list[bytes] = []
        size = 0
        for msg in messages:
            if size + len(msg) > BATCH_BYTES and chunk:
                self._send_chunk(chunk, failures)
                chunk, size = [], 0
            chunk.append(msg)
            size += len(msg)
        if chunk:
            self._send_chunk(chunk, failures)
        return failures

    def _send_chunk(self, chunk: list[bytes], failures: list[tuple[int, int]]) -> None:
        self.sock.send(b"".join(chunk))
        while True:
            try:
                view = self._recv(socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    # More refusals than the receive buffer holds: some are lost, so
                    # the caller cannot know what is in place; it must read back.
                    raise NetlinkError(errno.ENOBUFS, "netlink answers were lost (receive buffer "
                                       "overrun); the table must be read back") from exc
                raise
            for msg in w.messages(view):
                if msg.kind == w.NLMSG_ERROR and msg.error:
                    failures.append((msg.failed_seq, msg.error))

    def request(self, message: bytes, seq: int) -> list[w.Message]:
        """One request that the kernel answers with messages, an error or an ACK (the
        message must carry NLM_F_ACK or NLM_F_DUMP); raises NetlinkError on a refusal."""
        return list(self.dump(message, seq, lambda m: m))

    def dump(self, message: bytes, seq: int, parse: Callable[[w.Message], object]) -> Iterator:
        """Sends `message` and yields parse(answer) for each answer until DONE/ACK. `parse`
        must copy what it keeps: the payload views are reused by the next receive."""
        self.sock.send(message)
        while True:
            view = self._recv()
            for msg in w.messages(view):
                if msg.seq != seq:
                    continue
                if msg.kind == w.NLMSG_DONE:
                    return
                if msg.kind == w.NLMSG_ERROR:
                    if msg.error:
                        raise NetlinkError(msg.error, os.strerror(msg.error))
                    return
                yield parse(msg)
                if not msg.flags & w.NLM_F_MULTI:
                    return

    def family_id(self, name: str) -> int:
        """A generic-netlink family's id (the kernel loads its module on demand); raises
        NetlinkError(ENOENT) when the kernel has no such family."""
        seq = self.seq()
        msg = w.message(_GENL_ID_CTRL, w.NLM_F_REQUEST | w.NLM_F_ACK, seq,
                        bytes((_CTRL_CMD_GETFAMILY, 1, 0, 0)) + w.asciiz(_CTRL_ATTR_FAMILY_NAME, name))
        for answer in self.request(msg, seq):
            found = w.attr_map(answer.payload, 4).get(_CTRL_ATTR_FAMILY_ID)
            if found is not None:
                return w.get_u16(found)
        raise NetlinkError(errno.ENOENT, f"no generic netlink family {name}")

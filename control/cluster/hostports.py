"""Host ports of `netplane up` (kind's extraPortMappings): a loopback port of the host that
leads into the cluster, since the host cannot route to nodes. `up` binds the host's
listening sockets itself (in the host namespace, where it runs) and hands them to a relay
process that runs inside the first node's namespace: it accepts on them and connects to
the node's own address at the mapped node port, where the node's proxy takes over.

The relay is the userspace proxy's (netplane/proxy_userspace/relay.py: one epoll set,
copy for small messages, splice for bulk), so a 100 MB upload through the host port costs
no Python per byte.

    python -m control.cluster.hostports --target-ip IP --forward FD:NODE_PORT [...]
"""

from __future__ import annotations

import _socket
import argparse
import asyncio
import contextlib
import errno
import functools
import json
import logging
import socket
import sys

from control.cluster import processes
from control.cluster.layout import Layout, NodeRecord, ProcessRecord
from netplane.cli.loop import run_async, until_signalled
from netplane.proxy_userspace.poller import OUT, Poller
from netplane.proxy_userspace.relay import PipePool, Relay

log = logging.getLogger(__name__)

RECORD = "hostports.json"


class HostPortError(ValueError):
    """A host port that cannot be used; the message says what to do."""


# (name, host socket, node port) of each forwarded port
Forward = tuple[str, socket.socket, int]


def parse(text: str, flag: str) -> tuple[str, int] | None:
    """"127.0.0.1:8080" or "8080" (on 127.0.0.1); "0" disables. Only loopback: nothing
    of the cluster is exposed beyond this machine."""
    if text.strip() in ("0", ""):
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise HostPortError(f"{flag} must be ADDR:PORT or PORT, not {text!r}") from None
    if not 1 <= number <= 65535:
        raise HostPortError(f"{flag}: port {number} is out of range (0 disables)")
    if not host.startswith("127.") and host not in ("::1", "localhost"):
        raise HostPortError(f"{flag}: {host} is not a loopback address; the cluster stays on this machine")
    return ("127.0.0.1" if host == "localhost" else host), number


def bind(address: tuple[str, int], flag: str) -> socket.socket:
    """The host's listening socket, inheritable for the relay process."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise HostPortError(f"{address[0]}:{address[1]} is in use ({exc.strerror}); pick another {flag} "
                            "or 0 to disable it") from None
    sock.set_inheritable(True)
    return sock


def reserve(http: str, https: str, *, required: bool = True) -> list[Forward]:
    """Binds the ingress gateway's host ports (`--ingress-port`, `--ingress-tls-port`) to
    its add-on's node ports; disabled ones are left out, and so are taken ones unless
    `required` (the defaults: another cluster or program may hold 8080)."""
    from control.cluster.addons import ingress

    forwards: list[Forward] = []
    try:
        for name, text, flag, node_port in (("http", http, "--ingress-port", ingress.HTTP_NODE_PORT),
                                            ("https", https, "--ingress-tls-port", ingress.HTTPS_NODE_PORT)):
            address = parse(text, flag)
            if address is None:
                continue
            try:
                forwards.append((name, bind(address, flag), node_port))
            except HostPortError as exc:
                if required:
                    raise
                log.warning("not forwarding a host port to the ingress gateway: %s", exc)
    except BaseException:
        for _name, sock, _port in forwards:
            sock.close()
        raise
    return forwards


def addon_options(forwards: list[Forward]) -> dict[str, int]:
    """What the ingress add-on needs to know of the host ports: where HTTPS redirects go."""
    https = [sock.getsockname()[1] for name, sock, _p in forwards if name == "https"]
    return {"ingress_https_port": https[0]} if https else {}


def start(layout: Layout, node: NodeRecord, forwards: list[Forward]) -> ProcessRecord:
    """Starts the relay in `node`'s namespace and records the URLs; closes this process's
    copies of the sockets (the relay holds its own)."""
    argv = [sys.executable, "-m", "control.cluster.hostports", "--target-ip", node.underlay_ip]
    for _name, sock, node_port in forwards:
        argv += ["--forward", f"{sock.fileno()}:{node_port}"]
    rec = processes.start("hostports", argv, layout.log_path("hostports"), netns=node.netns,
                          pass_fds=tuple(sock.fileno() for _n, sock, _p in forwards))
    urls = {}
    for name, sock, _port in forwards:
        host, port = sock.getsockname()[:2]
        scheme = "https" if name == "https" else "http"
        urls[name] = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
    (layout.state_dir / RECORD).write_text(json.dumps(urls))
    for _name, sock, _port in forwards:
        sock.close()
    return rec


def urls(layout: Layout) -> dict[str, str]:
    """The forwarded URLs of a running cluster: {"http": ..., "https": ...}."""
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads((layout.state_dir / RECORD).read_text()))
    return {}


def next_steps(layout: Layout) -> list[str]:
    """`up`'s hint lines for the ingress gateway."""
    found = urls(layout)
    if not found:
        return []
    first = found.get("http") or found["https"]
    return [f"  curl -H 'Host: example.test' {first}/   # the ingress gateway (IngressClass netplane)"
            + (f"; HTTPS on {found['https']}" if "https" in found and "http" in found else "")]


# -- the relay process


class _Forward:
    """Accepts on one inherited listener and relays each connection to the target."""

    def __init__(self, loop: asyncio.AbstractEventLoop, poller: Poller, pool: PipePool,
                 listener: socket.socket,
                 target: tuple[str, int]) -> None:
        self.loop = loop
        self.poller = poller
        self.pool = pool
        self.listener = listener
        self.target = target
        self.relays: set[Relay] = set()
        listener.setblocking(False)
        loop.add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                conn, _addr = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            conn.setblocking(False)
            up = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK)
            up.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            err = up.connect_ex(self.target)
            if err not in (0, errno.EINPROGRESS):
                log.info("connecting to %s:%d failed: %s", *self.target, errno.errorcode.get(err, err))
                up.close()
                conn.close()
                continue
            self.poller.register(up.fileno(), OUT, functools.partial(self._connected, conn, up))

    def _connected(self, client: socket.socket, up: _socket.socket, _events: int) -> None:
        err = up.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            log.info("connecting to %s:%d failed: %s", *self.target, errno.errorcode.get(err, err))
            self.poller.close_later(up.fileno(), up.close)
            client.close()  # the client sees the refusal as a closed connection
            return
        relay = Relay(self.poller, self.pool, client, up, f"{self.target[0]}:{self.target[1]}",
                      self.relays.discard)
        self.relays.add(relay)
        relay.start()


async def _serve(target_ip: str, forwards: list[tuple[int, int]]) -> None:
    loop = asyncio.get_running_loop()
    poller, pool = Poller(loop), PipePool()
    keep = [_Forward(loop, poller, pool, socket.socket(fileno=fd), (target_ip, port)) for fd,
            port in forwards]
    log.info("forwarding %s to %s", ", ".join(f"fd {fd} -> :{p}" for fd, p in forwards), target_ip)
    try:
        await asyncio.Event().wait()
    finally:
        for forward in keep:
            for relay in list(forward.relays):
                relay.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="netplane up's host ports: inherited listeners to node ports")
    p.add_argument("--target-ip", required=True)
    p.add_argument("--forward", action="append", required=True, help="FD:NODE_PORT")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    forwards = []
    for item in args.forward:
        fd, _, port = item.partition(":")
        forwards.append((int(fd), int(port)))
    run_async(until_signalled(_serve(args.target_ip, forwards), "hostports"))
    return 0


if __name__ == "__main__":
    sys.exit(main())


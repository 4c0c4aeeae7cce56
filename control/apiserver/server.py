"""Running the apiserver: data dir, store, TLS, tokens, admin kubeconfig, listeners."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from control.apiserver.app import create_app
from control.apiserver.auth import Authenticator, authorize, ensure_tokens, write_kubeconfig
from control.apiserver.certs import ensure_pki, server_ssl_context
from control.apiserver.config import ApiConfig
from control.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class ServerOptions:
    data_dir: Path
    bind_address: str = "127.0.0.1"
    secure_port: int = 6443
    insecure_port: int = 0
    service_cidr: str = "10.96.0.0/12"
    node_port_range: str = "30000-32767"
    store_url: str = ""
    max_request_bytes: int = 3 * 1024 * 1024
    max_watches: int = 10_000
    extra_sans: list[str] = field(default_factory=list)
    # Already-listening sockets handed over by a parent (`netplane up` opens one inside
    # the cluster's underlay network namespace, where this process cannot bind itself).
    listen_fds: list[int] = field(default_factory=list)
    advertise_address: str = ""
    advertise_port: int = 0
    endpoint_lease_ttl: float = 15.0
    endpoint_reconcile_interval: float = 10.0

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "admin.kubeconfig"


@dataclass
class RunningServer:
    runner: web.AppRunner
    store: Store
    url: str
    kubeconfig: Path

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.store.close()


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def start(opts: ServerOptions) -> RunningServer:
    """Starts serving; returns once the listeners are bound and the server is ready."""
    if opts.insecure_port and not ipaddress.ip_address(opts.bind_address).is_loopback:
        raise ValueError("--insecure-port serves without authentication, so it is only "
                         "allowed with a loopback --bind-address (127.0.0.1 or ::1)")
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(opts.store_url or f"sqlite:///{opts.data_dir / 'state.db'}")
    try:
        first_ip = str(next(ipaddress.ip_network(opts.service_cidr).hosts()))
        sans = [opts.bind_address, first_ip, *opts.extra_sans]
        ips = [s for s in sans if _is_ip(s)]
        dns = [s for s in sans if not _is_ip(s)]
        pki = ensure_pki(opts.data_dir, ips, dns)
        tokens_file, admin_token = ensure_tokens(opts.data_dir)
        authn = Authenticator.from_file(tokens_file)
        host = "127.0.0.1" if opts.bind_address in ("0.0.0.0", "::") else opts.bind_address
        url = f"https://{_host(host)}:{opts.secure_port}"
        config = ApiConfig(service_cidr=opts.service_cidr, node_port_range=opts.node_port_range,
                           secure_port=opts.secure_port, max_request_bytes=opts.max_request_bytes,
                           max_watches=opts.max_watches,
                           server_address=f"{_host(host)}:{opts.secure_port}",
                           advertise_address=opts.advertise_address, advertise_port=opts.advertise_port,
                           endpoint_lease_ttl=opts.endpoint_lease_ttl,
                           endpoint_reconcile_interval=opts.endpoint_reconcile_interval)
        app = create_app(store, config, authenticator=authn, authorize=authorize)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, opts.bind_address, opts.secure_port,
                          ssl_context=server_ssl_context(pki), backlog=1024).start()
        if opts.insecure_port:
            await web.TCPSite(runner, opts.bind_address, opts.insecure_port).start()
        for fd in opts.listen_fds:
            sock = socket.socket(fileno=fd)
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"--listen-fd {fd} is not a stream socket")
            await web.SockSite(runner, sock, ssl_context=server_ssl_context(pki)).start()
        write_kubeconfig(opts.kubeconfig_path, url, pki.ca_pem, admin_token)
    except BaseException:
        await store.close()
        raise
    return RunningServer(runner, store, url, opts.kubeconfig_path)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


async def serve_forever(opts: ServerOptions) -> None:
    server = await start(opts)
    print(f"netplane apiserver serving {server.url}", flush=True)
    print(f"admin kubeconfig: {server.kubeconfig}", flush=True)
    print(f"try: kubectl --kubeconfig {server.kubeconfig} get namespaces", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await server.close()

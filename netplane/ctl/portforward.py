"""`netplane ctl port-forward`: local TCP listeners whose every connection travels over a
WebSocket of its own to the kubelet of the pod's node, which connects to the pod
(control/kubelet/portforward.py has the protocol). The pod is chosen once, at the start, as
kubectl does; forwarding runs until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from netplane.client.rest import ApiClient, resource_path
from netplane.ctl.errors import CtlError
from netplane.ctl.forwardspec import (
    ForwardedPort,
    ForwardSpecError,
    PortSpec,
    Target,
    check_service_ports,
    forwardable_pods,
    pod_ports,
    service_ports,
)
from netplane.ctl.podio import kubelet_socket
from netplane.model.apps import Deployment
from netplane.model.core import Service
from netplane.model.meta import decode
from netplane.model.pod import Pod
from netplane.model.selectors import Selector, SelectorError, selector_from_label_selector, selector_from_set

CHUNK = 65536
# The kubelet sends at most its read size (64 KiB) per message; this leaves room.
MAX_MESSAGE = 4 * 1024 * 1024
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort, which kubectl prints: IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- which pod, which ports ---------------------------------------------------------------

async def _ready_pod(api: ApiClient, namespace: str, selector: Selector, target: Target) -> dict[str, Any]:
    listed = await api.list(resource_path("v1", "pods", namespace), {"labelSelector": str(selector)})
    raw = {item["metadata"]["name"]: item for item in listed.get("items") or []}
    best = forwardable_pods(decode(Pod, item) for item in raw.values())
    if not best:
        raise CtlError(f"{target} has no running and ready pod (selector {selector}) to forward to")
    return raw[best[0].metadata.name]


async def resolve(api: ApiClient, namespace: str, target: Target,
                  specs: Sequence[PortSpec]) -> tuple[dict[str, Any], list[ForwardedPort]]:
    """The pod to forward to (as the API returned it) and its port numbers."""
    try:
        if target.kind == "service":
            svc = decode(Service, await api.get(resource_path("v1", "services", namespace, target.name)))
            if not svc.spec.selector:
                raise CtlError(f"cannot attach to {target}: invalid service '{target.name}': "
                               f"Service is defined without a selector")
            check_service_ports(specs, svc)
            raw = await _ready_pod(api, namespace, selector_from_set(svc.spec.selector), target)
            ports = service_ports(specs, svc, decode(Pod, raw))
        elif target.kind == "deployment":
            path = resource_path("apps/v1", "deployments", namespace, target.name)
            deployment = decode(Deployment, await api.get(path))
            selector = selector_from_label_selector(deployment.spec.selector)
            if selector.empty or selector.is_nothing:
                raise CtlError(f"cannot attach to {target}: it has no pod selector")
            raw = await _ready_pod(api, namespace, selector, target)
            ports = pod_ports(specs, decode(Pod, raw))
        else:
            raw = await api.get(resource_path("v1", "pods", namespace, target.name))
            ports = pod_ports(specs, decode(Pod, raw))
    except (ForwardSpecError, SelectorError) as exc:
        raise CtlError(str(exc)) from None
    phase = decode(Pod, raw).status.phase
    if phase != "Running":
        raise CtlError(f"unable to forward port because pod is not running. Current status={phase}")
    return raw, ports


# -- one connection -----------------------------------------------------------------------

async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                ws: aiohttp.ClientWebSocketResponse) -> str | None:
    """Copies both ways until the kubelet closes the WebSocket (the pod closed, failed, or
    the local side went away); the kubelet's error, if it closed with one."""

    async def upload() -> None:
        try:
            while data := await reader.read(CHUNK):
                await ws.send_bytes(data)  # waits while the kubelet is behind: bounded memory
            await ws.send_bytes(b"")  # the local side is done sending: a half-close
        except OSError:
            await ws.close()  # the local side went away

    up = asyncio.create_task(upload())
    try:
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.BINARY:
                break
            writer.write(msg.data)
            await writer.drain()
    except OSError:
        return None  # the local side went away; closing the WebSocket tells the kubelet
    finally:
        up.cancel()
        await asyncio.gather(up, return_exceptions=True)
    if msg.type is aiohttp.WSMsgType.CLOSE and msg.data not in (aiohttp.WSCloseCode.OK, None):
        return msg.extra or f"the kubelet closed the connection with code {msg.data}"
    if msg.type is aiohttp.WSMsgType.ERROR:
        return f"the connection to the kubelet broke: {msg.data}"
    return None


class Forwarder:
    """Accepts local connections and forwards each over its own WebSocket; owns those
    connections, the listeners and the session to the kubelet."""

    def __init__(self, pod: dict[str, Any], node: str, socket_path: str,
                 report: Callable[[str], None]) -> None:
        self.namespace = pod["metadata"].get("namespace") or "default"
        self.pod = pod["metadata"]["name"]
        self.node, self.socket_path = node, socket_path
        self.report = report
        self.remote_for: dict[int, int] = {}  # local port -> pod port
        self.servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[Any]] = set()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=socket_path),
            # A forwarding lasts as long as its connection: no total timeout.
            timeout=aiohttp.ClientTimeout(total=None, connect=30))

    async def listen(self, addresses: Sequence[str], ports: Sequence[ForwardedPort]) -> None:
        """Binds every address for every port, printing kubectl's `Forwarding from` lines. A
        local port 0 becomes the free port found for the first address, kept for the others.
        `localhost` is 127.0.0.1 and, where it can be bound, ::1, as in kubectl."""
        for port in ports:
            local = port.local
            for address in addresses:
                optional = address == "localhost"
                for host in (("127.0.0.1", "::1") if optional else (address,)):
                    try:
                        server = await asyncio.start_server(self.serve, host, local, limit=CHUNK)
                    except OSError as exc:
                        if optional and host == "::1":
                            continue
                        # asyncio rewords the error with the address; Go (kubectl) says just why.
                        why = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
                        raise CtlError(f"unable to listen on port {port.local}: listen tcp "
                                       f"{host_port(host, local)}: bind: {why}") from None
                    self.servers.append(server)
                    local = server.sockets[0].getsockname()[1]
                    self.remote_for[local] = port.remote
                    print(f"Forwarding from {host_port(host, local)} -> {port.remote}", flush=True)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The work runs in a task of its own, which close() cancels: Python 3.11's asyncio logs
        # a cancelled connection callback as an error ("Exception in callback").
        work = asyncio.create_task(self._connection(reader, writer))
        self._connections.add(work)
        work.add_done_callback(self._connections.discard)
        try:
            await work
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local = writer.get_extra_info("sockname")[1]
        remote = self.remote_for[local]
        print(f"Handling connection for {local}", flush=True)
        try:
            error = await self._forward(reader, writer, remote)
            if error:
                self.report(f"an error occurred forwarding {local} -> {remote}: {error}")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       remote: int) -> str | None:
        url = f"http://kubelet/portForward/{self.namespace}/{self.pod}"
        params = {"port": str(remote)}
        try:
            ws = await self._session.ws_connect(url, params=params, max_msg_size=MAX_MESSAGE)
        except aiohttp.WSServerHandshakeError as exc:
            return await self._refusal(url, params, exc)
        except aiohttp.ClientConnectorError as exc:
            return (f"cannot reach the kubelet of node {self.node} at {self.socket_path}: "
                    f"{exc.os_error.strerror or exc.os_error}; is it running?")
        except (aiohttp.ClientError, OSError) as exc:
            return f"talking to the kubelet of node {self.node} at {self.socket_path}: {exc}"
        try:
            return await relay(reader, writer, ws)
        finally:
            await ws.close()

    async def _refusal(self, url: str, params: dict[str, str], exc: aiohttp.WSServerHandshakeError) -> str:
        # aiohttp drops the body of a refused upgrade; the kubelet answers a plain GET with
        # the same explanation, so ask again for the words.
        text = ""
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with self._session.get(url, params=params) as resp:
                if resp.status == exc.status:
                    text = (await resp.text()).strip()
        return f"the kubelet of node {self.node} refused ({exc.status}): {text or exc.message}"

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()
        await self._session.close()


async def port_forward(api: ApiClient, namespace: str, target: Target, specs: Sequence[PortSpec],
                       addresses: Sequence[str], report: Callable[[str], None]) -> int:
    """Forwards until SIGINT or SIGTERM (exit 0); a failure to start raises CtlError."""
    pod, ports = await resolve(api, namespace, target, specs)
    node, socket_path = await kubelet_socket(api, pod)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Installed before the first `Forwarding from` line: whoever reads it may signal at once.
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    forwarder = Forwarder(pod, node, socket_path, report)
    try:
        await forwarder.listen(addresses, ports)
        await stop.wait()
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        await forwarder.close()
    return 0

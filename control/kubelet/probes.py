"""Startup, readiness and liveness probes: httpGet, tcpSocket and exec, with Kubernetes'
timing and thresholds (pkg/kubelet/prober). The kubelet lives in the node's network
namespace, so it reaches pod IPs directly; exec probes run inside the container."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from netplane.model import Container, Probe

log = logging.getLogger(__name__)

READINESS, LIVENESS, STARTUP = "readiness", "liveness", "startup"
USER_AGENT = "kube-probe/1.32"


class ProbeTracker:
    """The prober worker's result logic: the result flips only after successThreshold
    consecutive successes or failureThreshold consecutive failures. Readiness starts as a
    failure, liveness and startup as a success (they act only on failures); `initial`
    overrides that (an adopted container keeps the readiness the API showed)."""

    def __init__(self, kind: str, probe: Probe, initial: bool | None = None) -> None:
        self.kind = kind
        self.success_threshold = max(probe.success_threshold, 1)
        self.failure_threshold = max(probe.failure_threshold, 1)
        self.result = (kind != READINESS) if initial is None else initial
        self._last: bool | None = None
        self._run = 0

    def observe(self, ok: bool) -> bool | None:
        """Feeds one attempt; the new result when it changed, else None."""
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        threshold = self.success_threshold if ok else self.failure_threshold
        if self._run < threshold or ok == self.result:
            return None
        self.result = ok
        return ok


def resolve_port(container: Container, port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for p in container.ports:
        if p.name == port:
            return p.container_port
    raise ValueError(f"port {port!r} is not a named port of container {container.name}")


@dataclass(frozen=True)
class ProbeTarget:
    """Where a container's probes go."""

    pod_ip: str
    exec_argv: Callable[[list[str]], list[str]]  # a command → the argv that runs it in the container
    env: dict[str, str]


async def http_get(probe: Probe, container: Container, target: ProbeTarget,
                   session: aiohttp.ClientSession) -> bool:
    h = probe.http_get
    assert h is not None
    host = h.host or target.pod_ip
    host = f"[{host}]" if ":" in host else host
    path = h.path if h.path.startswith("/") else "/" + h.path
    url = f"{h.scheme.lower()}://{host}:{resolve_port(container, h.port)}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    headers.update({x.name: x.value for x in h.http_headers})
    timeout = aiohttp.ClientTimeout(total=max(probe.timeout_seconds, 1))
    async with session.get(url, headers=headers, timeout=timeout, allow_redirects=False, ssl=False) as resp:
        # 2xx and 3xx succeed; a redirect is not followed to another host (DoHTTPProbe).
        return 200 <= resp.status < 400


async def tcp_socket(probe: Probe, container: Container, target: ProbeTarget) -> bool:
    t = probe.tcp_socket
    assert t is not None
    port = resolve_port(container, t.port)
    async with asyncio.timeout(max(probe.timeout_seconds, 1)):
        _reader, writer = await asyncio.open_connection(t.host or target.pod_ip, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def exec_command(probe: Probe, target: ProbeTarget) -> bool:
    e = probe.exec
    assert e is not None
    if not e.command:
        return False
    proc = await asyncio.create_subprocess_exec(
        *target.exec_argv(list(e.command)), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=target.env,
        start_new_session=True)
    try:
        async with asyncio.timeout(max(probe.timeout_seconds, 1)):
            return await proc.wait() == 0
    finally:
        if proc.returncode is None:
            # The whole group (start_new_session made it the probe's own): a timed-out
            # `sh -c` must not leave its children running after the attempt has failed.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def attempt(probe: Probe, container: Container, target: ProbeTarget,
                  session: aiohttp.ClientSession) -> bool:
    """One probe attempt: True when it succeeds within timeoutSeconds."""
    try:
        if probe.http_get is not None:
            return await http_get(probe, container, target, session)
        if probe.tcp_socket is not None:
            return await tcp_socket(probe, container, target)
        if probe.exec is not None:
            return await exec_command(probe, target)
    except (OSError, TimeoutError, aiohttp.ClientError, ValueError) as exc:
        log.debug("probe of %s failed: %s", container.name, exc)
        return False
    log.warning("container %s: a probe without httpGet, tcpSocket or exec always fails", container.name)
    return False


async def run_prober(kind: str, probe: Probe, try_once: Callable[[], Awaitable[bool]],
                     on_change: Callable[[str, bool], None],
                     on_attempt: Callable[[str, bool], None] | None = None,
                     initial: bool | None = None,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Probes every periodSeconds after initialDelaySeconds, until cancelled; calls
    `on_change(kind, result)` each time the result flips. A liveness or startup failure
    gets the container restarted, and its successor gets new probers."""
    tracker = ProbeTracker(kind, probe, initial)
    await sleep(max(probe.initial_delay_seconds, 0))
    period = max(probe.period_seconds, 1)
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        ok = await try_once()
        if on_attempt is not None:
            on_attempt(kind, ok)
        changed = tracker.observe(ok)
        if changed is not None:
            on_change(kind, changed)
        await sleep(max(period - (loop.time() - started), 0.0))

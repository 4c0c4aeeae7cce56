"""Readiness and liveness probes: httpGet, tcpSocket and exec, with Kubernetes' timing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp

from netplane.kernel.exec import in_pod


def _port(container: dict[str, Any], port: Any) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a port of container {container.get('name')}")


async def run_probe(probe: dict[str, Any], container: dict[str, Any], pod_ip: str, netns: str,
                    session: aiohttp.ClientSession) -> bool:
    """One probe attempt: True when it succeeds within timeoutSeconds."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            h = probe["httpGet"]
            host = h.get("host") or pod_ip
            scheme, port = h.get("scheme", "HTTP").lower(), _port(container, h["port"])
            url = f"{scheme}://{host}:{port}{h.get('path', '/')}"
            headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
            async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout),
                                   allow_redirects=False) as resp:
                return 200 <= resp.status < 400
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            _r, w = await asyncio.wait_for(
                asyncio.open_connection(t.get("host") or pod_ip, _port(container, t["port"])), timeout)
            w.close()
            return True
        if "exec" in probe:
            argv = in_pod(netns, list(probe["exec"].get("command") or []))
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL)
            try:
                return await asyncio.wait_for(proc.wait(), timeout) == 0
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
    except (OSError, TimeoutError, aiohttp.ClientError, ValueError):
        return False
    return False


class Prober:
    """Runs one probe on its period and reports transitions past the thresholds."""

    def __init__(self, probe: dict[str, Any], on_result: Callable[[bool], None]) -> None:
        self.probe = probe
        self.on_result = on_result
        self.successes = 0
        self.failures = 0
        self.result: bool | None = None

    def record(self, ok: bool) -> None:
        success_threshold = int(self.probe.get("successThreshold", 1))
        failure_threshold = int(self.probe.get("failureThreshold", 3))
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= success_threshold and self.result is not True:
                self.result = True
                self.on_result(True)
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= failure_threshold and self.result is not False:
                self.result = False
                self.on_result(False)

    async def run(self, attempt: Callable[[], Any]) -> None:
        await asyncio.sleep(float(self.probe.get("initialDelaySeconds", 0)))
        period = max(float(self.probe.get("periodSeconds", 10)), 0.1)
        while True:
            self.record(bool(await attempt()))
            await asyncio.sleep(period)

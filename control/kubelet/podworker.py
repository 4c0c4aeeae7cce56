"""One pod's life on the node: network, containers as processes, probes, restarts with
back-off, status, and graceful termination."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control.kubelet import dnsconfig, envvars
from control.kubelet.probes import Prober, run_probe
from control.kubelet.status import ContainerRecord, now, pod_status, same_status
from netplane.client.rest import ApiError, resource_path
from netplane.kernel.exec import in_pod

if TYPE_CHECKING:
    from control.kubelet.kubelet import Kubelet

log = logging.getLogger(__name__)

# Containers run on the node's filesystem; netplane's own commands (`netplane agnhost`)
# are found first, wherever the node installed netplane.
DEFAULT_PATH = ":".join((os.path.dirname(sys.executable), "/usr/local/sbin", "/usr/local/bin",
                         "/usr/sbin", "/usr/bin", "/sbin", "/bin"))


@dataclass
class Backoff:
    """CrashLoopBackOff: 10 s doubling to 5 min in Kubernetes; shrinkable for tests."""

    initial: float = 10.0
    cap: float = 300.0

    def delay(self, restarts: int) -> float:
        return min(self.initial * (2 ** max(restarts - 1, 0)), self.cap)


class ContainerRunner:
    def __init__(self, worker: PodWorker, spec: dict[str, Any]) -> None:
        self.worker = worker
        self.spec = spec
        self.record = ContainerRecord(spec["name"], spec.get("image", ""))
        self.proc: asyncio.subprocess.Process | None = None
        self.next_start = 0.0
        self.probes: list[asyncio.Task[None]] = []
        self.env: dict[str, str] = {"PATH": DEFAULT_PATH}  # what `exec` in this container gets too

    @property
    def log_dir(self) -> Path:
        return self.worker.pod_dir / self.spec["name"]

    def log_path(self, restart: int | None = None) -> Path:
        return self.log_dir / f"{self.record.restart_count if restart is None else restart}.log"

    async def start(self) -> None:
        w = self.worker
        argv = [*(self.spec.get("command") or []), *(self.spec.get("args") or [])]
        if not argv:
            self.record.state, self.record.reason = "waiting", "CreateContainerConfigError"
            self.record.message = "no command: netplane runs commands on the node, it has no images"
            return
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": w.hostname,
               **envvars.container_env(w.pod, self.spec, w.kubelet.services(), pod_ip=w.pod_ip,
                                       host_ip=w.kubelet.config.node_ip)}
        self.env = env
        self.log_dir.mkdir(parents=True, exist_ok=True)
        binds = {str(w.pod_dir / "resolv.conf"): "/etc/resolv.conf", str(w.pod_dir / "hosts"): "/etc/hosts"}
        with self.log_path().open("ab") as log_file:
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *in_pod(w.netns, argv, binds, w.hostname), stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file, stderr=asyncio.subprocess.STDOUT, env=env,
                    cwd=self.spec.get("workingDir") or "/", start_new_session=True)
            except OSError as exc:
                r = self.record
                r.state, r.reason, r.message = "waiting", "RunContainerError", str(exc)
                return
        r = self.record
        r.state, r.reason, r.message, r.pid = "running", "", "", self.proc.pid
        r.started_at, r.exit_code = now(), None
        r.ready = "readinessProbe" not in self.spec
        self._start_probes()

    def _start_probes(self) -> None:
        for kind in ("readinessProbe", "livenessProbe"):
            probe = self.spec.get(kind)
            if not probe:
                continue
            handler = self._on_readiness if kind == "readinessProbe" else self._on_liveness
            prober = Prober(probe, handler)
            attempt = self._attempt(probe)
            self.probes.append(asyncio.create_task(prober.run(attempt), name=f"{kind} {self.spec['name']}"))

    def _attempt(self, probe: dict[str, Any]) -> Callable[[], Any]:
        async def attempt() -> bool:
            return await run_probe(probe, self.spec, self.worker.pod_ip, self.worker.netns,
                                   self.worker.kubelet.http)
        return attempt

    def _on_readiness(self, ok: bool) -> None:
        if self.record.state == "running":
            self.record.ready = ok
            self.worker.wake()

    def _on_liveness(self, ok: bool) -> None:
        if not ok and self.proc is not None and self.proc.returncode is None:
            log.info("pod %s container %s failed liveness; restarting", self.worker.key, self.spec["name"])
            self.signal(signal.SIGKILL)

    def stop_probes(self) -> None:
        for task in self.probes:
            task.cancel()
        self.probes = []

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def reap(self) -> bool:
        """True when the process has just exited (its record now says so)."""
        if self.proc is None or self.proc.returncode is None:
            return False
        r = self.record
        r.state, r.exit_code, r.finished_at, r.ready = "terminated", self.proc.returncode, now(), False
        r.reason = "Completed" if self.proc.returncode == 0 else "Error"
        self.proc = None
        self.stop_probes()
        return True


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.key = f"{meta.get('namespace')}/{meta['name']}"
        self.hostname = (pod.get("spec") or {}).get("hostname") or meta["name"]
        self.pod_dir = kubelet.config.root_dir / "pods" / self.uid
        self.netns = ""
        self.pod_ip = ""
        self.start_time = now()
        self.containers = [ContainerRunner(self, c) for c in (pod.get("spec") or {}).get("containers") or []]
        self._wake = asyncio.Event()
        self.finished = False

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def container(self, name: str) -> ContainerRunner | None:
        return next((c for c in self.containers if c.spec["name"] == name), None)

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            await self.stop(0)
            raise
        except Exception:
            log.exception("pod %s: worker failed", self.key)

    async def _run(self) -> None:
        info = await asyncio.to_thread(self.kubelet.network.setup, self.uid)
        self.netns, self.pod_ip = info.netns, info.ip
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.kubelet.config
        (self.pod_dir / "resolv.conf").write_text(dnsconfig.resolv_conf(
            self.pod, cluster_dns=cfg.cluster_dns, cluster_domain=cfg.cluster_domain, host=cfg.host_resolv))
        (self.pod_dir / "hosts").write_text(dnsconfig.hosts_file(self.pod, self.pod_ip,
                                                                 cluster_domain=cfg.cluster_domain))
        # Processes of an earlier kubelet in this pod are not ours to track: start afresh.
        await asyncio.to_thread(self.kubelet.kill_pod_processes, self.netns)
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        for c in self.containers:
            await c.start()
        while True:
            if (self.pod["metadata"]).get("deletionTimestamp"):
                grace = self.pod["metadata"].get("deletionGracePeriodSeconds", 30)
                await self.stop(float(grace))
                await self._finalize()
                return
            for c in self.containers:
                if c.reap() and self._should_restart(c, policy):
                    c.next_start = time.monotonic() + self.kubelet.backoff.delay(c.record.restart_count + 1)
                    c.record.last_terminated = c.record.as_status()["state"]["terminated"]
                    c.record.state, c.record.reason = "waiting", "CrashLoopBackOff"
                if (c.record.state == "waiting" and c.record.reason == "CrashLoopBackOff"
                        and time.monotonic() >= c.next_start):
                    c.record.restart_count += 1
                    await c.start()
            await self._report()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)

    def _should_restart(self, c: ContainerRunner, policy: str) -> bool:
        return policy == "Always" or (policy == "OnFailure" and bool(c.record.exit_code))

    async def _report(self) -> None:
        status = pod_status(self.pod, [c.record for c in self.containers], pod_ip=self.pod_ip,
                            host_ip=self.kubelet.config.node_ip, start_time=self.start_time)
        if same_status(status, self.pod.get("status") or {}):
            return
        meta = self.pod["metadata"]
        path = resource_path("v1", "pods", meta.get("namespace"), meta["name"], "status")
        try:
            self.pod = await self.kubelet.api.patch(path, {"status": status}, "merge")
        except ApiError as exc:
            if exc.code != 404:
                log.warning("pod %s: status update failed: %s", self.key, exc.message)
        except OSError as exc:
            log.warning("pod %s: status update failed: %s", self.key, exc)

    async def stop(self, grace: float) -> None:
        """SIGTERM, up to `grace` seconds, SIGKILL; then the network goes."""
        for c in self.containers:
            c.stop_probes()
            c.signal(signal.SIGTERM)
        waits = [c.proc.wait() for c in self.containers if c.proc and c.proc.returncode is None]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), grace)
        for c in self.containers:
            c.signal(signal.SIGKILL)
            if c.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    await c.proc.wait()
                c.reap()
        if self.netns:
            await asyncio.to_thread(self.kubelet.kill_pod_processes, self.netns)
        await asyncio.to_thread(self.kubelet.network.teardown, self.uid)
        self.finished = True

    async def _finalize(self) -> None:
        meta = self.pod["metadata"]
        path = resource_path("v1", "pods", meta.get("namespace"), meta["name"])
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}
        with contextlib.suppress(ApiError, OSError):
            await self.kubelet.api.delete(path, body=body)

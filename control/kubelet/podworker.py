"""One pod's life on this node: its network, its resolv.conf and hosts, its containers,
the status the kubelet owns, and graceful termination."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from control.kubelet import dnsconfig, envvars
from control.kubelet.containers import ContainerRunner
from control.kubelet.runtime import Checkpoint, kill_strays
from control.kubelet.status import TERMINATED, PodFacts, now, pod_status, same_status
from netplane.client.rest import ApiError, resource_path
from netplane.kernel.netns import exists as ns_exists
from netplane.kernel.netns import path as netns_path
from netplane.model import Container, Pod, Probe, decode

if TYPE_CHECKING:
    from control.kubelet.kubelet import Kubelet

log = logging.getLogger(__name__)

RESYNC = 10.0  # seconds between status checks when nothing happens
DEFAULT_GRACE = 30


def _rv(raw: dict[str, Any]) -> int:
    """The object's resourceVersion as a number, to tell a stale informer event from the
    answer to our own write. Kubernetes calls it opaque; netplane's apiserver (like etcd)
    counts revisions, and anything else reads as 0, so that every update is taken."""
    text = (raw.get("metadata") or {}).get("resourceVersion") or ""
    return int(text) if text.isdigit() else 0


class PodWorker:
    def __init__(self, kubelet: Kubelet, raw: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.raw = raw
        self.pod: Pod = decode(Pod, raw)
        meta = self.pod.metadata
        self.uid, self.name, self.namespace = meta.uid, meta.name, meta.namespace or "default"
        self.key = f"{self.namespace}/{self.name}"
        self.hostname = dnsconfig.pod_hostname(self.pod)
        self.netns = ""
        self.pod_ip = ""
        self.network_ready = False
        self.start_time = self.pod.status.start_time or now()
        self.seen_at = time.monotonic()
        self.containers = [ContainerRunner(self, c) for c in self.pod.spec.containers]
        self.finished = False  # terminated, and the API object finalised
        self.kill_on_cancel = False
        self._wake = asyncio.Event()
        self._terminal = False  # no container runs again (finished, or stopped for deletion)
        self._api_status: dict[str, Any] = self.pod_status_raw()
        self._api_rv = _rv(raw)
        self._written: dict[str, Any] | None = None
        self._reported_running = False
        self._passive = False

    # -- what containers ask of their pod --------------------------------------------------

    @property
    def restart_policy(self) -> str:
        return self.pod.spec.restart_policy or "Always"

    def pod_status_raw(self) -> dict[str, Any]:
        return dict(self.raw.get("status") or {})

    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def wake(self) -> None:
        self._wake.set()

    def binds(self) -> dict[str, str]:
        pod_dir = self.kubelet.runtime.pod_dir(self.uid)
        return {str(pod_dir / "resolv.conf"): "/etc/resolv.conf", str(pod_dir / "hosts"): "/etc/hosts"}

    def grace_period(self, probe: Probe | None = None) -> float:
        """terminationGracePeriodSeconds (a probe's own overrides it for that probe's kills)."""
        if probe is not None and probe.termination_grace_period_seconds is not None:
            return float(probe.termination_grace_period_seconds)
        grace = self.pod.spec.termination_grace_period_seconds
        return float(DEFAULT_GRACE if grace is None else grace)

    async def container_env(self, container: Container) -> dict[str, str]:
        """The container's environment; ConfigMaps and Secrets its env names are read now."""
        cms, secrets = envvars.referenced_sources(container)
        sources = envvars.EnvSources(
            {n: d for n in cms if (d := await self._read_data("configmaps", n)) is not None},
            {n: d for n in secrets if (d := await self._read_data("secrets", n)) is not None})
        info = envvars.PodRuntimeInfo([self.pod_ip] if self.pod_ip else [], [self.kubelet.config.node_ip])
        return envvars.container_env(self.pod, container, self.kubelet.services(), info, sources)

    async def _read_data(self, plural: str, name: str) -> dict[str, str] | None:
        try:
            obj = await self.kubelet.api.get(resource_path("v1", plural, self.namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise envvars.EnvError(f"cannot read {plural[:-1]} {self.namespace}/{name}: "
                                   f"{exc.message}") from exc
        return dict(obj.get("data") or {})

    def container(self, name: str) -> ContainerRunner | None:
        return next((c for c in self.containers if c.name == name), None)

    # -- updates from the informer ---------------------------------------------------------

    def update(self, raw: dict[str, Any]) -> None:
        rv = _rv(raw)
        if rv and self._api_rv and rv < self._api_rv:
            return  # older than what our own status write returned
        self.raw, self._api_rv = raw, rv
        self.pod = decode(Pod, raw)
        self._api_status = self.pod_status_raw()
        self.wake()

    @property
    def deleting(self) -> bool:
        return self.pod.metadata.deletion_timestamp is not None

    def abort(self, task: asyncio.Task[None] | None) -> None:
        """The pod is gone from the API (force-deleted): stop everything now."""
        self.kill_on_cancel = True
        if task is not None:
            task.cancel()

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            if self.kill_on_cancel:
                await asyncio.shield(self._kill_now())
            else:
                for c in self.containers:
                    c.detach()  # kubelet shutdown: the processes keep running
            raise

    async def _run(self) -> None:
        if self.pod.status.phase in ("Succeeded", "Failed"):
            # Finished before this kubelet started: nothing runs again, and the status the
            # API holds is the last word.
            self._terminal = self._passive = True
            await self._release_network()
        elif self.pod.spec.host_network:
            for c in self.containers:
                c.refuse("hostNetwork pods are not supported by netplane's process runtime: every pod "
                         "gets a network namespace of its own")
        elif self.deleting:
            # Deleted before this kubelet saw it run (e.g. while it was down): stop what an
            # earlier kubelet started; no network is set up again.
            self.netns = self.kubelet.network.netns_name(self.uid)
            await self._launch(await asyncio.to_thread(self._checkpoints))
        else:
            checkpoints = await self._prepare()
            if checkpoints is None:
                return
            await self._launch(checkpoints)
        while not self.deleting:
            # Cleared before looking, so that anything that happens meanwhile (an exit, a
            # probe result, an update) wakes the next round instead of being lost.
            self._wake.clear()
            if not self._terminal:
                t = self.loop_time()
                for c in self.containers:
                    if c.due(t):
                        await c.start()
                if self.containers and all(c.record.state == TERMINATED and c.restart_at is None
                                           for c in self.containers):
                    self._terminal = True
            await self._report()
            if self._terminal and self.network_ready:
                await self._release_network()  # the kubelet kills a finished pod's sandbox
                await self._report()
            await self._sleep()
        await self._terminate()

    async def _sleep(self) -> None:
        deadlines = [c.restart_at for c in self.containers if c.restart_at is not None]
        timeout = RESYNC if not deadlines else max(0.0, min(min(deadlines) - self.loop_time(), RESYNC))
        # asyncio.timeout, not wait_for: in Python 3.11, wait_for loses a cancellation that
        # arrives as the event is set, and the cancelled worker would run on.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _prepare(self) -> dict[str, Checkpoint] | None:
        """Network, DNS files and the containers' checkpoints; retried until they work or the
        pod is deleted (then None)."""
        delay = 0.5
        while True:
            self._wake.clear()
            try:
                # One trip to a thread for all of it: with many pods starting at once, each
                # gets through its blocking work in one go instead of queueing for every step.
                checkpoints = await asyncio.to_thread(self._prepare_blocking)
                self.network_ready = True
                return checkpoints
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pod %s: network setup failed (retrying in %.1fs): %s", self.key, delay, exc)
                for c in self.containers:
                    c.record.message = f"network setup failed: {exc}"
            await self._report()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            delay = min(delay * 2, 10.0)
            if self.deleting:
                await self._terminate()
                return None

    def _prepare_blocking(self) -> dict[str, Checkpoint]:
        info = self.kubelet.network.setup(self.uid, self.namespace, self.name)
        self.netns, self.pod_ip = info.netns, info.ip
        self._write_files()
        return self._checkpoints()

    def _checkpoints(self) -> dict[str, Checkpoint]:
        runtime = self.kubelet.runtime
        return {c.name: cp for c in self.containers if (cp := runtime.load(self.uid, c.name)) is not None}

    def _write_files(self) -> None:
        cfg = self.kubelet.config
        pod_dir = self.kubelet.runtime.pod_dir(self.uid)
        pod_dir.mkdir(parents=True, exist_ok=True)
        resolv = dnsconfig.resolv_conf(self.pod, cluster_dns=cfg.cluster_dns,
                                       cluster_domain=cfg.cluster_domain, host=cfg.host_resolv)
        hosts = dnsconfig.hosts_file(self.pod, [self.pod_ip], cluster_domain=cfg.cluster_domain,
                                     aliases=dnsconfig.host_aliases(self.raw))
        for name, text in (("resolv.conf", resolv), ("hosts", hosts)):
            tmp = pod_dir / f".{name}.tmp"
            tmp.write_text(text)
            tmp.replace(pod_dir / name)

    async def _launch(self, checkpoints: dict[str, Checkpoint]) -> None:
        """Adopts what an earlier kubelet started, removes its leftovers, starts the rest."""
        was_ready = {s.name: s.ready for s in self.pod.status.container_statuses}
        for c in self.containers:
            cp = checkpoints.get(c.name)
            if cp is not None and c.adopt(cp, was_ready.get(c.name, False)):
                continue
            c.restart_at = self.loop_time()
        if not checkpoints or not ns_exists(self.netns):
            return  # a pod this node never ran: nothing can be left over
        keep = {c.process.pid for c in self.containers if c.running and c.process is not None}
        killed = await asyncio.to_thread(kill_strays, netns_path(self.netns), keep)
        if killed:
            log.info("pod %s: killed %d processes no container owns: %s", self.key, len(killed), killed)

    async def _release_network(self) -> None:
        if self.netns and ns_exists(self.netns):
            try:
                await asyncio.to_thread(kill_strays, netns_path(self.netns), set())
            except OSError as exc:
                log.warning("pod %s: cannot kill what is left in its namespace: %s", self.key, exc)
        try:
            await asyncio.to_thread(self.kubelet.network.teardown, self.uid)
        except Exception:
            log.exception("pod %s: network teardown failed", self.key)
        self.network_ready = False

    # -- status ----------------------------------------------------------------------------

    async def _report(self) -> None:
        if self._passive:
            return
        facts = PodFacts(pod_ips=[self.pod_ip] if self.pod_ip else self._known_ips(),
                         host_ip=self.kubelet.config.node_ip, start_time=self.start_time,
                         network_ready=self.network_ready, terminal=self._terminal and self.deleting)
        status = pod_status(self.pod, [c.record for c in self.containers], facts)
        if not self._reported_running and status["phase"] == "Running":
            self._reported_running = True
            self.kubelet.metrics.pod_start.observe(time.monotonic() - self.seen_at)
        if (self._written is not None and same_status(status, self._written)
                and same_status(self._written, self._api_status)):
            return
        if self._written is None and same_status(status, self._api_status):
            self._written = status
            return
        path = resource_path("v1", "pods", self.namespace, self.name, "status")
        try:
            updated = await self.kubelet.api.patch(path, {"metadata": {"uid": self.uid}, "status": status},
                                                   "merge")
        except ApiError as exc:
            self.kubelet.metrics.status_patches.labels("error").inc()
            if exc.code != 404:
                log.warning("pod %s: status update failed: %s", self.key, exc.message)
            return
        except (OSError, TimeoutError) as exc:
            self.kubelet.metrics.status_patches.labels("error").inc()
            log.warning("pod %s: status update failed: %s", self.key, exc)
            return
        self.kubelet.metrics.status_patches.labels("ok").inc()
        self._written = status
        if isinstance(updated, dict) and _rv(updated) >= self._api_rv:
            self._api_status, self._api_rv = dict(updated.get("status") or {}), _rv(updated)

    def _known_ips(self) -> list[str]:
        return [p.ip for p in self.pod.status.pod_ips] or ([self.pod.status.pod_ip] if self.pod.status.pod_ip
                                                            else [])

    # -- the end ---------------------------------------------------------------------------

    async def _terminate(self) -> None:
        """Graceful deletion: SIGTERM, deletionGracePeriodSeconds, SIGKILL; the final status;
        the network released; the API object finalised."""
        grace = self.pod.metadata.deletion_grace_period_seconds
        grace_s = self.grace_period() if grace is None else float(grace)
        await asyncio.gather(*(c.stop(grace_s) for c in self.containers))
        self._terminal = True
        await self._report()
        if self.netns or self.network_ready:
            await self._release_network()
        await self._finalize()

    async def _finalize(self) -> None:
        path = resource_path("v1", "pods", self.namespace, self.name)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}
        delay = 0.5
        while True:
            try:
                await self.kubelet.api.delete(path, body=body)
                break
            except ApiError as exc:
                # Gone already, or a new pod of that name (the uid precondition failed); any
                # other conflict is a concurrent write, and the delete is tried again.
                if exc.code == 404 or (exc.code == 409 and "precondition" in exc.message.lower()):
                    break
                log.warning("pod %s: final delete failed: %s", self.key, exc.message)
            except (OSError, TimeoutError) as exc:
                log.warning("pod %s: final delete failed: %s", self.key, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        self.finished = True

    async def _kill_now(self) -> None:
        await asyncio.gather(*(c.stop(0) for c in self.containers), return_exceptions=True)
        await self._release_network()
        self.finished = True

    # -- metrics ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.containers:
            state = {"running": "running", "terminated": "exited"}.get(c.record.state, "created")
            out[state] = out.get(state, 0) + 1
        return out

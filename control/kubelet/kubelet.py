"""The kubelet: registers its Node, keeps its status and Lease fresh, and runs the pods
bound to it, one PodWorker each; after a restart it adopts what still runs and removes
what belongs to pods that are gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterable
from typing import Any

import aiohttp

from control.kubelet import node as nodeapi
from control.kubelet.config import KubeletConfig, PodNetworkProvider, default_network
from control.kubelet.metrics import KubeletMetrics
from control.kubelet.podworker import PodWorker
from control.kubelet.runtime import ProcessRuntime, kill_strays, start_ticks
from control.kubelet.server import KubeletServers
from netplane.client.informer import Informer
from netplane.client.rest import ApiClient
from netplane.kernel.netns import path as netns_path
from netplane.model import Service, decode

log = logging.getLogger(__name__)


def leaked_networks(listed: Iterable[str], live: set[str]) -> set[str]:
    """Of the pods list_pod_netns() names (uids, or a uid's first characters), those that
    match no live pod."""
    return {part for part in listed if not any(uid.startswith(part) for uid in live)}


class KubeletError(Exception):
    """The kubelet cannot run here; says why."""


class Kubelet:
    def __init__(self, config: KubeletConfig, api: ApiClient, *, network: PodNetworkProvider | None = None,
                 runtime: ProcessRuntime | None = None) -> None:
        self.config = config
        self.api = api
        self.network = network if network is not None else default_network(config)
        self.runtime = runtime or ProcessRuntime(config.root_dir)
        self.metrics = KubeletMetrics(config.node_name, self._counts)
        self.workers: dict[str, PodWorker] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self.pods: Informer[dict[str, Any]] = Informer(
            api, "/api/v1/pods", field_selector=f"spec.nodeName={config.node_name}")
        self.service_informer: Informer[Service] = Informer(api, "/api/v1/services",
                                                            decode=lambda raw: decode(Service, raw))
        self.http: aiohttp.ClientSession | None = None
        self.node: nodeapi.NodeAgent | None = None
        self.synced = False

    # -- what workers and the server use ---------------------------------------------------

    def services(self) -> list[Service]:
        return self.service_informer.cache.list()

    def worker_for(self, namespace: str, name: str) -> PodWorker | None:
        found = [w for w in self.workers.values() if w.namespace == namespace and w.name == name]
        live = [w for w in found if not w.finished]
        return (live or found or [None])[-1]

    def healthy(self) -> bool:
        return self.synced

    def _counts(self) -> tuple[int, dict[str, int]]:
        pods, containers = 0, {}
        for w in list(self.workers.values()):
            counts = w.counts()
            pods += bool(counts.get("running"))
            for k, v in counts.items():
                containers[k] = containers.get(k, 0) + v
        return pods, containers

    # -- the main loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled. Cancelling leaves the pods' processes running (a restarted
        kubelet adopts them), as stopping a kubelet does not stop its pods."""
        cfg = self.config
        cfg.root_dir.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(self.network.ensure_node_bridge)
        except Exception as exc:
            raise KubeletError(f"cannot set up the node bridge {cfg.bridge} for {cfg.pod_cidr}: {exc}; the "
                               "kubelet must run as root, inside its node's network namespace") from exc
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        servers = KubeletServers(self)
        await servers.start()
        try:
            resources = nodeapi.capacity(cfg.root_dir, cfg.max_pods)
            node = nodeapi.node_object(cfg.node_name, cfg.pod_cidr, cfg.node_ip, str(cfg.socket_path),
                                       resources=resources)
            self.node = nodeapi.NodeAgent(self.api, node, cfg.lease_duration)
            await self._retry("register the node", self.node.register)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._every(cfg.status_update_frequency, "status", self.node.heartbeat))
                tg.create_task(self._every(cfg.lease_renew_interval, "lease", self.node.renew_lease))
                # Services first: a container's environment names those that exist when it starts.
                tg.create_task(self.service_informer.run())
                await self.service_informer.wait_synced()
                self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), self._on_pod_deleted)
                tg.create_task(self.pods.run())
                await self.pods.wait_synced()
                await self._reconcile()
                self.synced = True
                log.info("kubelet %s: running %d pods", cfg.node_name, len(self.workers))
        finally:
            self.synced = False
            tasks = [*self.tasks.values(), *self._cleanups]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await servers.stop()
            await self.http.close()

    async def _retry(self, what: str, call: Any) -> None:
        delay = 0.5
        while True:
            try:
                await call()
                return
            except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                log.warning("cannot %s (retrying in %.1fs): %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _every(self, interval: float, kind: str, call: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await call()
                self.metrics.heartbeats.labels(kind, "ok").inc()
                wait = interval
            except Exception as exc:  # the apiserver may be restarting: keep trying, sooner
                self.metrics.heartbeats.labels(kind, "error").inc()
                log.warning("node %s update failed: %s", kind, exc)
                wait = min(interval, 1.0)
            await asyncio.sleep(max(wait - (loop.time() - started), 0.05))

    # -- pods ------------------------------------------------------------------------------

    def _on_pod(self, raw: dict[str, Any]) -> None:
        uid = raw["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(raw)
            return
        worker = PodWorker(self, raw)
        self.workers[uid] = worker
        loop = asyncio.get_running_loop()
        self.tasks[uid] = loop.create_task(self._supervise(uid), name=f"pod {worker.key}")

    async def _supervise(self, uid: str) -> None:
        """Runs the pod's worker; a worker that fails unexpectedly is replaced by a fresh one,
        which adopts the containers through their checkpoints."""
        delay = 1.0
        try:
            while True:
                worker = self.workers[uid]
                try:
                    await worker.run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("pod %s: worker failed; starting over in %.0fs", worker.key, delay)
                for c in worker.containers:
                    c.detach()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                raw = self.pods.cache.get(f"{worker.namespace}/{worker.name}")
                if raw is None or raw["metadata"]["uid"] != uid:
                    return
                self.workers[uid] = PodWorker(self, raw)
        finally:
            self.tasks.pop(uid, None)

    def _on_pod_deleted(self, raw: dict[str, Any]) -> None:
        """Gone from the API: finalised by us, or force-deleted (then stop everything now)."""
        uid = raw["metadata"]["uid"]
        worker = self.workers.get(uid)
        task = self.tasks.get(uid)
        if worker is not None and task is not None:
            worker.abort(task)
        cleanup = asyncio.get_running_loop().create_task(self._forget(uid, task), name=f"forget pod {uid}")
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)

    async def _forget(self, uid: str, task: asyncio.Task[None] | None) -> None:
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.workers.pop(uid, None)
        await asyncio.to_thread(self.runtime.remove_pod, uid)

    async def _reconcile(self) -> None:
        """After the first sync: processes, namespaces, addresses and directories of pods
        that no longer exist go."""
        live = {raw["metadata"]["uid"] for raw in self.pods.cache.list()}
        for uid in await asyncio.to_thread(self.runtime.pod_uids):
            if uid not in live:
                log.info("removing pod %s, which no longer exists", uid)
                await asyncio.to_thread(self._kill_checkpointed, uid)
                await self._teardown(uid)
                await asyncio.to_thread(self.runtime.remove_pod, uid)
        # The network's own view too: namespaces and addresses without a pod directory.
        leaked_fn = getattr(self.network, "leaked", None)
        if leaked_fn is not None:
            leaked = set(await asyncio.to_thread(leaked_fn, live))
        else:
            leaked = leaked_networks(await asyncio.to_thread(self.network.list_pod_netns), live)
        for part in sorted(leaked):
            name = self.network.netns_name(part)
            log.info("removing network namespace %s of a pod that no longer exists", name)
            await asyncio.to_thread(kill_strays, netns_path(name), set())
            await self._teardown(part)

    async def _teardown(self, uid: str) -> None:
        try:
            await asyncio.to_thread(self.network.teardown, uid)
        except Exception:
            log.exception("network teardown of pod %s failed", uid)

    def _kill_checkpointed(self, uid: str) -> None:
        directory = self.runtime.pod_dir(uid)
        for sub in directory.iterdir() if directory.is_dir() else ():
            cp = self.runtime.load(uid, sub.name) if sub.is_dir() else None
            if cp is not None and cp.pid > 0 and start_ticks(cp.pid) == cp.start_ticks:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(cp.pid, signal.SIGKILL)

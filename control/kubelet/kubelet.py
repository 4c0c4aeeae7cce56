"""The kubelet: registers its Node, renews its Lease, and runs the pods bound to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from control.cluster.processes import kill_processes_in_netns
from control.kubelet import node as nodeapi
from control.kubelet.dnsconfig import HostResolv
from control.kubelet.network import NodeNetworkConfig, PodNetwork
from control.kubelet.podworker import Backoff, PodWorker
from control.kubelet.server import build_app
from netplane.client.informer import Informer
from netplane.client.rest import ApiClient

log = logging.getLogger(__name__)


@dataclass
class KubeletConfig:
    kubeconfig: str
    node_name: str
    pod_cidr: str
    root_dir: Path
    node_ip: str
    cluster_id: str
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    lease_duration: int = 40
    lease_renew_interval: float = 10.0
    status_update_frequency: float = 10.0
    healthz_port: int = 10248
    backoff_initial: float = 10.0
    host_resolv: HostResolv = field(default_factory=lambda: HostResolv([], [], []))

    @property
    def socket_path(self) -> Path:
        return self.root_dir / "kubelet.sock"


class Kubelet:
    def __init__(self, config: KubeletConfig, api: ApiClient) -> None:
        self.config = config
        self.api = api
        self.network = PodNetwork(NodeNetworkConfig(config.cluster_id, config.pod_cidr, config.root_dir))
        self.backoff = Backoff(initial=config.backoff_initial)
        self.workers: dict[str, PodWorker] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.pods: Informer[dict[str, Any]] = Informer(api, "/api/v1/pods",
                                                       field_selector=f"spec.nodeName={config.node_name}")
        self.service_informer: Informer[dict[str, Any]] = Informer(api, "/api/v1/services")
        self.http: aiohttp.ClientSession

    def services(self) -> list[dict[str, Any]]:
        return self.service_informer.cache.list()

    def worker_for(self, namespace: str, name: str) -> PodWorker | None:
        pod = self.pods.cache.get(f"{namespace}/{name}")
        return self.workers.get(pod["metadata"]["uid"]) if pod else None

    def kill_pod_processes(self, netns: str) -> None:
        kill_processes_in_netns([netns])

    async def run(self) -> None:
        cfg = self.config
        cfg.root_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.network.ensure_node_bridge)
        node = nodeapi.node_object(cfg.node_name, cfg.pod_cidr, cfg.node_ip, str(cfg.socket_path))
        runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False)
        await runner.setup()
        cfg.socket_path.unlink(missing_ok=True)
        await web.UnixSite(runner, str(cfg.socket_path)).start()
        self.http = aiohttp.ClientSession()
        try:
            await nodeapi.register(self.api, node)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._heartbeats(node))
                tg.create_task(self.service_informer.run())
                await self.service_informer.wait_synced()
                self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), self._on_delete)
                tg.create_task(self.pods.run())
                await self.pods.wait_synced()
                await self._reconcile()
        finally:
            for task in self.tasks.values():
                task.cancel()
            await self.http.close()
            await runner.cleanup()

    async def _heartbeats(self, node: dict[str, Any]) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        next_status = next_lease = 0.0
        while True:
            t = loop.time()
            try:
                if t >= next_lease:
                    await nodeapi.renew_lease(self.api, cfg.node_name, cfg.lease_duration)
                    next_lease = t + cfg.lease_renew_interval
                if t >= next_status:
                    await nodeapi.heartbeat(self.api, node)
                    next_status = t + cfg.status_update_frequency
            except Exception as exc:  # the apiserver may be restarting: keep trying
                log.warning("node heartbeat failed: %s", exc)
                next_lease = next_status = t + 1.0
            await asyncio.sleep(max(0.1, min(next_lease, next_status) - loop.time()))

    async def _reconcile(self) -> None:
        """After a restart: networks and addresses of pods that are gone are released."""
        live = {p["metadata"]["uid"] for p in self.pods.cache.list()}
        held = {uid for uid in (self.network.ipam.owner(ip) for ip in self.network.ipam.held_ips()) if uid}
        for uid in held - live:
            log.info("releasing the network of pod %s, which no longer exists", uid)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(kill_processes_in_netns, [self.network.netns_name(uid)])
            await asyncio.to_thread(self.network.teardown, uid)

    def _on_pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            return
        worker = PodWorker(self, pod)
        self.workers[uid] = worker
        task = asyncio.create_task(worker.run(), name=f"pod {worker.key}")
        self.tasks[uid] = task
        task.add_done_callback(lambda _t, uid=uid: self._forget(uid))

    def _forget(self, uid: str) -> None:
        self.tasks.pop(uid, None)
        worker = self.workers.get(uid)
        if worker is not None and worker.finished:
            self.workers.pop(uid, None)

    def _on_delete(self, pod: dict[str, Any]) -> None:
        """Deleted without us (force delete, or already finalized): stop everything now."""
        task = self.tasks.get(pod["metadata"]["uid"])
        if task is not None:
            task.cancel()

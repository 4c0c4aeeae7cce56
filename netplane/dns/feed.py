"""The zone's feed: informers on Services, EndpointSlices and Pods keep the zone equal to
the API, and one on kube-dns's ConfigMap keeps the upstreams equal to it. A change rebuilds
only the records of the object it touches; whatever alters an answer tells `on_change`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from netplane.client.informer import Informer
from netplane.client.rest import ApiClient
from netplane.dns.records import pod_record, service_records
from netplane.dns.upstreams import UpstreamConfig, UpstreamError, parse_kube_dns_configmap
from netplane.dns.zone import Zone
from netplane.model import SERVICE_NAME_LABEL, ConfigMap, EndpointSlice, Pod, Service, decode

log = logging.getLogger(__name__)


class ZoneFeed:
    def __init__(self, client: ApiClient, zone: Zone, *, on_change: Callable[[], None],
                 watch_pods: bool = True, configmap: tuple[str, str] | None = None,
                 base_upstreams: UpstreamConfig | None = None,
                 on_upstreams: Callable[[UpstreamConfig], None] | None = None) -> None:
        self.zone = zone
        self.on_change = on_change
        self.base_upstreams = base_upstreams or UpstreamConfig()
        self.on_upstreams = on_upstreams
        self.ready = asyncio.Event()
        self.services: Informer[Service] = Informer(client, "/api/v1/services",
                                                    decode=lambda raw: decode(Service, raw))
        self.slices: Informer[EndpointSlice] = Informer(
            client, "/apis/discovery.k8s.io/v1/endpointslices", label_selector=SERVICE_NAME_LABEL,
            decode=lambda raw: decode(EndpointSlice, raw))
        self.slices.cache.add_index("service", lambda s: [f"{s.namespace}/{s.service_name}"])
        self.pods: Informer[Pod] | None = None
        if watch_pods:
            self.pods = Informer(client, "/api/v1/pods", decode=lambda raw: decode(Pod, raw))
        self.configmap: Informer[ConfigMap] | None = None
        if configmap is not None:
            ns, name = configmap
            self.configmap = Informer(client, f"/api/v1/namespaces/{ns}/configmaps",
                                      field_selector=f"metadata.name={name}",
                                      decode=lambda raw: decode(ConfigMap, raw))
        self._wire()

    @property
    def informers(self) -> list[Informer[object]]:
        out: list[Informer[object]] = [self.services, self.slices]  # type: ignore[list-item]
        out += [i for i in (self.pods, self.configmap) if i is not None]  # type: ignore[misc]
        return out

    def _wire(self) -> None:
        self.services.add_handler(lambda s: self._sync_service(s.namespace, s.name),
                                  lambda _o, s: self._sync_service(s.namespace, s.name),
                                  lambda s: self._sync_service(s.namespace, s.name))
        self.slices.add_handler(self._slice_changed, lambda o, s: self._slice_changed(o, s),
                                self._slice_changed)
        if self.pods is not None:
            self.pods.add_handler(self._pod_changed, lambda _o, p: self._pod_changed(p), self._pod_deleted)
        if self.configmap is not None:
            self.configmap.add_handler(self._configmap_changed, lambda _o, c: self._configmap_changed(c),
                                       lambda _c: self._configmap_changed(None))

    def _changed(self, changed: bool) -> None:
        if changed:
            self.on_change()

    def _sync_service(self, namespace: str, name: str) -> None:
        svc = self.services.cache.get(f"{namespace}/{name}")
        if svc is None:
            self._changed(self.zone.remove_service(namespace, name))
            return
        slices = self.slices.cache.by_index("service", f"{namespace}/{name}")
        self._changed(self.zone.set_service(namespace, name, service_records(svc, slices, self.zone.domain)))

    def _slice_changed(self, *slices: EndpointSlice) -> None:
        # The slice's service label may have changed: both the old and the new service.
        for key in {(s.namespace, s.service_name) for s in slices if s.service_name}:
            self._sync_service(*key)

    def _pod_changed(self, pod: Pod) -> None:
        self._changed(self.zone.set_pod(f"{pod.namespace}/{pod.name}", pod_record(pod)))

    def _pod_deleted(self, pod: Pod) -> None:
        self._changed(self.zone.remove_pod(f"{pod.namespace}/{pod.name}"))

    def _configmap_changed(self, cm: ConfigMap | None) -> None:
        if self.on_upstreams is None:
            return
        config = self.base_upstreams
        if cm is not None:
            try:
                upstreams, stubs = parse_kube_dns_configmap(cm.data)
            except UpstreamError as exc:
                log.error("ConfigMap %s/%s: %s; keeping the upstreams as they were", cm.namespace,
                          cm.name, exc)
                return
            config = UpstreamConfig(upstreams or self.base_upstreams.default, stubs)
        log.info("upstreams: %s; stub domains: %s", ", ".join(map(str, config.default)) or "none",
                 {d: [str(u) for u in s] for d, s in config.stubs.items()} or "none")
        self.on_upstreams(config)

    async def run(self) -> None:
        """Runs the informers until cancelled; `ready` is set once all have synced."""
        async with asyncio.TaskGroup() as tasks:
            for informer in self.informers:
                tasks.create_task(informer.run(), name=f"informer {informer.path}")
            await asyncio.gather(*(i.wait_synced() for i in self.informers))
            log.info("caches synced: %d services, %d endpoint slices, %d pods", len(self.services.cache),
                     len(self.slices.cache), len(self.pods.cache) if self.pods is not None else 0)
            self.ready.set()

"""The gateway's control loop: informers on Ingresses, IngressClasses, Services,
EndpointSlices, TLS Secrets and HTTPRoutes; on any change (a burst coalesced over
`debounce`), a new Config is built off to the side and swapped in whole, so a request
sees the old configuration or the new one, never a mix, and nothing is reloaded."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from netplane.client.informer import Informer
from netplane.client.rest import ApiClient, ApiError
from netplane.ingress.config import Config, Options, build_config
from netplane.ingress.proxy import Proxy
from netplane.ingress.tls import TlsContexts
from netplane.model import EndpointSlice, Ingress, IngressClass, Secret, Service, decode
from netplane.model.gateway import GATEWAY_GROUP, HTTPRoute

log = logging.getLogger(__name__)

HTTPROUTES = f"/apis/{GATEWAY_GROUP}/v1/httproutes"


class Controller:
    def __init__(self, client: ApiClient, proxy: Proxy, tls: TlsContexts | None, options: Options, *,
                 debounce: float = 0.05) -> None:
        self.client = client
        self.proxy = proxy
        self.tls = tls
        self.options = options
        self.debounce = debounce
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._problems: set[str] = set()

        def informer(path: str, kind: type[Any], **kw: str) -> Informer[Any]:
            inf: Informer[Any] = Informer(client, path, decode=lambda raw: decode(kind, raw), **kw)
            inf.add_handler(lambda _o: self._changed.set(), lambda _o, _n: self._changed.set(),
                            lambda _o: self._changed.set())
            return inf

        self.ingresses = informer("/apis/networking.k8s.io/v1/ingresses", Ingress)
        self.classes = informer("/apis/networking.k8s.io/v1/ingressclasses", IngressClass)
        self.services = informer("/api/v1/services", Service)
        self.slices = informer("/apis/discovery.k8s.io/v1/endpointslices", EndpointSlice,
                               label_selector="kubernetes.io/service-name")
        self.secrets = informer("/api/v1/secrets", Secret, field_selector="type=kubernetes.io/tls")
        self.routes = informer(HTTPROUTES, HTTPRoute)

    async def _serves_http_routes(self) -> bool:
        """Whether the apiserver knows HTTPRoute (a real cluster may lack the Gateway API)."""
        try:
            await self.client.get(f"/apis/{GATEWAY_GROUP}/v1")
        except ApiError as exc:
            if exc.code == 404:
                log.info("the apiserver does not serve %s/v1: HTTPRoutes are not watched", GATEWAY_GROUP)
                return False
            raise
        return True

    def build(self) -> Config:
        return build_config(
            ingresses=self.ingresses.cache.list(), classes=self.classes.cache.list(),
            services=self.services.cache.list(), slices=self.slices.cache.list(),
            secrets={(s.metadata.namespace, s.metadata.name): s for s in self.secrets.cache.list()},
            http_routes=self.routes.cache.list(), options=self.options)

    def apply(self) -> Config:
        start = time.perf_counter()
        config = self.build()
        problems = list(config.problems)
        if self.tls is not None:
            problems += self.tls.update(config.certificates)
        self.proxy.swap(config)
        fresh = set(problems) - self._problems
        for problem in sorted(fresh):
            log.warning("%s", problem)
        self._problems = set(problems)
        log.info("configuration swapped in: %d ingresses, %d httproutes, %d routes, %d certificates "
                 "(%.1f ms)",
                 config.ingresses, config.http_routes, len(config.table.routes()), len(config.certificates),
                 (time.perf_counter() - start) * 1000)
        return config

    async def run(self) -> None:
        """Runs until cancelled."""
        informers = [self.ingresses, self.classes, self.services, self.slices, self.secrets]
        if await self._serves_http_routes():
            informers.append(self.routes)
        async with asyncio.TaskGroup() as tasks:
            for inf in informers:
                tasks.create_task(inf.run(), name=f"informer {inf.path}")
            await asyncio.gather(*(inf.wait_synced() for inf in informers))
            self._changed.clear()
            self.apply()
            self.ready.set()
            while True:
                await self._changed.wait()
                await asyncio.sleep(self.debounce)  # a burst of events is one rebuild
                self._changed.clear()
                try:
                    self.apply()
                except Exception:  # keep serving the last good configuration
                    log.exception("building the configuration failed; the previous one stays")

"""The apiserver's aiohttp application: routes, middlewares and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from control.apiserver import discovery, errors, namespaces, openapi
from control.apiserver.allocators import parse_port_range
from control.apiserver.config import (
    AUTHENTICATOR,
    AUTHORIZE,
    CONFIG,
    INFO,
    INSECURE_IS_ADMIN,
    METRICS,
    READY,
    USER,
    WATCH_SLOTS,
    ApiConfig,
    WatchSlots,
)
from control.apiserver.endpoints import EndpointReconciler
from control.apiserver.handlers import ApiHandlers, RequestInfo, json_response
from control.apiserver.metrics import ApiMetrics
from control.apiserver.registry import Registry
from control.apiserver.resources import RESOURCES, SERVICE
from control.apiserver.selection import ObjectFilter
from control.apiserver.services import ServiceAllocations
from control.apiserver.watch import EventCodec
from control.store import Store

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Paths anyone may read, as Kubernetes' system:public-info-viewer role allows.
_PUBLIC = frozenset({"/healthz", "/readyz", "/livez", "/version", "/version/"})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return _status_response(exc)
    except web.HTTPRequestEntityTooLarge:
        return _status_response(errors.too_large(request.app[CONFIG].max_request_bytes))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status, "BadRequest")
        message = ("the server could not find the requested resource" if exc.status == 404
                   else exc.reason)
        return _status_response(errors.ApiError(exc.status, reason, message))
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path_qs)
        return _status_response(errors.internal(str(exc)))


def _status_response(exc: errors.ApiError) -> web.Response:
    resp = json_response(exc.status(), exc.code)
    if exc.retry_after:
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    authn = request.app[AUTHENTICATOR]
    if authn is None or request.path in _PUBLIC or (
            not request.secure and request.app[INSECURE_IS_ADMIN]):
        request[USER] = None  # the insecure loopback port acts as an administrator
        return await handler(request)
    user = authn.authenticate(request.headers.get("Authorization"))
    if user is None:
        raise errors.unauthorized()
    request[USER] = user
    return await handler(request)


@web.middleware
async def _measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    code = 500
    try:
        resp = await handler(request)
        code = resp.status
        return resp
    except errors.ApiError as exc:
        code = exc.code
        raise
    finally:
        info: RequestInfo | None = request.get(INFO)
        metrics: ApiMetrics = request.app[METRICS]
        verb = info.verb.upper() if info else request.method
        resource = info.resource_label if info else ""
        metrics.requests.labels(verb, resource, str(code)).inc()
        if verb != "WATCH":
            metrics.latency.labels(verb, resource).observe(time.perf_counter() - start)


def _authorizer(authorize: Callable[..., tuple[bool, str]] | None) -> Callable[..., None]:
    def check(request: web.Request, info: RequestInfo) -> None:
        user = request.get(USER)
        if authorize is None or user is None:
            return
        ok, reason = authorize(user, info.verb, info.resource_label)
        if not ok:
            where = f' in the namespace "{info.namespace}"' if info.namespace else ""
            group = info.res.group if info.res else ""
            raise errors.forbidden(
                f'{info.resource_label} is forbidden: User "{user.name}" cannot {info.verb} '
                f'resource "{info.resource_label}" in API group "{group}"{where}: {reason}',
                name=info.name, kind=info.res.plural if info.res else None)
    return check


def create_app(
    store: Store,
    config: ApiConfig | None = None,
    *,
    authenticator: Any = None,
    authorize: Callable[..., tuple[bool, str]] | None = None,
    insecure_is_admin: bool = True,
) -> web.Application:
    """The apiserver over `store`. Without an authenticator every request is admitted
    (tests, and the loopback-only insecure port)."""
    config = config or ApiConfig()
    app = web.Application(middlewares=[_errors, _authenticate, _measure],
                          client_max_size=config.max_request_bytes)
    services = ServiceAllocations(store, config.service_cidr,
                                  parse_port_range(config.node_port_range))
    registry = Registry(store, services)
    handlers = ApiHandlers(registry, EventCodec(), bookmark_interval=config.bookmark_interval,
                           server_address=config.server_address)
    metrics = ApiMetrics()
    app[CONFIG] = config
    app[METRICS] = metrics
    app[AUTHENTICATOR] = authenticator
    app[AUTHORIZE] = _authorizer(authorize)
    app[INSECURE_IS_ADMIN] = insecure_is_admin
    app[WATCH_SLOTS] = WatchSlots(config.max_watches)
    app[READY] = asyncio.Event()

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def ready(_request: web.Request) -> web.Response:
        if not app[READY].is_set():
            return web.Response(text="not ready: starting", status=503)
        return web.Response(text="ok")

    async def version(_request: web.Request) -> web.Response:
        return json_response(discovery.version_info())

    async def prometheus(_request: web.Request) -> web.Response:
        metrics.revision.set(await store.current_revision())
        for res in RESOURCES:
            metrics.objects.labels(res.plural).set(await store.count(res.prefix))
        return web.Response(body=metrics.render(),
                            content_type="text/plain", charset="utf-8")

    app.router.add_get("/healthz", health)
    app.router.add_get("/livez", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", prometheus)

    async def openapi_root(_request: web.Request) -> web.Response:
        return web.Response(body=openapi.root(), content_type="application/json")

    async def openapi_group_version(request: web.Request) -> web.Response:
        body = openapi.documents().get(request.match_info["gv"])
        if body is None:
            raise errors.not_found_path()
        return web.Response(body=body, content_type="application/json",
                            headers={"Cache-Control": "public, immutable"})

    app.router.add_get("/openapi/v3", openapi_root)
    app.router.add_get("/openapi/v3/{gv:.+}", openapi_group_version)
    app.router.add_route("*", "/api", handlers.handle)
    app.router.add_route("*", "/apis", handlers.handle)
    app.router.add_route("*", "/api/{tail:.*}", handlers.handle)
    app.router.add_route("*", "/apis/{tail:.*}", handlers.handle)

    async def lifecycle(app: web.Application) -> Any:
        await services.load()
        svcs = await registry.list(SERVICE, None, ObjectFilter(SERVICE))
        repaired = await services.repair(svcs.items)
        if any(repaired.values()):
            log.warning("repaired service allocations: %s", repaired)
        await namespaces.bootstrap(registry, config.secure_port)
        tasks = [asyncio.create_task(
            namespaces.run_finalizer(registry, config.namespace_finalizer_interval),
            name="namespace-finalizer")]
        reconciler = None
        if config.advertise_address:
            reconciler = EndpointReconciler(registry, config.advertise_address,
                                            config.advertise_port or config.secure_port,
                                            ttl=config.endpoint_lease_ttl,
                                            interval=config.endpoint_reconcile_interval)
            try:
                await reconciler.reconcile()  # published before the apiserver says it is ready
            except Exception:
                log.exception("could not publish the kubernetes service's endpoints (retried)")
            tasks.append(asyncio.create_task(reconciler.run(), name="endpoint-reconciler"))
        app[READY].set()
        yield
        app[READY].clear()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if reconciler is not None:
            await reconciler.stop()

    app.cleanup_ctx.append(lifecycle)

    async def end_watches(app: web.Application) -> None:
        app[WATCH_SLOTS].end_all()

    app.on_shutdown.append(end_watches)
    return app

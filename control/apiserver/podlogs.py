"""`GET pods/<name>/log`: streamed from the kubelet of the pod's node, as in Kubernetes.

The kubelet serves its API on a unix socket whose path its Node carries in the
`netplane.io/kubelet-socket` annotation (docs/cluster.md): nodes live in network
namespaces the apiserver cannot reach, but the filesystem is shared.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from control.apiserver import errors
from control.apiserver.registry import Registry
from control.apiserver.resources import NODE, POD

KUBELET_SOCKET_ANNOTATION = "netplane.io/kubelet-socket"
_PASSED = ("follow", "tailLines", "previous", "timestamps", "sinceSeconds", "limitBytes")


def _container(pod: dict[str, Any], requested: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c.get("name", "") for c in spec.get("containers") or []]
    name = pod["metadata"]["name"]
    if requested:
        if requested not in names + [c.get("name") for c in spec.get("initContainers") or []]:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    raise errors.bad_request(f"a container name must be specified for pod {name}, "
                             f"choose one of: [{' '.join(names)}]")


async def serve(request: web.Request, registry: Registry, namespace: str, name: str) -> web.StreamResponse:
    pod = await registry.get(POD, namespace, name)
    container = _container(pod, request.query.get("container"))
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f'pod "{name}" is not scheduled to a node yet')
    node = await registry.get(NODE, None, node_name)
    socket_path = ((node["metadata"].get("annotations") or {}).get(KUBELET_SOCKET_ANNOTATION))
    if not socket_path:
        raise errors.ApiError(503, "ServiceUnavailable",
                              f'node "{node_name}" publishes no kubelet socket; is its kubelet running?')
    params = {k: v for k, v in request.query.items() if k in _PASSED}
    url = f"http://kubelet/containerLogs/{namespace}/{name}/{container}"
    try:
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path),
                                        timeout=aiohttp.ClientTimeout(total=None, connect=5))
    except OSError as exc:
        raise errors.ApiError(503, "ServiceUnavailable", f"kubelet of {node_name}: {exc}") from exc
    async with session:
        try:
            upstream = await session.get(url, params=params)
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"cannot reach the kubelet of {node_name}: {exc}") from exc
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text())[:500]
                raise errors.ApiError(upstream.status if upstream.status >= 400 else 502,
                                      "NotFound" if upstream.status == 404 else "InternalError", text)
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

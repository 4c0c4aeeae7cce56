"""`netplane ctl logs` (through the apiserver's pods/log) and `netplane ctl exec` (through
the kubelet socket the pod's Node publishes, which port-forward uses too; docs/cluster.md
has the framing)."""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

import aiohttp

from netplane.client.rest import ApiClient, resource_path

KUBELET_SOCKET_ANNOTATION = "netplane.io/kubelet-socket"


class PodIOError(Exception):
    """Logs or exec cannot be served; says why."""


async def logs(api: ApiClient, namespace: str, pod: str, *, container: str | None = None,
               follow: bool = False, tail: int | None = None, previous: bool = False) -> None:
    params: dict[str, Any] = {"container": container, "follow": follow or None,
                              "tailLines": tail, "previous": previous or None}
    path = resource_path("v1", "pods", namespace, pod, "log")
    async for chunk in api.stream(path, params):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


def _container(pod: dict[str, Any], requested: str | None) -> str:
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if requested:
        if requested not in names:
            raise PodIOError(f"container {requested} is not valid for pod {pod['metadata']['name']}")
        return requested
    return names[0]


async def kubelet_socket(api: ApiClient, pod: dict[str, Any]) -> tuple[str, str]:
    """(the pod's node, the path of that node's kubelet socket), from the Node's annotation."""
    pod_name = pod["metadata"]["name"]
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise PodIOError(f"pod {pod_name} is not scheduled to a node yet")
    node = await api.get(resource_path("v1", "nodes", name=node_name))
    sock = ((node["metadata"].get("annotations") or {}).get(KUBELET_SOCKET_ANNOTATION))
    if not sock:
        raise PodIOError(f"node {node_name} publishes no kubelet socket; is its kubelet running?")
    return node_name, sock


async def exec_in(api: ApiClient, namespace: str, pod_name: str, command: list[str], *,
                  container: str | None = None, stdin: bytes | None = None) -> int:
    """Runs `command` in the pod's namespaces; copies its output here; its exit code."""
    pod = await api.get(resource_path("v1", "pods", namespace, pod_name))
    node_name, sock = await kubelet_socket(api, pod)
    name = _container(pod, container)
    params = [("command", part) for part in command]
    url = f"http://kubelet/exec/{namespace}/{pod_name}/{name}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as session, \
                session.post(url, params=params, data=stdin or b"") as resp:
            if resp.status != 200:
                raise PodIOError(f"exec in {pod_name}: {resp.status} {(await resp.text())[:300]}")
            return await _copy_frames(resp)
    except (aiohttp.ClientError, OSError) as exc:
        raise PodIOError(f"cannot reach the kubelet of {node_name} at {sock}: {exc}") from exc


async def _copy_frames(resp: aiohttp.ClientResponse) -> int:
    outputs = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    while True:
        try:
            header = await resp.content.readexactly(5)
        except aiohttp.ClientPayloadError as exc:
            raise PodIOError(f"exec stream broke: {exc}") from exc
        except EOFError:
            raise PodIOError("exec stream ended without an exit code") from None
        channel, size = struct.unpack(">BI", header)
        data = await resp.content.readexactly(size) if size else b""
        if channel == 3:
            return int(json.loads(data).get("exitCode", 1))
        out = outputs.get(channel)
        if out is not None:
            out.write(data)
            out.flush()

"""`pods/<name>/log` is streamed from the kubelet socket its Node publishes."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from kubernetes import client as k8s

from control.apiserver.podlogs import KUBELET_SOCKET_ANNOTATION


@pytest.fixture
async def kubelet_socket(tmp_path: Path) -> AsyncIterator[tuple[Path, list[str]]]:
    """A stand-in kubelet API on a unix socket; records the paths it was asked for."""
    seen: list[str] = []

    async def logs(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.Response(text=f"log of {request.match_info['container']}\nline 2\n")

    app = web.Application()
    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", logs)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "kubelet.sock"
    await web.UnixSite(runner, str(path)).start()
    yield path, seen
    await runner.cleanup()


def _node_and_pod(core: k8s.CoreV1Api, namespace: str, socket_path: Path, node: str,
                  containers: list[str]) -> None:
    core.create_node(k8s.V1Node(metadata=k8s.V1ObjectMeta(
        name=node, annotations={KUBELET_SOCKET_ANNOTATION: str(socket_path)})))
    core.create_namespaced_pod(namespace, k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p"),
        spec=k8s.V1PodSpec(node_name=node, containers=[k8s.V1Container(name=c, image="i")
                                                       for c in containers])))


async def test_logs_are_streamed_from_the_nodes_kubelet(
        core: k8s.CoreV1Api, namespace: str, kubelet_socket: tuple[Path, list[str]]) -> None:
    path, seen = kubelet_socket
    node = f"logs-{namespace}"
    await asyncio.to_thread(_node_and_pod, core, namespace, path, node, ["web"])
    text = await asyncio.to_thread(core.read_namespaced_pod_log, "p", namespace, tail_lines=5)
    assert text == "log of web\nline 2\n"
    assert seen == [f"/containerLogs/{namespace}/p/web?tailLines=5"]
    await asyncio.to_thread(core.delete_node, node)


async def test_a_pod_with_two_containers_needs_a_container_name(
        core: k8s.CoreV1Api, namespace: str, kubelet_socket: tuple[Path, list[str]]) -> None:
    path, _seen = kubelet_socket
    node = f"logs2-{namespace}"
    await asyncio.to_thread(_node_and_pod, core, namespace, path, node, ["a", "b"])
    with pytest.raises(k8s.ApiException) as exc:
        await asyncio.to_thread(core.read_namespaced_pod_log, "p", namespace)
    assert exc.value.status == 400
    assert "choose one of: [a b]" in exc.value.body
    text = await asyncio.to_thread(core.read_namespaced_pod_log, "p", namespace, container="b")
    assert text.startswith("log of b")
    await asyncio.to_thread(core.delete_node, node)


async def test_kubectl_logs_works(kubectl_bin: str, apiserver: object, core: k8s.CoreV1Api,
                                  namespace: str, kubelet_socket: tuple[Path, list[str]]) -> None:
    path, _seen = kubelet_socket
    node = f"logs3-{namespace}"
    await asyncio.to_thread(_node_and_pod, core, namespace, path, node, ["web"])
    proc = await asyncio.to_thread(
        subprocess.run, [kubectl_bin, "--kubeconfig", str(apiserver.kubeconfig),  # type: ignore[attr-defined]
                         "logs", "-n", namespace, "p"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "log of web\nline 2\n"
    await asyncio.to_thread(core.delete_node, node)

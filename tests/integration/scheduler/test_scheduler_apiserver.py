"""The scheduler against a real apiserver: what a user sees on their pods."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys

import aiohttp

from control.apiserver.process import ApiServerProcess, free_port

from .conftest import Cluster, eventually


async def test_pods_are_bound_and_a_controllers_pods_spread_over_the_nodes(cluster: Cluster,
                                                                         start_scheduler):
    nodes = [await cluster.add_node(f"n{i}") for i in range(3)]
    await start_scheduler()
    names = [f"web-{i}" for i in range(6)]
    for name in names:
        await cluster.add_pod(name, cpu="100m", owner="web")
    placed = await cluster.wait_bound(*names)
    assert sorted(collections.Counter(placed.values()).values()) == [2, 2, 2]
    assert set(placed.values()) == set(nodes)
    cond = await cluster.scheduled_condition("web-0")
    assert cond["status"] == "True"


async def test_pods_created_before_the_scheduler_starts_are_bound(cluster: Cluster, start_scheduler):
    await cluster.add_node("n0")
    await cluster.add_pod("early")
    await start_scheduler()
    assert await cluster.wait_bound("early") == {"early": cluster.node_name("n0")}


async def test_node_selector_is_respected(cluster: Cluster, start_scheduler):
    await cluster.add_node("plain")
    ssd = await cluster.add_node("fast", labels={"disk": "ssd"})
    await start_scheduler()
    for i in range(4):
        await cluster.add_pod(f"db-{i}", nodeSelector={"disk": "ssd"})
    placed = await cluster.wait_bound(*(f"db-{i}" for i in range(4)))
    assert set(placed.values()) == {ssd}


async def test_required_node_affinity_is_respected(cluster: Cluster, start_scheduler):
    await cluster.add_node("a", labels={"zone": "z1"})
    b = await cluster.add_node("b", labels={"zone": "z2"})
    await start_scheduler()
    await cluster.add_pod("by-label", affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]}]}}})
    await cluster.add_pod("by-name", affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [b]}]}]}}})
    assert await cluster.wait_bound("by-label", "by-name") == {"by-label": b, "by-name": b}


async def test_a_pod_that_fits_nowhere_says_why_and_is_bound_once_a_node_fits(cluster: Cluster,
                                                                           start_scheduler):
    await cluster.add_node("small-1", cpu="2")
    await cluster.add_node("small-2", cpu="2")
    await start_scheduler(initial_backoff=0.1, max_backoff=0.5)
    await cluster.add_pod("big", cpu="16")

    async def unschedulable():
        cond = await cluster.scheduled_condition("big")
        return cond if cond and cond["status"] == "False" else None

    cond = await eventually(unschedulable, "PodScheduled=False on the big pod")
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == "0/2 nodes are available: 2 Insufficient cpu."
    assert (await cluster.pod("big"))["status"]["phase"] == "Pending"

    async def failed_event():
        return [e for e in await cluster.events()
                if e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == "big"]

    events = await eventually(failed_event, "a FailedScheduling event")
    assert events[0]["type"] == "Warning"
    assert events[0]["message"] == cond["message"]

    large = await cluster.add_node("large", cpu="32")
    assert await cluster.wait_bound("big") == {"big": large}
    assert (await cluster.scheduled_condition("big"))["status"] == "True"


async def test_a_pod_waiting_for_room_is_bound_when_a_pod_is_deleted(cluster: Cluster,
                                                                    start_scheduler, client):
    node = await cluster.add_node("only", pods=1)
    await start_scheduler(initial_backoff=0.1, max_backoff=0.5)
    await cluster.add_pod("first")
    await cluster.wait_bound("first")
    await cluster.add_pod("second")

    async def waiting():
        cond = await cluster.scheduled_condition("second")
        return cond and cond["message"] == "0/1 nodes are available: 1 Too many pods."

    await eventually(waiting, "second pod waiting for room")
    await client.delete(f"/api/v1/namespaces/{cluster.ns}/pods/first",
                        params={"gracePeriodSeconds": 0})
    assert await cluster.wait_bound("second") == {"second": node}


async def test_taints_are_respected(cluster: Cluster, start_scheduler):
    dedicated = await cluster.add_node("db", taints=[
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    general = await cluster.add_node("general")
    await start_scheduler()
    for i in range(3):
        await cluster.add_pod(f"app-{i}")
    await cluster.add_pod("database", nodeSelector={"kubernetes.io/hostname": dedicated},
                          tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                                        "effect": "NoSchedule"}])
    placed = await cluster.wait_bound("app-0", "app-1", "app-2", "database")
    assert placed == {"app-0": general, "app-1": general, "app-2": general, "database": dedicated}


async def test_an_untolerated_taint_is_named_in_the_message(cluster: Cluster, start_scheduler):
    await cluster.add_node("db", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    await cluster.add_node("cordoned-ish", taints=[{"key": "dedicated", "value": "db",
                                                    "effect": "NoExecute"}])
    await start_scheduler()
    await cluster.add_pod("app")

    async def message():
        cond = await cluster.scheduled_condition("app")
        return cond and cond["status"] == "False" and cond["message"]

    assert await eventually(message, "an unschedulable message") == (
        "0/2 nodes are available: 2 node(s) had untolerated taint {dedicated: db}.")


async def test_a_node_that_becomes_ready_takes_the_waiting_pods(cluster: Cluster, start_scheduler):
    node = await cluster.add_node("late", ready="False")
    await start_scheduler(initial_backoff=0.1, max_backoff=0.5)
    await cluster.add_pod("waiting")

    async def unschedulable():
        cond = await cluster.scheduled_condition("waiting")
        return cond and cond["status"] == "False" and cond["message"]

    assert await eventually(unschedulable, "waiting pod unschedulable") == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.")
    await cluster.set_node_status(node, ready="True")
    assert await cluster.wait_bound("waiting") == {"waiting": node}


async def test_pods_of_another_scheduler_are_left_alone(cluster: Cluster, start_scheduler, client):
    await cluster.add_node("n0")
    await start_scheduler()
    await client.create(f"/api/v1/namespaces/{cluster.ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "theirs"},
        "spec": {"schedulerName": "someone-else", "containers": [{"name": "c", "image": "x"}]}})
    await cluster.add_pod("ours")
    await cluster.wait_bound("ours")
    assert await cluster.node_of("theirs") == ""


async def test_healthz_and_metrics(cluster: Cluster, start_scheduler):
    await cluster.add_node("n0")
    port = free_port()
    await start_scheduler(port=port)
    await cluster.add_pod("p")
    await cluster.wait_bound("p")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert (resp.status, await resp.text()) == (200, "ok")

        async def scheduled_counted():
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            return 'scheduler_schedule_attempts_total{result="scheduled"} 1.0' in text and text

        text = await eventually(scheduled_counted, "the scheduled attempt counted")
    assert "scheduler_scheduling_attempt_duration_seconds_bucket" in text
    assert 'scheduler_pending_pods{queue="active"} 0.0' in text


async def test_the_scheduler_command_binds_pods_and_stops_on_sigterm(
        apiserver: ApiServerProcess, cluster: Cluster):
    node = await cluster.add_node("n0")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from netplane.cli.main import main; sys.exit(main())",
        "scheduler", "--kubeconfig", str(apiserver.kubeconfig), "--port", "0",
        "--scheduler-name", cluster.scheduler_name,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await cluster.add_pod("via-cli")
        assert await cluster.wait_bound("via-cli") == {"via-cli": node}
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

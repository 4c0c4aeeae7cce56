"""The kubelet's Prometheus metrics, under the kubelet's own metric names where it has one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_START_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120)


class _StateCollector(Collector):
    """Gauges read at scrape time from the kubelet's pod workers."""

    def __init__(self, node_name: str, counts: Callable[[], tuple[int, dict[str, int]]]) -> None:
        self._node_name = node_name
        self._counts = counts

    def collect(self) -> Iterator[Any]:
        node = GaugeMetricFamily("kubelet_node_name", "The node's name. The count is always 1.",
                                 labels=["node"])
        node.add_metric([self._node_name], 1)
        pods, containers = self._counts()
        running = GaugeMetricFamily("kubelet_running_pods",
                                    "Number of pods that have a running pod sandbox")
        running.add_metric([], pods)
        by_state = GaugeMetricFamily("kubelet_running_containers", "Number of containers currently running",
                                     labels=["container_state"])
        for state, n in sorted(containers.items()):
            by_state.add_metric([state], n)
        yield from (node, running, by_state)


class KubeletMetrics:
    def __init__(self, node_name: str, counts: Callable[[], tuple[int, dict[str, int]]]) -> None:
        self.registry = CollectorRegistry()
        self.pod_start = Histogram(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from the kubelet seeing a pod for the first time to the pod "
            "starting to run", buckets=_START_BUCKETS, registry=self.registry)
        self.started_containers = Counter(
            "kubelet_started_containers", "Cumulative number of containers started",
            ["container_type"], registry=self.registry)
        self.start_errors = Counter(
            "kubelet_started_containers_errors", "Cumulative number of errors when starting containers",
            ["code", "container_type"], registry=self.registry)
        self.probes = Counter(
            "prober_probe", "Cumulative number of a liveness, readiness or startup probe for a "
            "container by result.", ["probe_type", "result", "container", "pod", "namespace"],
            registry=self.registry)
        self.status_patches = Counter(
            "netplane_kubelet_pod_status_patches", "Pod status writes to the apiserver, by outcome",
            ["outcome"], registry=self.registry)
        self.heartbeats = Counter(
            "netplane_kubelet_node_heartbeats", "Node status and Lease renewals, by kind and outcome",
            ["kind", "outcome"], registry=self.registry)
        self.registry.register(_StateCollector(node_name, counts))

    def text(self) -> bytes:
        return generate_latest(self.registry)

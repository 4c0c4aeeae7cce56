"""Prometheus metrics of the apiserver, under Kubernetes' own metric names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Kubernetes' apiserver_request_duration_seconds buckets, trimmed at the top.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5,
            6, 8, 10, 15, 20, 30, 45, 60)


class ApiMetrics:
    """One registry per server, so that tests can run several servers in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "apiserver_request", "Requests by verb, resource and HTTP code.",
            ["verb", "resource", "code"], registry=self.registry)
        self.latency = Histogram(
            "apiserver_request_duration_seconds",
            "Response latency by verb and resource (watches excluded).",
            ["verb", "resource"], buckets=_BUCKETS, registry=self.registry)
        self.watchers = Gauge(
            "apiserver_registered_watchers", "Open watches by resource.", ["resource"],
            registry=self.registry)
        self.revision = Gauge(
            "apiserver_storage_revision", "The store's current revision (resourceVersion).",
            registry=self.registry)
        self.objects = Gauge(
            "apiserver_storage_objects", "Stored objects by resource.", ["resource"],
            registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)

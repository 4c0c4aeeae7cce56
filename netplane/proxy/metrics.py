"""The proxy's Prometheus metrics, under kube-proxy's names (subsystem `kubeproxy`) and
buckets, so that dashboards and alerts written for kube-proxy work unchanged."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


def _exponential(start: float, factor: float, count: int) -> tuple[float, ...]:
    return tuple(start * factor ** i for i in range(count))


# kube-proxy's NetworkProgrammingLatency buckets: 0.25 s steps, then 1 s, 5 s, 30 s.
_PROGRAMMING_BUCKETS = (0.25, 0.5, *(float(s) for s in range(1, 60)),
                        *(float(s) for s in range(60, 120, 5)), *(float(s) for s in range(120, 301, 30)))


class ProxyMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        sync_buckets = _exponential(0.001, 2, 15)
        self.sync_duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds",
            buckets=sync_buckets, registry=r)
        self.full_sync_duration = Histogram(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs", buckets=sync_buckets, registry=r)
        self.partial_sync_duration = Histogram(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs", buckets=sync_buckets, registry=r)
        self.last_sync = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced", registry=r)
        self.last_queued = Gauge(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued", registry=r)
        self.programming = Histogram(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            buckets=_PROGRAMMING_BUCKETS, registry=r)
        self.endpoint_changes_pending = Gauge(
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "Pending proxy rules Endpoint changes", registry=r)
        self.endpoint_changes = Counter(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules Endpoint changes", registry=r)
        self.service_changes_pending = Gauge(
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "Pending proxy rules Service changes", registry=r)
        self.service_changes = Counter(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes", registry=r)
        self.sync_failures = Counter(
            "netplane_proxy_sync_failures", "Syncs that failed and were retried", registry=r)
        self.services = Gauge(
            "netplane_proxy_service_ports", "Service ports in the proxy's current state",
            registry=r)
        self.endpoints = Gauge(
            "netplane_proxy_endpoints", "Endpoints in the proxy's current state", registry=r)
        self.healthz = Counter(
            "kubeproxy_proxy_healthz", "Cumulative proxy healthz HTTP status", ["code"], registry=r)

    def text(self) -> bytes:
        return generate_latest(self.registry)

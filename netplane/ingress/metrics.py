"""The gateway's Prometheus metrics: requests by route, host and status, and upstream
latency by service, plus connections, configuration updates and ejections.

Counted in plain dicts and exported through a custom collector at scrape time: a
prometheus_client `labels(...).inc()` per request costs a lock and a label lookup
(~2 us), which the benchmark's per-request budget cannot spare.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# Upstream latency buckets (seconds), as ingress-nginx's response-duration histogram.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngressMetrics(Collector):
    def __init__(self) -> None:
        # (namespace, kind, name, host, status) -> count; host is the rule's host, not the
        # client's Host header, so clients cannot grow the label set.
        self.requests: dict[tuple[str, str, str, str, int], int] = {}
        # (namespace, service) -> [bucket counts..., +Inf count, sum]
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.config_updates = 0
        self.config_timestamp = 0.0
        self.config_problems = 0
        self.routes = 0
        self.retries = 0
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def request(self, key: tuple[str, str, str, str, int]) -> None:
        self.requests[key] = self.requests.get(key, 0) + 1

    def upstream_latency(self, namespace: str, service: str, seconds: float) -> None:
        key = (namespace, service)
        row = self.latency.get(key)
        if row is None:
            row = self.latency[key] = [0.0] * (len(BUCKETS) + 2)
        row[bisect.bisect_left(BUCKETS, seconds)] += 1
        row[-1] += seconds

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, read)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("netplane_ingress_requests",
                                       "Requests answered, by route, host and status",
                                       labels=["namespace", "kind", "name", "host", "status"])
        for labels, count in list(self.requests.items()):
            requests.add_metric([*labels[:4], str(labels[4])], count)
        yield requests
        latency = HistogramMetricFamily("netplane_ingress_upstream_latency_seconds",
                                        "Time from sending a request upstream to its response head",
                                        labels=["namespace", "service"])
        for (namespace, service), row in list(self.latency.items()):
            buckets, acc = [], 0.0
            for bound, count in zip((*BUCKETS, float("inf")), row[:-1], strict=True):
                acc += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", acc))
            latency.add_metric([namespace, service], buckets, row[-1])
        yield latency
        yield CounterMetricFamily("netplane_ingress_config_updates", "Configurations swapped in",
                                  value=self.config_updates)
        yield GaugeMetricFamily("netplane_ingress_config_last_update_timestamp_seconds",
                                "When the current configuration was swapped in", value=self.config_timestamp)
        yield GaugeMetricFamily("netplane_ingress_config_problems",
                                "Problems found in the current configuration (see the log)",
                                value=self.config_problems)
        yield GaugeMetricFamily("netplane_ingress_routes", "Routes in the current configuration",
                                value=self.routes)
        yield CounterMetricFamily("netplane_ingress_upstream_retries",
                                  "Requests retried on another endpoint or connection", value=self.retries)
        for name, (help_text, read) in self.gauges.items():
            yield GaugeMetricFamily(name, help_text, value=read())

    def text(self) -> bytes:
        return generate_latest(self.registry)

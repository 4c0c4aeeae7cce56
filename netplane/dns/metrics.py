"""The DNS server's Prometheus metrics, under CoreDNS's names (so that its dashboards and
alerts work unchanged) plus a few of netplane's own. The counters are plain integers that
the query path increments; they become metrics only when /metrics is read."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from netplane.dns.answercache import AnswerCache, Stats
from netplane.dns.forward import ForwardStats
from netplane.dns.upstreamcache import UpstreamCache
from netplane.dns.zone import Zone

# CoreDNS's request duration buckets: 0.25 ms doubling to ~8 s.
DURATION_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))


class LatencyHistogram:
    """Observations in fixed buckets: one bisect and two additions each."""

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class DnsMetrics(Collector):
    def __init__(self, zone: Zone, answers: AnswerCache, upstream_cache: UpstreamCache,
                 forward: ForwardStats) -> None:
        self.zone = zone
        self.answers = answers
        self.stats: Stats = answers.stats
        self.upstream_cache = upstream_cache
        self.forward = forward
        self.latency = LatencyHistogram()
        self.autopath: defaultdict[str, int] = defaultdict(int)  # "hit" / "miss"
        self.dropped: defaultdict[str, int] = defaultdict(int)  # reason -> count
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[object]:
        requests = CounterMetricFamily("coredns_dns_requests", "Counter of DNS requests made per protocol "
                                       "and type.", labels=["proto", "type"])
        for key, count in sorted(self.stats.requests.items()):
            proto, _, qtype = key.partition(" ")
            requests.add_metric([proto, qtype], count)
        yield requests
        responses = CounterMetricFamily("coredns_dns_responses", "Counter of response status codes.",
                                        labels=["rcode"])
        for rcode, count in sorted(self.stats.responses.items()):
            responses.add_metric([rcode], count)
        yield responses
        duration = HistogramMetricFamily("coredns_dns_request_duration_seconds",
                                         "Histogram of the time (in seconds) each request took.")
        duration.add_metric([], self.latency.cumulative(), self.latency.total)
        yield duration
        hits = CounterMetricFamily("coredns_cache_hits", "The count of upstream cache hits.", labels=["type"])
        for kind, count in sorted(self.upstream_cache.hits.items()):
            hits.add_metric([kind], count)
        yield hits
        yield CounterMetricFamily("coredns_cache_misses", "The count of upstream cache misses.",
                                  value=self.upstream_cache.misses)
        entries = GaugeMetricFamily("coredns_cache_entries", "The number of elements in the upstream cache.",
                                    labels=["type"])
        for kind, count in sorted(self.upstream_cache.counts().items()):
            entries.add_metric([kind], count)
        yield entries
        yield CounterMetricFamily("netplane_dns_answer_cache_hits",
                                  "Queries answered from the zone's wire-format answer cache.",
                                  value=self.stats.hits)
        yield CounterMetricFamily("netplane_dns_answer_cache_misses",
                                  "Queries the answer cache could not answer.", value=self.stats.misses)
        yield GaugeMetricFamily("netplane_dns_answer_cache_entries", "Answers kept in wire format.",
                                value=len(self.answers))
        fwd = CounterMetricFamily("coredns_forward_requests", "Counter of requests made per upstream.",
                                  labels=["to"])
        for to, count in sorted(self.forward.requests.items()):
            fwd.add_metric([to], count)
        yield fwd
        fwd_rc = CounterMetricFamily("coredns_forward_responses", "Counter of responses received per "
                                     "upstream.", labels=["to", "rcode"])
        for (to, rcode), count in sorted(self.forward.responses.items()):
            fwd_rc.add_metric([to, rcode], count)
        yield fwd_rc
        errors = CounterMetricFamily("netplane_dns_upstream_errors", "Upstream queries that failed, by "
                                     "upstream and reason.", labels=["to", "reason"])
        for (to, reason), count in sorted(self.forward.errors.items()):
            errors.add_metric([to, reason], count)
        yield errors
        autopath = CounterMetricFamily("netplane_dns_autopath", "Searches done by the server for a "
                                       "client's search path, by result.", labels=["result"])
        for result, count in sorted(self.autopath.items()):
            autopath.add_metric([result], count)
        yield autopath
        dropped = CounterMetricFamily("netplane_dns_dropped", "Packets dropped without an answer, by reason.",
                                      labels=["reason"])
        for reason, count in sorted(self.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        yield GaugeMetricFamily("netplane_dns_zone_services", "Services in the zone.",
                                value=self.zone.service_count)
        yield GaugeMetricFamily("netplane_dns_zone_pods", "Pods known to the zone.",
                                value=self.zone.pod_count)

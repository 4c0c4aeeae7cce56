"""The comparison's Markdown report, from its results alone (pure: no measurement here).

Every figure in the report is formatted by `fmt` from a value in results.json, so the
report can be checked against the raw data (tests/unit/bench/test_report.py does).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ABSENT = "not measured"


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A figure with `digits` significant digits; larger ones whole, with thousands separators."""
    if value is None:
        return ABSENT
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{round(value):,}"
    return f"{value:.{digits}g}"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _get(run: dict[str, Any], *path: str) -> Any:
    value: Any = run
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    modes = results["plan"]["modes"]
    return sorted(results["runs"], key=lambda r: (r["services"], modes.index(r["mode"])))


def observations(results: dict[str, Any]) -> list[str]:
    """Plain sentences about what the numbers show, each computed from them."""
    out = []
    by_size: dict[int, list[dict[str, Any]]] = {}
    for run in _runs(results):
        by_size.setdefault(run["services"], []).append(run)
    for size, runs in by_size.items():
        if len(runs) < 2:
            continue
        for label, path, better, unit in (
                ("the fastest full sync", ("full_sync_s",), min, " s"),
                ("the fastest one-change sync (p50)", ("one_change_sync_ms", "p50"), min, " ms"),
                ("the lowest network programming latency (p99)", ("programming_ms", "p99"), min, " ms"),
                ("the lowest connection set-up latency (p50)", ("connect_request_ms", "p50"), min, " ms"),
                ("the most requests/s over keep-alive connections", ("wrk_keepalive", "requests_per_s"), max,
                 ""),
                ("the most new connections/s", ("wrk_new_connections", "requests_per_s"), max, ""),
                ("the fastest bulk transfer", ("bulk", "gbit_per_s"), max, " Gbit/s")):
            measured = [(r["mode"], _get(r, *path)) for r in runs if _get(r, *path) is not None]
            if len(measured) < 2:
                continue
            best_mode, best = better(measured, key=lambda m: m[1])
            others = [(m, v) for m, v in measured if m != best_mode]
            worst_mode, worst = (max if better is min else min)(others, key=lambda m: m[1])
            if best and worst:
                ratio = worst / best if better is min else best / worst
                out.append(f"At {size:,} services, {best_mode} has {label}: {fmt(best)}{unit} against "
                           f"{worst_mode}'s {fmt(worst)}{unit} ({fmt(ratio)}x).")
    return out


def markdown(results: dict[str, Any], images: dict[str, str]) -> str:
    m, plan = results["machine"], results["plan"]
    runs = _runs(results)
    parts = [
        "# Proxy modes compared\n",
        f"Measured on {results['date']} by `netplane bench compare --modes {','.join(plan['modes'])} "
        f"--services {','.join(str(s) for s in plan['services'])} --endpoints {plan['endpoints']}` "
        f"in {fmt(results['duration_s'])} s.\n",
        _table(["", ""], [
            ["machine", f"{m['cpus']} CPUs ({m['cpu_model']}), {fmt(m['memory_gib'])} GiB"],
            ["kernel", m["kernel"] + (f" (user-mode Linux guest on {m['host_kernel']})"
                                       if m.get("host_kernel") else "")],
            ["system", m["os"]], ["python", m["python"]], ["netplane", m["netplane"]],
            ["iptables", m["iptables"]], ["ipvsadm", m["ipvsadm"]], ["nginx (endpoints)", m["nginx"]],
            ["wrk", m["wrk"]], ["curl", m["curl"].split(" (")[0]],
            ["proxy flags", " ".join(plan["options"].get("proxy_args") or []) or "defaults"]]),
        "\nEach mode ran at each size in fresh network namespaces: a real apiserver holding N "
        f"services x {plan['endpoints']} endpoints, `netplane proxy --mode MODE` in a node namespace, "
        f"{plan['endpoints']} nginx endpoints and a client namespace routed through the node. "
        "Sync times come from the proxy's own `kubeproxy_sync_proxy_rules_duration_seconds`; "
        "network programming latency is an EndpointSlice write until a client polling the "
        "ClusterIP every 2 ms gets an answer; connection set-up is one request per new "
        "connection, timed one by one; requests/s is wrk (keep-alive, and a new connection per "
        "request); bulk is one 1 GiB download; CPU is the proxy process's and the whole "
        "machine's during the traffic.\n",
        "## Sync times\n",
        _table(["services", "mode", "full sync (s)", "one change p50 (ms)", "one change p99 (ms)"],
               [[fmt(r["services"]), r["mode"], fmt(r["full_sync_s"]),
                 fmt(_get(r, "one_change_sync_ms", "p50")), fmt(_get(r, "one_change_sync_ms", "p99"))]
                for r in runs]),
        "\n## Network programming latency (API write → data plane)\n",
        _table(["services", "mode", "p50 (ms)", "p99 (ms)", "max (ms)", "changes"],
               [[fmt(r["services"]), r["mode"], fmt(_get(r, "programming_ms", "p50")),
                 fmt(_get(r, "programming_ms", "p99")), fmt(_get(r, "programming_ms", "max")),
                 fmt(_get(r, "programming_ms", "n"))] for r in runs]),
        "\n## Data path through a ClusterIP\n",
        _table(["services", "mode", "set-up p50 (ms)", "set-up p99 (ms)", "req/s keep-alive",
                "req/s new conn.", "keep-alive p99 (ms)", "bulk (Gbit/s)", "proxy CPU %", "machine CPU %",
                "proxy memory (MB)"],
               [[fmt(r["services"]), r["mode"], fmt(_get(r, "connect_request_ms", "p50")),
                 fmt(_get(r, "connect_request_ms", "p99")), fmt(_get(r, "wrk_keepalive", "requests_per_s")),
                 fmt(_get(r, "wrk_new_connections", "requests_per_s")),
                 fmt(_get(r, "wrk_keepalive", "p99_ms")),
                 fmt(_get(r, "bulk", "gbit_per_s")), fmt(r.get("proxy_cpu_pct_during_traffic")),
                 fmt(r.get("machine_cpu_pct_during_traffic")), fmt(_get(r, "proxy_memory_mb", "peak"))]
                for r in runs]),
        "\n## Spread of new connections over the endpoints\n",
        _table(["services", "mode", "connections", "per endpoint", "max deviation from even (%)"],
               [[fmt(r["services"]), r["mode"], fmt(_get(r, "spread", "connections")),
                 " / ".join(fmt(c) for c in _get(r, "spread", "counts") or []),
                 fmt(_get(r, "spread", "max_deviation_pct"))] for r in runs]),
    ]
    if images:
        parts.append("\n## Plots\n")
        parts += [f"![{title}]({name})\n" for title, name in images.items()]
    sentences = observations(results)
    if sentences:
        parts.append("\n## What the numbers say\n")
        parts += [f"- {s}" for s in sentences]
        parts.append("")
    return "\n".join(parts) + "\n"

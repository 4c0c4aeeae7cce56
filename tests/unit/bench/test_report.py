"""The comparison report from results (pure): what a reader sees, and that every figure
comes from the raw data."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from netplane.bench.report import ABSENT, fmt, markdown, observations
from tests.unit.bench.reportcheck import check, table_rows


def _run(mode: str, services: int, scale: float) -> dict[str, Any]:
    def lat(p50: float) -> dict[str, float]:
        return {"p50": p50, "p99": round(p50 * 3.1, 2), "max": round(p50 * 4.2, 2), "n": 10}

    return {"mode": mode, "services": services, "endpoints": 3, "api_populate_s": 1.5,
            "full_sync_s": round(0.012 * services * scale, 4),
            "one_change_sync_ms": lat(round(2.5 * scale, 2)),
            "programming_ms": lat(round(21.7 * scale, 2)),
            "connect_request_ms": lat(round(0.31 * scale, 3)) | {"failures": 0},
            "connect_request_samples_us": [310.0, 320.5, 900.1],
            "spread": {"counts": [331, 340, 329], "connections": 1000, "max_deviation_pct": 2.0, "cv": 0.014},
            "wrk_keepalive": {"requests_per_s": round(50123.4 / scale, 1), "p50_ms": 0.2, "p99_ms": 1.7,
                              "errors": 0},
            "wrk_new_connections": {"requests_per_s": round(11000.2 / scale, 1), "p50_ms": 1.1, "p99_ms": 3.3,
                                    "errors": 0},
            "bulk": {"bytes": 1 << 30, "seconds": 3.3, "gbit_per_s": round(2.6 / scale, 3)},
            "proxy_cpu_pct_during_traffic": round(40.2 * (scale - 1), 1),
            "machine_cpu_pct_during_traffic": 180.5, "proxy_memory_mb": {"peak": 57.7, "rss": 55.1}}


RESULTS = {
    "date": "2026-11-30 10:00:00 UTC", "duration_s": 301.2,
    "machine": {"cpus": 2, "cpu_model": "AMD EPYC", "memory_gib": 23.5, "kernel": "6.1.0-um",
                "host_kernel": "6.18.44", "os": "Debian GNU/Linux 12 (bookworm)", "python": "3.11.7",
                "netplane": "0.1.0", "iptables": "iptables v1.8.9 (nf_tables)", "nginx": "nginx/1.22.1",
                "wrk": "wrk 4.1.0", "curl": "curl 7.88.1 (x86_64)", "ipvsadm": "ipvsadm v1.31"},
    "plan": {"modes": ["userspace", "iptables", "ipvs"], "services": [100, 1000], "endpoints": 3,
             "options": {}},
    "runs": [_run(m, n, s) for n in (100, 1000) for m, s in (("userspace", 2.0), ("iptables", 1.0),
                                                              ("ipvs", 1.2))],
}


def test_the_report_has_every_section_and_only_measured_figures() -> None:
    report = markdown(RESULTS, {"Sync time": "sync_times.png"})
    assert check(report, RESULTS) > 100
    assert "user-mode Linux guest on 6.18.44" in report and "![Sync time](sync_times.png)" in report


def test_rows_are_ordered_by_size_then_by_the_plans_mode_order() -> None:
    rows = [r for r in table_rows(markdown(RESULTS, {})) if r[1] in ("userspace", "iptables", "ipvs")]
    first_table = rows[:6]
    assert [(r[0], r[1]) for r in first_table] == [("100", "userspace"), ("100", "iptables"), ("100", "ipvs"),
                                                   ("1,000", "userspace"), ("1,000", "iptables"),
                                                   ("1,000", "ipvs")]


def test_a_missing_measurement_shows_as_not_measured_and_fails_the_check() -> None:
    broken = copy.deepcopy(RESULTS)
    del broken["runs"][0]["bulk"]
    report = markdown(broken, {})
    assert ABSENT in report
    with pytest.raises(AssertionError, match="not measured"):
        check(report, broken)


def test_a_figure_that_is_not_in_the_results_fails_the_check() -> None:
    report = markdown(RESULTS, {}).replace("50,123", "99,999", 1)
    with pytest.raises(AssertionError, match="99,999"):
        check(report, RESULTS)


def test_observations_name_the_better_mode_with_the_measured_ratio() -> None:
    said = observations(RESULTS)
    full = next(s for s in said if s.startswith("At 1,000 services") and "full sync" in s)
    assert "iptables has the fastest full sync: 12 s against userspace's 24 s (2x)" in full
    keepalive = next(s for s in said if s.startswith("At 100 services") and "keep-alive" in s)
    assert "iptables" in keepalive and "userspace" in keepalive


@pytest.mark.parametrize(("value", "text"), [(0.0521, "0.0521"), (26.6, "26.6"), (516.7, "517"),
                                             (55815.4, "55,815"), (1000, "1,000"), (2, "2"), (None, ABSENT)])
def test_figures_keep_three_significant_digits_and_whole_large_numbers(value: float | None,
                                                                       text: str) -> None:
    assert fmt(value) == text

"""`netplane bench compare` for real, at a small size: the report, its plots and its raw
data, with every figure in the report measured in this run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.bench.reportcheck import check

pytestmark = [
    pytest.mark.root, pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="builds network namespaces and programs iptables: needs root"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("nginx", "wrk", "curl")),
                       reason="needs nginx, wrk and curl (make bench-deps)"),
]

NETPLANE = [sys.executable, "-m", "netplane.cli.main"]
SMALL = ["--endpoints", "2", "--changes", "2", "--programming-changes", "3", "--requests", "200",
         "--wrk-seconds", "1"]


def _lab_namespaces() -> set[str]:
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return {n for n in names if n.startswith("npb-")}


def test_compare_writes_a_report_of_measured_figures_plots_and_raw_data(tmp_path: Path) -> None:
    before = _lab_namespaces()
    out = tmp_path / "report"
    done = subprocess.run([*NETPLANE, "bench", "compare", "--modes", "userspace,iptables",
                           "--services", "10,40", *SMALL, "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report:" in done.stdout and "step" in done.stderr, "a progress bar while it runs"
    results = json.loads((out / "results.json").read_text())
    assert [(r["mode"], r["services"]) for r in results["runs"]] == [
        ("userspace", 10), ("iptables", 10), ("userspace", 40), ("iptables", 40)]
    for run in results["runs"]:
        assert run["connect_request_ms"]["failures"] == 0
        assert run["spread"]["connections"] == 200 and min(run["spread"]["counts"]) > 0
        assert run["bulk"]["bytes"] == 1 << 30 and run["wrk_keepalive"]["errors"] == 0
        assert run["programming_ms"]["n"] == 3 and run["full_sync_s"] > 0
    check((out / "report.md").read_text(), results)
    for png in ("sync_times.png", "connection_latency.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert _lab_namespaces() == before, "every lab namespace is removed"


def test_bad_arguments_get_one_line_and_exit_code_2(tmp_path: Path) -> None:
    for args, message in ((["--modes", "iptables,nope"], "modes are"), (["--services", "10,x"], "numbers"),
                          (["--endpoints", "0"], "--endpoints must be")):
        done = subprocess.run([*NETPLANE, "bench", "compare", *args, "--out", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)


def test_ipvs_is_compared_inside_user_mode_linux_where_this_kernel_has_none(tmp_path: Path) -> None:
    from netplane.bench.compare import has_ipvs
    from netplane.kernel import uml

    if has_ipvs():
        pytest.skip("this kernel has IPVS: the comparison runs on the host")
    if reason := uml.unavailable():
        pytest.skip(f"user-mode Linux cannot boot here: {reason}")
    out = tmp_path / "report"
    done = subprocess.run([*NETPLANE, "bench", "compare", "--modes", "ipvs", "--services", "5", *SMALL,
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    machine = results["machine"]
    assert machine["host_kernel"] and machine["kernel"] != machine["host_kernel"]
    [run] = results["runs"]
    assert run["mode"] == "ipvs" and run["spread"]["counts"] == [100, 100], "rr: exactly even"
    report = (out / "report.md").read_text()
    assert "user-mode Linux guest on" in report and "--iptables-variant legacy" in report
    check(report, results)

"""`netplane bench compare`: every proxy mode at every size, measured the same way in fresh
namespaces (netplane/bench/lab.py, measure.py), then one report (report.py, plots.py).

Where IPVS is asked for and this kernel has none, the whole comparison runs inside
user-mode Linux (netplane/kernel/uml.py), the other modes too: a comparison is only fair on
one kernel.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netplane.bench import lab as labmod
from netplane.bench import plots, report

STEPS = ("populating the API", "full sync", "one-change syncs", "network programming latency",
         "connection set-up", "requests/s (wrk)", "bulk transfer")


class CompareError(Exception):
    """The comparison cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    modes: tuple[str, ...]
    services: tuple[int, ...]
    endpoints: int
    out: Path
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def runs(self) -> list[tuple[str, int]]:
        return [(mode, n) for n in self.services for mode in self.modes]


def has_ipvs() -> bool:
    if Path("/proc/net/ip_vs").exists():
        return True
    subprocess.run(["modprobe", "-q", "ip_vs"], check=False, capture_output=True)
    return Path("/proc/net/ip_vs").exists()


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine() -> dict[str, Any]:
    from netplane import __version__

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
    os_release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines()
                      if "=" in line)
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "os": os_release.get("PRETTY_NAME", "").strip('"'),
            "python": platform.python_version(), "netplane": __version__,
            "iptables": _version(["iptables", "--version"]), "nginx": _version(["nginx", "-v"]),
            "wrk": _version(["wrk", "-v"]), "curl": _version(["curl", "--version"]),
            "ipvsadm": _version(["ipvsadm", "--version"])}


def proxy_options() -> dict[str, Any]:
    """What the proxies need here: Debian's user-mode Linux kernel has no nf_tables NAT, so
    in the guest every mode programs legacy iptables (the same for all, so still fair)."""
    from netplane.kernel import uml

    return {"proxy_args": ["--iptables-variant", "legacy"]} if uml.in_guest() else {}


def _check_tools() -> None:
    missing = [t for t in ("nginx", "wrk", "curl", "ip") if shutil.which(t) is None]
    if missing:
        raise CompareError(f"missing {', '.join(missing)}: run `make bench-deps` (Debian packages "
                           "nginx-light wrk curl iproute2)")
    if os.geteuid() != 0:
        raise CompareError("needs root: it builds network namespaces and programs the kernel")


def run_one(mode: str, services: int, endpoints: int, options: dict[str, Any],
            on_step: Callable[[str], None]) -> dict[str, Any]:
    """One mode at one size in a lab of its own; the measurement runs in the node namespace."""
    try:
        with labmod.lab(endpoints) as lab:
            return _measure_in(lab, mode, services, endpoints, options, on_step)
    except labmod.LabError as exc:
        raise CompareError(str(exc)) from exc


def _measure_in(lab: labmod.Lab, mode: str, services: int, endpoints: int, options: dict[str, Any],
                on_step: Callable[[str], None]) -> dict[str, Any]:
    argv = labmod.in_ns(lab.node, sys.executable, "-m", "netplane.bench.measure", mode, str(services),
                        str(endpoints), lab.tag, str(lab.workdir), json.dumps(options))
    errors: list[str] = []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        try:
            on_step(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            errors.append(line.rstrip())
    out = proc.stdout.read()
    if proc.wait() != 0:
        logs = "".join(f"\n--- {p.name}\n" + p.read_text(errors="replace")[-2000:]
                       for p in sorted(lab.workdir.glob("*.log")))
        raise CompareError(f"{mode} at {services} services failed: " + "\n".join(errors[-20:]) + logs)
    return json.loads(out.strip().splitlines()[-1])


def compare(plan: Plan, *, progress_file: Path | None = None) -> dict[str, Any]:
    """Runs the plan here (host or guest) and writes results.json, report.md and the plots.
    Progress: a bar on stderr, or JSON lines appended to `progress_file` (for a host that
    runs this inside a guest and draws the bar itself)."""
    _check_tools()
    if "ipvs" in plan.modes and not has_ipvs():
        raise CompareError("this kernel has no IPVS (modprobe ip_vs failed)")
    from tqdm import tqdm

    plan.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows = []
    bar = tqdm(total=len(plan.runs) * len(STEPS), disable=progress_file is not None, unit="step",
               file=sys.stderr)
    try:
        for mode, services in plan.runs:
            bar.set_description(f"{mode} @ {services}")
            done_before = bar.n

            def step(name: str, run: str = f"{mode} @ {services}", done_before: int = done_before) -> None:
                bar.set_postfix_str(name)
                if name in STEPS:
                    bar.update(done_before + STEPS.index(name) + 1 - bar.n)
                if progress_file is not None:
                    with progress_file.open("a") as f:
                        f.write(json.dumps({"run": run, "step": name}) + "\n")

            rows.append(run_one(mode, services, plan.endpoints, plan.options | proxy_options(), step))
            bar.update(done_before + len(STEPS) - bar.n)
    finally:
        bar.close()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
               "duration_s": round(time.time() - started, 1), "machine": machine(),
               "plan": {"modes": list(plan.modes), "services": list(plan.services),
                        "endpoints": plan.endpoints, "options": plan.options | proxy_options()},
               "runs": rows}
    write(results, plan.out)
    return results


def write(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    images = plots.draw(results, out)
    (out / "report.md").write_text(report.markdown(results, images))


def plan_dict(plan: Plan) -> dict[str, Any]:
    return asdict(plan) | {"out": str(plan.out)}

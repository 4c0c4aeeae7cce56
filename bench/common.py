"""What the benchmarks that drive external tools share: running a command, waiting for a
server to come up, a process's CPU time, the median of rounds, and their network
namespaces' names (with the sweep of those a killed benchmark left behind)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from netplane.kernel import netns as ns

# Every benchmark namespace is "npb-[kind-]<pid of its creator>-<random>".
NAMESPACE_PREFIX = "npb-"
_NAMESPACE = re.compile(r"npb-(?:[a-z]+-)?(\d+)-[0-9a-f]+")


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0,
             not_yet: tuple[type[Exception], ...] = (OSError, ValueError)) -> None:
    """Until `check()` holds; an exception in `not_yet` means not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(*not_yet):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over the rounds' rows (keys whose values are all numbers)."""
    return {k: round(statistics.median(r[k] for r in rows), 4) for k in rows[0]
            if all(isinstance(r.get(k), int | float) for r in rows)}


def namespace_name(kind: str = "") -> str:
    """A new benchmark namespace's name. It carries the creating process's pid, so that a
    later run tells a namespace whose creator is gone from one in use (`sweep_namespaces`)."""
    return f"{NAMESPACE_PREFIX}{kind + '-' if kind else ''}{os.getpid()}-{uuid.uuid4().hex[:6]}"


def new_namespace(kind: str = "") -> str:
    """Creates a benchmark namespace with `lo` up, after sweeping away those of dead
    benchmarks; the caller removes it (netns.delete)."""
    sweep_namespaces()
    name = namespace_name(kind)
    ns.create(name)
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
    except BaseException:
        ns.delete(name)
        raise
    return name


@contextlib.contextmanager
def namespace(kind: str = "") -> Iterator[str]:
    """A benchmark namespace for the duration of the block."""
    name = new_namespace(kind)
    try:
        yield name
    finally:
        ns.delete(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_namespaces() -> list[str]:
    """Removes the namespaces of benchmarks that died without cleaning up (SIGKILL, a
    crashed machine), and kills what still runs in them; namespaces of live benchmarks
    are left alone. Returns the names removed."""
    removed = []
    for name in ns.names(NAMESPACE_PREFIX):
        m = _NAMESPACE.fullmatch(name)
        if m is None or _alive(int(m.group(1))):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        ns.delete(name)
        removed.append(name)
    return removed

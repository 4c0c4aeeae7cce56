"""What the benchmarks that drive external tools share: running a command, waiting for a
server to come up, a process's CPU time, and the median of rounds."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


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

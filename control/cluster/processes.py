"""Starting the cluster's component processes and stopping them again, also from another
process (`netplane down`) that only has their records."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from control.cluster.layout import ProcessRecord


def netplane_argv(*args: str) -> list[str]:
    """The argv of a `netplane` subcommand run by this interpreter (no PATH lookup, so a
    venv that is not activated works too)."""
    return [sys.executable, "-m", "netplane.cli.main", *args]


def start(name: str, argv: list[str], log_path: Path, *, netns: str = "",
          pass_fds: tuple[int, ...] = ()) -> ProcessRecord:
    """Starts `argv` in its own session (a Ctrl-C of the terminal reaches only `up`, which
    then stops everything in order), with output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # nsenter, not `ip netns exec`: the latter also gives the process a private mount
    # namespace, where the network namespaces a kubelet creates for its pods would be
    # mounted invisibly to everyone else.
    full = ["nsenter", f"--net=/run/netns/{netns}", "--", *argv] if netns else argv
    with log_path.open("ab") as log:
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, pass_fds=pass_fds,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return ProcessRecord(name=name, pid=proc.pid, argv=full, netns=netns)


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


def is_running(record: ProcessRecord) -> bool:
    """True while the recorded process lives — and is still the same program (a pid is
    reused after exit; never signal a stranger). nsenter execs the command, so the
    recorded argv's tail is what /proc shows."""
    cmdline = _cmdline(record.pid)
    if not cmdline:
        # Empty while the kernel is still setting up an exec (right after Popen returns,
        # since CPython spawns with vfork), and for a zombie: only the latter is gone.
        return _state(record.pid) not in ("", "Z", "X")
    tail = record.argv[3:] if record.argv[:1] == ["nsenter"] else record.argv
    return cmdline[-len(tail):] == tail or cmdline == record.argv


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(record: ProcessRecord, timeout: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL after `timeout`; fine if it is already gone."""
    if not is_running(record):
        _reap(record.pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_running(record):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGKILL)
    _reap(record.pid)


def _netns_inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def kill_processes_in_netns(netns_names: list[str], timeout: float = 5.0) -> int:
    """Kills every process whose network namespace is one of `netns_names` (under
    /run/netns): pods' processes live in sessions of their own and outlive a killed
    kubelet, so `down` finds them by namespace. Returns how many it signalled."""
    inodes = {ino for name in netns_names if (ino := _netns_inode(Path("/run/netns") / name))}
    if not inodes:
        return 0

    def victims() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                ino = _netns_inode(entry / "ns" / "net")
                if ino in inodes:
                    found.append(int(entry.name))
        return found

    pids = victims()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in pids:
                _reap(pid)
            if not victims():
                return len(pids)
            time.sleep(0.05)
    return len(pids)

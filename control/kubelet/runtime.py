"""The process runtime: a container is its command, run on the node's own filesystem (there
are no images) as a process in the pod's network namespace, with private mount and UTS
namespaces in which the pod's resolv.conf and hosts are mounted over the node's and the
hostname is the pod's. Each container is its own process group, appends its stdout and
stderr to `<root>/pods/<uid>/<container>/<restartCount>.log`, and leaves a checkpoint
beside it so that a restarted kubelet adopts the process instead of starting another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from netplane.kernel.exec import in_pod

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.json"
START_ERROR_EXIT = 128  # what runc reports for a container whose process could not start


class StartError(Exception):
    """The container's process could not be started (reason StartError, exit code 128)."""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything one start of a container needs."""

    argv: list[str]
    env: dict[str, str]
    netns: str
    binds: dict[str, str] = field(default_factory=dict)  # node file → path in the container
    hostname: str = ""
    working_dir: str = ""


@dataclass
class Checkpoint:
    """What survives a kubelet restart of one container (JSON beside its logs)."""

    restart_count: int = 0
    pid: int = 0  # 0: not running
    start_ticks: int = 0  # /proc/<pid>/stat starttime: tells a reused pid apart
    started_at: str = ""
    terminated: dict[str, Any] | None = None  # the state of an exited, not restarted container
    last_terminated: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def exit_code(returncode: int) -> int:
    """A container's exit code as Kubernetes shows it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot; 0 if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # Field 22 overall; the command name (field 2) may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[19])


def rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def environ(pid: int) -> dict[str, str]:
    """The environment process `pid` was started with."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").split("=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k: v for k, v in pairs}


class ContainerProcess:
    """One start of a container: a child of this kubelet, or adopted from an earlier one."""

    def __init__(self, pid: int, started_at: str, ticks: int,
                 proc: asyncio.subprocess.Process | None = None) -> None:
        self.pid = pid
        self.started_at = started_at
        self.ticks = ticks
        self._proc = proc
        self.exit_code: int | None = None
        self.exited = False
        self.done = asyncio.Event()  # set once the exit has been seen

    @property
    def adopted(self) -> bool:
        return self._proc is None

    async def wait(self) -> int | None:
        """Waits for the exit; the exit code, or None when it is unknown (an adopted process
        is not our child, so only its end can be seen, through a pidfd)."""
        if self._proc is not None:
            self.exit_code = exit_code(await self._proc.wait())
        else:
            await _wait_pidfd(self.pid)
        self.exited = True
        self.done.set()
        return self.exit_code

    def signal(self, sig: int) -> None:
        """`sig` to the container's whole process group."""
        if self.exited:
            return
        if self.adopted and start_ticks(self.pid) != self.ticks:
            return  # gone, and the pid may already be someone else's
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


async def _wait_pidfd(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _resolve(argv0: str, env: dict[str, str], cwd: str) -> None:
    if "/" in argv0:
        path = os.path.join(cwd or "/", argv0)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise StartError(f'exec: "{argv0}": stat {argv0}: no such file or executable')
    elif shutil.which(argv0, path=env.get("PATH", os.defpath)) is None:
        raise StartError(f'exec: "{argv0}": executable file not found in $PATH')
    if cwd and not os.path.isdir(cwd):
        raise StartError(f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory')


Wrapper = Callable[[str, list[str], dict[str, str], str], list[str]]


class ProcessRuntime:
    """Starts, adopts and finds containers' processes under `root` (the kubelet's root dir).
    `wrap(netns, argv, binds, hostname)` makes the argv that enters the pod's namespaces."""

    def __init__(self, root: Path, wrap: Wrapper = in_pod) -> None:
        self.root = root
        self.wrap = wrap

    def pod_dir(self, uid: str) -> Path:
        return self.root / "pods" / uid

    def container_dir(self, uid: str, name: str) -> Path:
        return self.pod_dir(uid) / name

    def log_path(self, uid: str, name: str, restart_count: int) -> Path:
        return self.container_dir(uid, name) / f"{restart_count}.log"

    def pod_uids(self) -> list[str]:
        """Pods that have a directory here (for reconciliation after a restart)."""
        try:
            return sorted(p.name for p in (self.root / "pods").iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def load(self, uid: str, name: str) -> Checkpoint | None:
        try:
            return Checkpoint.from_json((self.container_dir(uid, name) / CHECKPOINT).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("pod %s container %s: unreadable checkpoint (%s); starting afresh", uid, name, exc)
            return None

    def save(self, uid: str, name: str, cp: Checkpoint) -> None:
        directory = self.container_dir(uid, name)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{CHECKPOINT}.tmp"
        tmp.write_text(json.dumps(asdict(cp)))
        tmp.replace(directory / CHECKPOINT)  # atomic: a crash never leaves half a checkpoint

    async def start(self, uid: str, name: str, restart_count: int, spec: LaunchSpec) -> ContainerProcess:
        """Starts the container's process; StartError when it cannot run."""
        if not spec.argv:
            raise StartError("no command to run")
        _resolve(spec.argv[0], spec.env, spec.working_dir)
        path = self.log_path(uid, name, restart_count)
        path.parent.mkdir(parents=True, exist_ok=True)
        argv = self.wrap(spec.netns, spec.argv, spec.binds, spec.hostname)
        with path.open("ab") as out:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                    env=spec.env, cwd=spec.working_dir or "/", start_new_session=True)
            except OSError as exc:
                raise StartError(f"{exc.strerror or exc}: {argv[0]}") from exc
        # nsenter, unshare and sh each exec the next: the pid is the command's own.
        return ContainerProcess(proc.pid, rfc3339(), start_ticks(proc.pid), proc)

    def adopt(self, cp: Checkpoint) -> ContainerProcess | None:
        """The checkpoint's process if it still runs (and is still the same process)."""
        if cp.pid <= 0 or cp.start_ticks <= 0 or start_ticks(cp.pid) != cp.start_ticks:
            return None
        return ContainerProcess(cp.pid, cp.started_at, cp.start_ticks)

    def exec_argv(self, pid: int, argv: list[str], working_dir: str = "") -> list[str]:
        """The argv that runs `argv` inside a running container's network, mount and UTS
        namespaces (so it sees the same resolv.conf, hosts and hostname)."""
        wd = [f"--wd={working_dir}"] if working_dir else []
        return ["nsenter", "-t", str(pid), "-n", "-m", "-u", *wd, "--", *argv]

    def prune_logs(self, uid: str, name: str, restart_count: int) -> None:
        """Keeps the current and the previous start's logs, as the kubelet does."""
        for p in self.container_dir(uid, name).glob("*.log"):
            if p.stem.isdigit() and int(p.stem) < restart_count - 1:
                p.unlink(missing_ok=True)

    def remove_pod(self, uid: str) -> None:
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)


def _netns_inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def processes_in_netns(netns_path: str) -> list[int]:
    """Every process whose network namespace is the one at `netns_path`."""
    ino = _netns_inode(netns_path)
    if not ino:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if (entry.name.isdigit() and int(entry.name) != os.getpid()
                and _netns_inode(f"/proc/{entry.name}/ns/net") == ino):
            found.append(int(entry.name))
    return found


def kill_strays(netns_path: str, keep_pgids: set[int]) -> list[int]:
    """SIGKILLs the processes in the namespace that belong to none of `keep_pgids` (what a
    dead kubelet's containers and exec sessions left behind); returns their pids."""
    killed = []
    for pid in processes_in_netns(netns_path):
        try:
            if os.getpgid(pid) in keep_pgids:
                continue
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            continue
    return killed

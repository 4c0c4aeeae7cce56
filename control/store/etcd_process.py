"""etcd members as child processes on loopback (tests, benchmarks, trying the etcd store
out): a cluster of one or more members with their data under one directory, started,
waited on until healthy, killed one by one, stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# kube-apiserver accepts 3 MiB bodies (netplane's --max-request-bytes default too); etcd's
# own default, 1.5 MiB, would refuse the largest objects the apiserver lets in.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def etcd_binary() -> str | None:
    """The etcd server binary (Debian: etcd-server), or None."""
    return shutil.which("etcd")


@dataclass
class EtcdMember:
    name: str
    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.with_suffix(".log")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """etcd's /health: true once the member serves, which needs a leader."""
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False


class EtcdCluster:
    """`size` members on 127.0.0.1 with free ports, data in `base_dir/<name>`.

    Use as a context manager; `kill(i)` SIGKILLs one member (its data stays, so `start_member`
    brings it back into the cluster)."""

    def __init__(self, base_dir: Path, size: int = 1) -> None:
        self.base_dir = base_dir
        self.token = f"netplane-{uuid.uuid4().hex[:12]}"
        self.members = [EtcdMember(f"m{i}", base_dir / f"m{i}") for i in range(size)]

    def url(self, prefix: str = "", **options: str | float) -> str:
        """The store URL naming every member (`etcd://127.0.0.1:P1,127.0.0.1:P2/PREFIX?...`)."""
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return (f"etcd://{','.join(m.endpoint for m in self.members)}{prefix}"
                + (f"?{query}" if query else ""))

    def endpoints(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", m.client_port) for m in self.members]

    def start(self, timeout: float = 30.0) -> None:
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd is not installed (Debian: apt-get install etcd-server)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for member in self.members:
            self._spawn(binary, member, "new")
        self._wait(self.members, timeout)

    def start_member(self, index: int, timeout: float = 30.0) -> None:
        """Restarts a stopped member on its data (it rejoins the running cluster)."""
        binary = etcd_binary()
        assert binary is not None
        self._spawn(binary, self.members[index], "existing")
        self._wait([self.members[index]], timeout)

    def _spawn(self, binary: str, member: EtcdMember, state: str) -> None:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        cmd = [binary, "--name", member.name, "--data-dir", str(member.data_dir),
               "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
               "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
               "--initial-cluster", initial, "--initial-cluster-state", state,
               "--initial-cluster-token", self.token, "--max-request-bytes", str(MAX_REQUEST_BYTES),
               "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]
        if len(self.members) == 1:
            # A lone member elects itself after one election timeout (1 s by default) with
            # nobody to hear from: a short one makes it ready in ~0.3 s instead of ~0.8 s.
            cmd += ["--heartbeat-interval", "20", "--election-timeout", "200"]
        # etcd reads ETCD_* variables as flags: none of the caller's may reach it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with member.log_path.open("ab") as log:
            member.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                           stdin=subprocess.DEVNULL)

    def _wait(self, members: list[EtcdMember], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(members)
        while pending and time.monotonic() < deadline:
            for member in list(pending):
                if not member.running():
                    self.stop()
                    raise RuntimeError(f"etcd member {member.name} exited:\n"
                                       + member.log_path.read_text()[-3000:])
                if member.healthy():
                    pending.remove(member)
            if pending:
                time.sleep(0.05)
        if pending:
            logs = "\n".join(m.log_path.read_text()[-1500:] for m in pending)
            self.stop()
            raise RuntimeError(f"etcd members {[m.name for m in pending]} did not become healthy:\n{logs}")

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        member = self.members[index]
        if member.proc is not None:
            if member.proc.poll() is None:
                member.proc.send_signal(sig)
            member.proc.wait(30)
            member.proc = None

    def stop(self) -> None:
        for member in self.members:
            if member.proc is None:
                continue
            if member.proc.poll() is None:
                member.proc.terminate()
                try:
                    member.proc.wait(10)
                except subprocess.TimeoutExpired:
                    member.proc.kill()
                    member.proc.wait()
            member.proc = None

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

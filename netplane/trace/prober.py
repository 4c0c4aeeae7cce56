"""Runs the probe (probe.py) inside the pod's network namespace and steps it through its
line protocol: wait until it is ready, snapshot what must be snapshotted, fire, read the
answers, look at the kernel while the connection is still open, close. The process is
always ended, also when the trace fails half way."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

from netplane.kernel.exec import in_netns


class ProbeError(Exception):
    """The probe could not be sent; the message has its reason."""


@dataclass(frozen=True)
class ProbeResult:
    src: str
    sport: int
    sent: tuple[str, ...]
    answers: tuple[dict[str, Any], ...]

    def first(self, *kinds: str) -> dict[str, Any] | None:
        return next((a for a in self.answers if not kinds or a["kind"] in kinds), None)


class Prober:
    def __init__(self, pod_netns: str, proto: str, dst: str, dport: int, *, handshake: bool,
                 timeout: float = 2.0, payload: str = "hostname") -> None:
        self.argv = in_netns(pod_netns, [sys.executable, "-m", "netplane.trace.probe", "--proto", proto,
                                         "--dst", dst, "--dport", str(dport), "--timeout", str(timeout),
                                         "--payload", payload] + (["--handshake"] if handshake else []))
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.src = ""
        self.sport = 0

    def _line(self, wait: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        # readline has no time-out: a timer ends a probe that hangs instead.
        timer = threading.Timer(wait, self.proc.kill)
        timer.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            err = self.proc.stderr.read().strip() if self.proc.stderr else ""
            raise ProbeError(f"the probe process ended early: {err.splitlines()[-1] if err else 'no output'}")
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise ProbeError(str(msg["error"]))
        return msg

    def start(self) -> None:
        """Starts the probe and waits until it can send (scapy loaded, sniffer running)."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        ready = self._line(30)
        self.src, self.sport = str(ready["src"]), int(ready["sport"])

    def _send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def fire(self) -> ProbeResult:
        self._send("go")
        out = self._line(self.timeout + 15)
        return ProbeResult(self.src, self.sport, tuple(out["sent"]), tuple(out["answers"]))

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self._send("close")
                self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            # SIGTERM lets it remove its rule in the pod's namespace on the way out.
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
            self.proc = None

    def __enter__(self) -> Prober:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""CrashLoopBackOff: how long a crashed container waits before its next start (pure).

The kubelet's rule (kuberuntime doBackOff over client-go's flowcontrol.Backoff, keyed per
container): the first restart is immediate; each later one waits the current back-off
(10 s, doubling up to 5 min) counted from when the container finished; a container that
ran longer than twice the cap since the last restart starts over from the first step.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL = 10.0
CAP = 300.0


@dataclass
class Backoff:
    initial: float = INITIAL
    cap: float = CAP
    _current: float = 0.0  # 0: no crash on record
    _last: float = 0.0  # finish time (monotonic) of the crash that set _current

    def _expired(self, finished_at: float) -> bool:
        return self._current == 0.0 or finished_at - self._last > 2 * self.cap

    def delay(self, finished_at: float) -> float:
        """Seconds after `finished_at` before the container may start again."""
        return 0.0 if self._expired(finished_at) else self._current

    def restarted(self, finished_at: float) -> None:
        """Records that the container that finished at `finished_at` is being restarted."""
        self._current = self.initial if self._expired(finished_at) else min(self._current * 2, self.cap)
        self._last = finished_at

    @property
    def current(self) -> float:
        return self._current


def backoff_message(delay: float, container: str, pod: str, namespace: str, uid: str) -> str:
    """The waiting message Kubernetes shows in CrashLoopBackOff."""
    return (f"back-off {_go_duration(delay)} restarting failed container={container} "
            f"pod={pod}_{namespace}({uid})")


def _go_duration(seconds: float) -> str:
    """time.Duration's String() for whole and fractional seconds ("10s", "1m20s", "500ms")."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    text = f"{secs:g}s"
    return f"{int(minutes)}m{text}" if minutes else text

"""One container of a pod on this node: started (or adopted after a kubelet restart), probed,
restarted per the pod's restartPolicy with CrashLoopBackOff, and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from control.kubelet import envvars
from control.kubelet.backoff import Backoff, backoff_message
from control.kubelet.probes import LIVENESS, READINESS, STARTUP, ProbeTarget, attempt, run_prober
from control.kubelet.runtime import (
    START_ERROR_EXIT,
    Checkpoint,
    ContainerProcess,
    LaunchSpec,
    StartError,
    environ,
)
from control.kubelet.status import RUNNING, TERMINATED, WAITING, ContainerRecord, now, will_restart
from netplane.model import Container, Probe

if TYPE_CHECKING:
    from control.kubelet.podworker import PodWorker

log = logging.getLogger(__name__)

# Containers run on the node's filesystem; netplane's own commands (`netplane agnhost`) are
# found first, wherever the node installed netplane.
DEFAULT_PATH = ":".join((os.path.dirname(sys.executable), "/usr/local/sbin", "/usr/local/bin",
                         "/usr/sbin", "/usr/bin", "/sbin", "/bin"))
UNKNOWN_EXIT = 137  # Kubernetes' exit code for a container whose end it did not see


class ContainerRunner:
    def __init__(self, worker: PodWorker, spec: Container) -> None:
        self.worker = worker
        self.spec = spec
        self.name = spec.name
        self.record = ContainerRecord(spec.name, spec.image)
        self.process: ContainerProcess | None = None
        self.env: dict[str, str] = {"PATH": DEFAULT_PATH}  # also what `exec` in it gets
        self.backoff = Backoff(worker.kubelet.config.backoff_initial, worker.kubelet.config.backoff_cap)
        self.restart_at: float | None = None  # loop time of a pending (re)start
        self._finished_mono = 0.0
        self._restart_pending = False
        self._killed_by = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- state -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and not self.process.exited

    def checkpoint(self) -> Checkpoint:
        r, p = self.record, self.process
        return Checkpoint(restart_count=r.restart_count, pid=p.pid if p and not p.exited else 0,
                          start_ticks=p.ticks if p and not p.exited else 0, started_at=r.started_at,
                          terminated=r.terminated_detail() if r.state == TERMINATED else None,
                          last_terminated=r.last_terminated)

    def _save(self) -> None:
        try:
            self.worker.kubelet.runtime.save(self.worker.uid, self.name, self.checkpoint())
        except OSError as exc:
            log.warning("pod %s container %s: cannot write its checkpoint: %s", self.worker.key, self.name,
                        exc)

    def _wait(self, reason: str, message: str = "") -> None:
        r = self.record
        r.state, r.reason, r.message, r.ready, r.started = WAITING, reason, message, False, False

    def refuse(self, message: str) -> None:
        """The container cannot run on this node at all: it waits, saying why."""
        self._wait("CreateContainerConfigError", message)
        self.restart_at = None

    # -- start, adopt ----------------------------------------------------------------------

    def adopt(self, cp: Checkpoint, was_ready: bool) -> bool:
        """Takes over the process an earlier kubelet started, or restores what became of it.
        True when a process runs (nothing to start)."""
        r = self.record
        r.restart_count, r.last_terminated = cp.restart_count, cp.last_terminated
        proc = self.worker.kubelet.runtime.adopt(cp)
        if proc is not None:
            # What `exec` and exec probes get: exactly what the process was started with.
            self.env = environ(proc.pid) or self.env
            self._running(proc, ready_hint=was_ready)
            log.info("pod %s container %s: adopted running pid %d", self.worker.key, self.name, proc.pid)
            return True
        if cp.terminated is not None:  # it had ended and was not restarted before we stopped
            r.state, r.started_at = TERMINATED, cp.started_at
            r.exit_code = int(cp.terminated.get("exitCode") or 0)
            r.reason = cp.terminated.get("reason", "")
            r.message = cp.terminated.get("message", "")
            r.finished_at = cp.terminated.get("finishedAt") or now()
            r.container_id = cp.terminated.get("containerID", "")
        elif cp.pid:  # it ended while no kubelet watched it: its exit code is lost
            r.state, r.started_at, r.finished_at = TERMINATED, cp.started_at, now()
            r.exit_code, r.reason = UNKNOWN_EXIT, "ContainerStatusUnknown"
            r.message = "The container exited while the kubelet was not running; its exit code is unknown"
            r.container_id = f"netplane://{cp.pid}"
        else:
            return False
        self._after_exit()
        return True

    async def start(self) -> None:
        """Starts the container's process (a first start or a restart)."""
        w = self.worker
        self.restart_at = None
        if self._restart_pending:
            self._restart_pending = False
            if self.record.state == TERMINATED:
                self.record.last_terminated = self.record.terminated_detail()
            self.backoff.restarted(self._finished_mono)
            self.record.restart_count += 1
        argv = [*self.spec.command, *self.spec.args]
        if not argv:
            self._wait("CreateContainerConfigError",
                       f"container {self.name} has neither command nor args: netplane runs commands on "
                       f"the node and does not pull images (image {self.spec.image or '<none>'} is only "
                       "recorded)")
            return
        try:
            env = await w.container_env(self.spec)
        except envvars.EnvError as exc:
            self._wait("CreateContainerConfigError", str(exc))
            self.restart_at = w.loop_time() + 10.0  # retry: the ConfigMap may appear
            return
        self.env = {"PATH": DEFAULT_PATH, "HOSTNAME": w.hostname, **env}
        spec = LaunchSpec(argv=argv, env=self.env, netns=w.netns, binds=w.binds(), hostname=w.hostname,
                          working_dir=self.spec.working_dir)
        runtime = w.kubelet.runtime
        try:
            proc = await runtime.start(w.uid, self.name, self.record.restart_count, spec)
        except StartError as exc:
            w.kubelet.metrics.start_errors.labels("StartError", "container").inc()
            r = self.record
            r.state, r.reason, r.message, r.exit_code = TERMINATED, "StartError", str(exc), START_ERROR_EXIT
            r.started_at = r.finished_at = now()
            r.ready = r.started = False
            r.container_id = ""
            self._after_exit()
            return
        w.kubelet.metrics.started_containers.labels("container").inc()
        runtime.prune_logs(w.uid, self.name, self.record.restart_count)
        self._running(proc)

    def _running(self, proc: ContainerProcess, ready_hint: bool = False) -> None:
        r = self.record
        self.process = proc
        r.state, r.reason, r.message, r.started_at = RUNNING, "", "", proc.started_at
        r.container_id = f"netplane://{proc.pid}"
        r.finished_at, r.exit_code = "", 0
        r.started = self.spec.startup_probe is None
        r.ready = r.started and self.spec.readiness_probe is None
        self._save()
        self._spawn(self._watch(proc), "wait")
        if self.spec.startup_probe is not None:
            self._probe(STARTUP, self.spec.startup_probe)
        else:
            self._start_probes(ready_hint)
        self.worker.wake()

    # -- probes ----------------------------------------------------------------------------

    def _start_probes(self, ready_hint: bool = False) -> None:
        if self.spec.readiness_probe is not None:
            self._probe(READINESS, self.spec.readiness_probe, ready_hint)
        if self.spec.liveness_probe is not None:
            self._probe(LIVENESS, self.spec.liveness_probe)

    def _probe(self, kind: str, probe: Probe, initial: bool | None = None) -> None:
        w = self.worker
        runtime = w.kubelet.runtime

        def exec_argv(cmd: list[str]) -> list[str]:
            pid = self.process.pid if self.process is not None else 0
            return runtime.exec_argv(pid, cmd, self.spec.working_dir)

        target = ProbeTarget(w.pod_ip, exec_argv, self.env)
        counter = w.kubelet.metrics.probes

        async def try_once() -> bool:
            return await attempt(probe, self.spec, target, w.kubelet.http)

        def on_attempt(kind: str, ok: bool) -> None:
            counter.labels(kind.capitalize(), "successful" if ok else "failed", self.name,
                           w.name, w.namespace).inc()

        if kind == READINESS and initial:
            self.record.ready = True  # adopted: keep what the API showed until the probe says otherwise
        self._spawn(run_prober(kind, probe, try_once, self._on_probe, on_attempt, initial=initial), kind)

    def _on_probe(self, kind: str, ok: bool) -> None:
        if not self.running or self._killed_by:
            return  # gone, or being killed after a failed probe: its successor gets new probers
        if kind == READINESS:
            self.record.ready = ok
        elif kind == STARTUP and ok:
            self.record.started = True
            self.record.ready = self.spec.readiness_probe is None
            self._cancel_tasks(kind)
            self._start_probes()
        elif not ok:  # liveness or startup failed: the kubelet kills the container, then restarts it
            log.info("pod %s container %s failed its %s probe; restarting it", self.worker.key, self.name,
                     kind)
            self._killed_by = kind
            self._cancel_tasks(READINESS, LIVENESS, STARTUP)
            probe = self.spec.liveness_probe if kind == LIVENESS else self.spec.startup_probe
            self._spawn(self._kill(self.worker.grace_period(probe)), "kill")
        self.worker.wake()

    # -- exits and restarts ----------------------------------------------------------------

    async def _watch(self, proc: ContainerProcess) -> None:
        code = await proc.wait()
        if self.process is not proc:
            return
        r = self.record
        r.state, r.finished_at, r.ready, r.started = TERMINATED, now(), False, False
        if code is None:
            r.exit_code, r.reason = UNKNOWN_EXIT, "ContainerStatusUnknown"
            r.message = "The container was adopted from an earlier kubelet; its exit code is unknown"
        else:
            r.exit_code, r.reason = code, "Completed" if code == 0 else "Error"
            r.message = f"killed after failing its {self._killed_by} probe" if self._killed_by else ""
        self._killed_by = ""
        self._cancel_tasks(READINESS, LIVENESS, STARTUP)
        self._after_exit()
        self.worker.wake()

    def _after_exit(self) -> None:
        """Decides about a restart (and the back-off) once the container has terminated."""
        self._finished_mono = self.worker.loop_time()
        self._save()
        if self._stopping or not will_restart(self.record, self.worker.restart_policy):
            self.restart_at = None
            return
        self._restart_pending = True
        delay = self.backoff.delay(self._finished_mono)
        self.restart_at = self._finished_mono + delay
        if delay > 0:
            w = self.worker
            self.record.last_terminated = self.record.terminated_detail()
            self._wait("CrashLoopBackOff", backoff_message(delay, self.name, w.name, w.namespace, w.uid))

    def due(self, t: float) -> bool:
        return self.restart_at is not None and t >= self.restart_at and not self._stopping

    async def _kill(self, grace: float) -> None:
        proc = self.process
        if proc is None or proc.exited:
            return
        proc.signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await proc.done.wait()
        proc.signal(signal.SIGKILL)

    async def stop(self, grace: float) -> None:
        """SIGTERM, up to `grace` seconds, SIGKILL; no restart afterwards."""
        self._stopping = True
        self.restart_at = None
        self._cancel_tasks(READINESS, LIVENESS, STARTUP, "kill")
        proc = self.process
        if proc is None or proc.exited:
            return
        await self._kill(grace)
        with contextlib.suppress(TimeoutError):  # SIGKILLed: only an unkillable (D state) process stays
            async with asyncio.timeout(10.0):
                await proc.done.wait()

    # -- tasks -----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        # The last word of a task's name is its kind, which _cancel_tasks goes by.
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.worker.key}/{self.name} {name}")
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pod %s container %s: %s failed", self.worker.key, self.name, task.get_name(),
                      exc_info=task.exception())

    def _cancel_tasks(self, *kinds: str) -> None:
        for task in list(self._tasks):
            if task.get_name().rsplit(" ", 1)[-1] in kinds and task is not asyncio.current_task():
                task.cancel()

    def detach(self) -> None:
        """Stops watching without touching the process (the kubelet is shutting down)."""
        for task in list(self._tasks):
            task.cancel()

"""One event loop per process, on uvloop, the daemons' stop-on-signal (CONVENTIONS.md §8),
and the shell every API-watching daemon shares (`run_daemon`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvloop

if TYPE_CHECKING:
    from netplane.client.rest import ApiClient

T = TypeVar("T")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(main)


async def until_signalled(main: Coroutine[Any, Any, None], name: str) -> None:
    """Runs a daemon's main coroutine until it returns or SIGINT/SIGTERM cancels it; a
    cancellation by signal is a normal stop, every other exception propagates."""
    task = asyncio.create_task(main, name=name)
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def run_daemon(kubeconfig: Path, name: str, main: Callable[[ApiClient], Coroutine[Any, Any, None]],
               errors: tuple[type[Exception], ...] = ()) -> int:
    """A daemon's command: an API client from `kubeconfig` (a bad one is exit 2 with one
    line), `main(client)` until it returns or SIGINT/SIGTERM stops it, and each of
    `errors` turned into a one-line exit 1."""
    from netplane.cli.main import CliError
    from netplane.client.kubeconfig import KubeconfigError
    from netplane.client.rest import ApiClient

    try:
        client = ApiClient.from_kubeconfig(kubeconfig)
    except KubeconfigError as exc:
        raise CliError(str(exc), 2) from exc

    async def serve() -> None:
        async with client:
            await until_signalled(main(client), name)

    try:
        run_async(serve())
    except errors as exc:
        raise CliError(str(exc)) from exc
    return 0

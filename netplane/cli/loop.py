"""One event loop per process, on uvloop, and the daemons' stop-on-signal (CONVENTIONS.md §8)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

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

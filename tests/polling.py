"""Waiting for the system under test to get somewhere, without asserting how long it takes
(these machines are shared and noisy): the one polling loop every suite's `eventually`
wraps with what counts as "not yet" there and how patient it is."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T | None], what: str, *, timeout: float, interval: float,
         not_yet: tuple[type[BaseException], ...]) -> T:
    """Calls `check` until it returns something truthy and returns that; an exception in
    `not_yet` counts as a falsy answer. Fails with `what` and the last such exception."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except not_yet as exc:
            last, result = exc, None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")

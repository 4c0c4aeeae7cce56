"""One event loop per process, on uvloop (CONVENTIONS.md §8)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(main)

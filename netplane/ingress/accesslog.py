"""The access log: one JSON line per request, buffered and written in batches (a line per
write would be a syscall per request)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import IO

import orjson

log = logging.getLogger(__name__)


class AccessLog:
    def __init__(self, stream: IO[bytes] | None, *, flush_every: float = 0.2) -> None:
        self.stream = stream
        self.enabled = stream is not None
        self.flush_every = flush_every
        self._lines: list[bytes] = []
        self._scheduled = False

    def write(self, entry: dict[str, object]) -> None:
        entry["time"] = time.time()
        self._lines.append(orjson.dumps(entry) + b"\n")
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.flush_every, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines or self.stream is None:
            return
        data, self._lines = b"".join(self._lines), []
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError) as exc:  # a closed or full log must not stop the proxy
            log.warning("access log: cannot write %d bytes: %s", len(data), exc)

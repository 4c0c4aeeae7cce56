"""What runs in the lab's client namespace: `python -m netplane.bench.client CMD ...`.

- `requests VIP COUNT`: COUNT sequential HTTP/1.0 requests, each on a new connection
  (connect, GET, the whole answer, close), timed one by one; prints JSON with the
  latencies in microseconds and how many each endpoint answered (nginx answers its name).
- `probe VIP`: a long-lived helper for network programming latency. For each line on
  stdin ("up" or "down") it polls the VIP until a request succeeds (up) or fails (down)
  and prints the CLOCK_MONOTONIC time it saw it, which is comparable with the caller's
  (one clock for the whole machine).

`requests` uses plain blocking sockets: its numbers should be the path's, not an event
loop's. `probe` needs overlapping attempts, so it uses asyncio.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n"
PORT = 80
POLL_INTERVAL = 0.002
ATTEMPT_TIMEOUT = 1.0
POLL_TIMEOUT = 60.0


def request(vip: str, timeout: float = 2.0) -> bytes | None:
    """One request on a new connection: the body, or None when it failed in any way."""
    try:
        with socket.create_connection((vip, PORT), timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(REQUEST)
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
    except OSError:
        return None
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    return body.strip() if head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200") else None


def requests(vip: str, count: int) -> dict[str, object]:
    latencies: list[float] = []
    answers: collections.Counter[str] = collections.Counter()
    failures = 0
    for _ in range(count):
        start = time.perf_counter_ns()
        body = request(vip)
        elapsed = time.perf_counter_ns() - start
        if body is None:
            failures += 1
            continue
        latencies.append(elapsed / 1000)
        answers[body.decode(errors="replace")] += 1
    return {"latencies_us": latencies, "by_endpoint": dict(answers), "failures": failures}


async def _attempt(vip: str) -> tuple[bool, float]:
    """One request on a new connection: (answered 200, when it ended)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(vip, PORT), ATTEMPT_TIMEOUT)
        try:
            writer.write(REQUEST)
            data = await asyncio.wait_for(reader.read(), ATTEMPT_TIMEOUT)
        finally:
            writer.close()
        ok = data.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
    except (TimeoutError, OSError):
        ok = False
    return ok, time.monotonic()


async def _until(vip: str, want_up: bool) -> float | None:
    """A new attempt every POLL_INTERVAL, each on its own connection, so that one stuck
    attempt (a SYN dropped while the rules change, or a REJECT whose ICMP answer the
    kernel's rate limit swallowed) does not hold up the next: the time of the first
    attempt that ends as wanted."""
    pending: set[asyncio.Task[tuple[bool, float]]] = set()
    deadline = time.monotonic() + POLL_TIMEOUT
    try:
        while time.monotonic() < deadline:
            pending.add(asyncio.create_task(_attempt(vip)))
            done, pending = await asyncio.wait(pending, timeout=POLL_INTERVAL)
            ends = sorted(end for ok, end in (t.result() for t in done) if ok == want_up)
            if ends:
                return ends[0]
        return None
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def probe(vip: str) -> None:
    for line in sys.stdin:
        seen = asyncio.run(_until(vip, line.strip() == "up"))
        print("timeout" if seen is None else seen, flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["requests"] and len(argv) == 3:
        print(json.dumps(requests(argv[1], int(argv[2]))))
        return 0
    if argv[:1] == ["probe"] and len(argv) == 2:
        probe(argv[1])
        return 0
    print("usage: python -m netplane.bench.client requests VIP COUNT | probe VIP", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

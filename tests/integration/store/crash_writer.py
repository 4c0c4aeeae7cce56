"""Child process of the kill -9 test: writes as fast as it can and prints each write only
after the store acknowledged it. Run: python crash_writer.py URL ROUND."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys

from control.store import KeyNotFoundError, open_store

WRITERS = 16
KEYS_PER_WRITER = 8


def value(writer: int, seq: int, round_no: int) -> bytes:
    body = {"writer": writer, "seq": seq, "round": round_no, "pad": "x" * (seq % 200)}
    raw = json.dumps(body, sort_keys=True)
    return json.dumps({"body": body, "sha": hashlib.sha256(raw.encode()).hexdigest()}).encode()


async def main(url: str, round_no: int) -> None:
    store = await open_store(url)
    out = sys.stdout

    async def writer(w: int) -> None:
        seq = 0
        while True:
            key = f"/crash/w{w:02d}/k{seq % KEYS_PER_WRITER}"
            data = value(w, seq, round_no)
            try:
                rev = await store.update(key, data, 0)
            except KeyNotFoundError:
                rev = await store.create(key, data)
            out.write(f"ack {key} {rev} {round_no} {seq}\n")
            out.flush()
            seq += 1

    print("ready", flush=True)
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

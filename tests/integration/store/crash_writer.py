"""Child process of the kill -9 test: concurrent writers create, update and delete their own
keys as fast as they can, and print each write only after the store acknowledged it.

Run: python crash_writer.py URL ROUND SEED keep|compact (compact: also compact the history
older than the last COMPACT_LAG revisions, over and over). Prints `ready REVISION`, then one line per
acknowledged write: `ack OP KEY REVISION SHA256-OF-THE-VALUE` (for a delete, of the deleted
value). Every value is JSON that embeds the checksum of its own body.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys

from control.store import open_store

WRITERS = 16
KEYS_PER_WRITER = 8
PREFIX = "/crash/"
COMPACT_LAG = 300


def make_value(key: str, round_no: int, seq: int, rng: random.Random) -> bytes:
    # Up to a few pages, so that a torn write would show in the middle of a value.
    body = {"key": key, "round": round_no, "seq": seq, "pad": "x" * rng.choice((0, 10, 300, 5000))}
    raw = json.dumps(body, sort_keys=True)
    return json.dumps({"body": body, "sha": hashlib.sha256(raw.encode()).hexdigest()}).encode()


def sha(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


async def main(url: str, round_no: int, seed: int, history: str) -> None:
    store = await open_store(url)
    out = sys.stdout

    def ack(op: str, key: str, revision: int, value: bytes) -> None:
        out.write(f"ack {op} {key} {revision} {sha(value)}\n")
        out.flush()

    async def writer(w: int) -> None:
        rng = random.Random(seed * 1000 + w)
        keys = [f"{PREFIX}w{w:02d}/k{k}" for k in range(KEYS_PER_WRITER)]
        # Only this writer writes these keys, so its preconditions always hold: a conflict
        # would mean the store lost or invented a write.
        revisions = {}
        for key in keys:
            kv = await store.get(key)
            revisions[key] = kv.mod_revision if kv is not None else 0
        seq = 0
        while True:
            key = rng.choice(keys)
            seq += 1
            if revisions[key] == 0:
                value = make_value(key, round_no, seq, rng)
                revisions[key] = await store.create(key, value)
                ack("create", key, revisions[key], value)
            elif rng.random() < 0.15:
                gone = await store.delete(key, revisions[key])
                revisions[key] = 0
                ack("delete", key, gone.mod_revision, gone.value)
            else:
                value = make_value(key, round_no, seq, rng)
                revisions[key] = await store.update(key, value, revisions[key])
                ack("update", key, revisions[key], value)

    async def compactor() -> None:
        while True:
            await asyncio.sleep(0.005)
            await store.compact(await store.current_revision() - COMPACT_LAG)

    out.write(f"ready {await store.current_revision()}\n")
    out.flush()
    await asyncio.gather(*(writer(w) for w in range(WRITERS)),
                         *([compactor()] if history == "compact" else []))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))

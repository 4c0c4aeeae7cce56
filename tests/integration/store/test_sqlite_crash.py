"""kill -9 in the middle of concurrent writes: on reopen every acknowledged write is there
with exactly its value, no value is half written, revisions are unique and increasing, and
new writes get revisions above everything the store ever handed out."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from control.store import Event, EventType, Store, open_store
from tests.integration.store.crash_writer import PREFIX

WRITER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).parents[3]
TIMEOUT = 60.0


@dataclass(frozen=True)
class Ack:
    op: str
    key: str
    revision: int
    sha: str


@pytest.fixture
async def children() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs: list[asyncio.subprocess.Process] = []
    try:
        yield procs
    finally:  # never leave a writer behind, also when the test fails
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()


async def _run_and_kill(url: str, round_no: int, seed: int, history: str, kill_after: int, stderr: Path,
                        children: list[asyncio.subprocess.Process]) -> tuple[int, list[Ack]]:
    """Runs a writer and SIGKILLs it after `kill_after` acknowledgements (so in the middle
    of its next writes); returns the revision it started at and every write it acknowledged."""
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(WRITER), url, str(round_no), str(seed), history,
            stdout=asyncio.subprocess.PIPE, stderr=err, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    children.append(proc)
    assert proc.stdout is not None

    async def line() -> bytes:
        return await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)  # type: ignore[union-attr]

    first = await line()
    assert first.startswith(b"ready "), f"the writer did not start: {_tail(stderr)}"
    acks: list[Ack] = []
    while len(acks) < kill_after:
        raw = await line()
        assert raw.endswith(b"\n"), f"the writer died early: {_tail(stderr)}"
        acks.append(_ack(raw))
    proc.send_signal(signal.SIGKILL)
    # Lines the writer printed before it died are acknowledged writes too; a torn last line
    # (no newline) was never a whole acknowledgement.
    while (raw := await line()).endswith(b"\n"):
        acks.append(_ack(raw))
    assert await asyncio.wait_for(proc.wait(), TIMEOUT) == -signal.SIGKILL, _tail(stderr)
    return int(first.split()[1]), acks


def _tail(path: Path) -> str:
    return path.read_text()[-2000:]


def _ack(raw: bytes) -> Ack:
    tag, op, key, revision, sha = raw.decode().split()
    assert tag == "ack"
    return Ack(op, key, int(revision), sha)


def _checked_body(value: bytes) -> dict[str, Any]:
    doc = json.loads(value)
    body = json.dumps(doc["body"], sort_keys=True)
    assert hashlib.sha256(body.encode()).hexdigest() == doc["sha"], "a half-written value"
    return doc["body"]


async def _log(store: Store, after: int, until_key: str) -> list[Event]:
    """The logged history under PREFIX after `after`, up to `until_key`."""
    events: list[Event] = []

    async def read() -> None:
        async with contextlib.aclosing(store.watch(PREFIX, after)) as it:  # type: ignore[type-var]
            async for batch in it:
                events.extend(batch)
                if events[-1].kv.key == until_key:
                    return

    await asyncio.wait_for(read(), TIMEOUT)
    return events


async def _verify(store: Store, acks: list[Ack], round_no: int, seen_high: int) -> int:
    """Checks the reopened store against every acknowledgement so far; returns the highest
    revision seen. Acknowledged writes the log still holds (all of them, unless a writer
    compacted) are checked exactly; older ones through the keys' live versions."""
    sentinel = f"{PREFIX}~check-{round_no}"
    # A write now must land above every revision ever handed out, acknowledged or not.
    new = await store.create(sentinel, b"{}")
    floor = await store.compacted_revision()
    events = await _log(store, floor, sentinel)
    revisions = [ev.revision for ev in events]
    assert revisions == sorted(set(revisions)), "revisions are not unique and increasing"
    assert new == revisions[-1] and new > max(seen_high, *(a.revision for a in acks))
    by_revision = {ev.revision: ev for ev in events}
    latest: dict[str, Event] = {}
    for ev in events:
        if ev.kv.key.startswith(f"{PREFIX}~check-"):
            continue
        body = _checked_body(ev.kv.value)
        assert body["key"] == ev.kv.key
        before = latest.get(ev.kv.key)
        if ev.type is EventType.DELETE:
            assert ev.prev is not None and ev.prev.value == ev.kv.value
            assert before is None or (before.type is EventType.PUT and ev.prev == before.kv)
        elif before is not None:  # a later version of a key is a later write of its writer
            old = _checked_body(before.kv.value)
            assert (body["round"], body["seq"]) > (old["round"], old["seq"]), f"{ev.kv.key} went back"
        latest[ev.kv.key] = ev
    for ack in acks:
        if ack.revision <= floor:
            continue
        ev = by_revision.get(ack.revision)
        assert ev is not None, f"acknowledged {ack} is lost"
        stored = (ev.type, ev.kv.key, hashlib.sha256(ev.kv.value).hexdigest())
        assert stored[1:] == (ack.key, ack.sha), f"acknowledged {ack} was stored as {stored}"
        assert (ev.type is EventType.DELETE) == (ack.op == "delete")
        assert ev.is_create == (ack.op == "create")
        if ack.op != "delete":  # the same version through a read at its revision
            kv = await store.get(ack.key, ack.revision)
            assert kv is not None and hashlib.sha256(kv.value).hexdigest() == ack.sha
    live = {kv.key: kv for kv in (await store.list(PREFIX)).items if "~check-" not in kv.key}
    for kv in live.values():
        _checked_body(kv.value)
    for key, ev in latest.items():
        assert live.get(key) == (ev.kv if ev.type is EventType.PUT else None), (
            f"{key} is not its last write (at {ev.revision})")
    last_acks = {ack.key: ack for ack in sorted(acks, key=lambda a: a.revision)}
    for key, ack in last_acks.items():  # nothing went back in time, compacted or not
        kv = live.get(key)
        if kv is None:
            continue  # deleted by this acknowledged write or an unacknowledged later one
        assert kv.mod_revision >= ack.revision, f"{key} lost its acknowledged write {ack}"
        if kv.mod_revision == ack.revision:
            assert ack.op != "delete" and hashlib.sha256(kv.value).hexdigest() == ack.sha
        if ack.op == "delete":
            assert kv.create_revision > ack.revision, f"{key} came back after its delete {ack}"
    return new


async def test_every_acknowledged_write_survives_kill_9(
        tmp_path: Path, children: list[asyncio.subprocess.Process]) -> None:
    seed = random.SystemRandom().randrange(2**32)
    print(f"kill points from seed {seed}")  # shown when the test fails
    rng = random.Random(seed)
    acks: list[Ack] = []
    seen_high = 0
    # The last round's writer also compacts as it goes, so the kill may land in a compaction.
    rounds = (("normal", "keep"), ("full", "keep"), ("normal", "compact"))
    for round_no, (durability, history) in enumerate(rounds):
        url = f"sqlite://{tmp_path / 'crash.db'}?durability={durability}&compact_interval=0"
        kill_after = rng.randint(300, 3000)
        started_at, round_acks = await _run_and_kill(url, round_no, rng.randrange(2**32), history,
                                                     kill_after, tmp_path / f"writer-{round_no}.err",
                                                     children)
        assert started_at == seen_high
        assert len(round_acks) >= kill_after
        assert min(a.revision for a in round_acks) > seen_high, "a revision was reused"
        acks += round_acks
        store = await open_store(url)
        try:
            seen_high = await _verify(store, acks, round_no, seen_high)
        finally:
            await store.close()

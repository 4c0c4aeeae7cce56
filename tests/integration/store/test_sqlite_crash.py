"""kill -9 during writes: on reopen every acknowledged write is there, nothing is half
written, and revisions go on from where they were."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.store import open_store

WRITER = Path(__file__).with_name("crash_writer.py")


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:  # never leave a writer behind, also when the test fails
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _run_and_kill(url: str, round_no: int, acks_before_kill: int,
                  children: list[subprocess.Popen[str]]) -> dict[str, tuple[int, int, int]]:
    """Starts a writer, kills it with SIGKILL after that many acknowledgements; returns
    key → (revision, round, seq) of the last acknowledged write of each key."""
    proc = subprocess.Popen([sys.executable, str(WRITER), url, str(round_no)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parents[3],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    children.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    acked: dict[str, tuple[int, int, int]] = {}
    for count, line in enumerate(proc.stdout, start=1):
        _, key, rev, rnd, seq = line.split()
        acked[key] = (int(rev), int(rnd), int(seq))
        if count >= acks_before_kill:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    # Lines the child flushed before dying are acknowledged writes too.
    for line in proc.stdout:
        if line.startswith("ack "):
            _, key, rev, rnd, seq = line.split()
            acked[key] = (int(rev), int(rnd), int(seq))
    assert proc.returncode == -signal.SIGKILL
    return acked


def _check(raw: bytes) -> dict[str, int]:
    doc = json.loads(raw)
    body = json.dumps(doc["body"], sort_keys=True)
    assert hashlib.sha256(body.encode()).hexdigest() == doc["sha"], "a half-written value"
    return doc["body"]


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_every_acknowledged_write_survives_kill_9(
        tmp_path: Path, durability: str, children: list[subprocess.Popen[str]]) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}?durability={durability}&compact_interval=0"
    rng = random.Random(7)
    highest = 0
    for round_no in range(3):
        acked = _run_and_kill(url, round_no, rng.randint(300, 1500), children)
        store = await open_store(url)
        try:
            current = await store.current_revision()
            listing = await store.list("/crash/")
            stored = {kv.key: kv for kv in listing.items}
            for key, (rev, rnd, seq) in acked.items():
                assert key in stored, f"acknowledged {key}@{rev} is lost"
                kv = stored[key]
                body = _check(kv.value)
                assert kv.mod_revision >= rev
                assert (body["round"], body["seq"]) >= (rnd, seq), f"{key} went back in time"
            for kv in listing.items:
                _check(kv.value)
            revisions = sorted(kv.mod_revision for kv in listing.items)
            assert len(set(revisions)) == len(revisions)
            assert current >= max(rev for rev, _r, _s in acked.values()) and current >= highest
            new = await store.create(f"/after/{round_no}", b"{}")
            assert new > current
            highest = new
        finally:
            await store.close()

"""Copying every live key of one store into another (`netplane store migrate`), e.g. from
the embedded SQLite file to etcd when a cluster outgrows one machine.

What is copied is the live state at one revision of the source, not its history: the
target gives every key a revision of its own (objects get new resourceVersions, so
clients re-list, as after any restore of etcd). Stop the apiservers first: a write made
during the copy would be missed, and is detected (`SourceChangedError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from control.store.protocol import KeyExistsError, KeyValue, Store, StoreError

PAGE = 500
PARALLEL = 64  # writes in flight: etcd commits concurrent writes in one raft batch


class TargetNotEmptyError(StoreError):
    def __init__(self, count: int) -> None:
        super().__init__(f"the target store holds {count} keys already")
        self.count = count


class SourceChangedError(StoreError):
    def __init__(self, copied_at: int, now: int) -> None:
        super().__init__(f"the source was written during the copy (revision {copied_at}, now {now})")
        self.copied_at = copied_at
        self.now = now


@dataclass(frozen=True)
class Migration:
    copied: int  # keys written to the target
    replaced: int  # of which already existed there (only with overwrite)
    revision: int  # the source's revision that was copied


async def migrate(source: Store, target: Store, *, overwrite: bool = False,
                  progress: Callable[[int], None] | None = None) -> Migration:
    """Copies every live key of `source` into `target`.

    The target must be empty unless `overwrite`, which replaces the keys it holds with the
    source's (and keeps the others): re-running an interrupted copy is then safe."""
    if not overwrite:
        count = await target.count("")
        if count:
            raise TargetNotEmptyError(count)
    revision = await source.current_revision()
    copied = replaced = 0
    slots = asyncio.Semaphore(PARALLEL)

    async def copy(kv: KeyValue) -> None:
        nonlocal replaced
        async with slots:
            try:
                await target.create(kv.key, kv.value)
            except KeyExistsError:
                if not overwrite:
                    raise  # someone writes to the target while it is being filled
                await target.update(kv.key, kv.value, 0)
                replaced += 1

    start = ""
    while True:
        page = await source.list("", revision=revision, limit=PAGE, start_after=start)
        await asyncio.gather(*(copy(kv) for kv in page.items))
        copied += len(page.items)
        if progress is not None:
            progress(copied)
        if not page.more:
            break
        start = page.items[-1].key
    now = await source.current_revision()
    if now != revision:
        raise SourceChangedError(revision, now)
    return Migration(copied, replaced, revision)

"""The SQLite log: a kine-like table with one row per write, and the queries over it.

Plain synchronous functions over a `sqlite3.Connection`; the store runs them in its
writer and reader threads, never on the event loop.

A row is one version of one key: `id` is the write's revision, `created` marks the
first version of a key's lifetime, `deleted` a tombstone (which keeps the deleted value
so a replayed DELETE event carries it), `prev_revision` the version it replaced.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from control.store.keyrange import KeyRange
from control.store.protocol import (
    ConflictError,
    Event,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
)

Durability = Literal["normal", "full"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    -- AUTOINCREMENT keeps the highest id ever used in sqlite_sequence, so a revision is
    -- never handed out twice even if compaction ever removed the newest rows.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
-- Serves get-at-revision (name =, id <=), list-at-revision (name range, max id per name)
-- and compaction's "is there a newer version" probe. Watch replay and compaction chunks
-- walk the rowid (id) itself.
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""

_LATEST = "SELECT id, deleted, create_revision, value FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1"
_INSERT = ("INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")
_GET_AT = ("SELECT id, deleted, create_revision, value FROM kv "
           "WHERE name = ? AND id <= ? ORDER BY id DESC LIMIT 1")
# The newest version of every key in a range as of a revision; tombstones filtered after
# the join so that a deleted key hides its older versions.
_LATEST_IDS = ("SELECT MAX(id) AS id FROM kv WHERE name >= ? AND name < ? AND name > ? AND id <= ? "
               "GROUP BY name")
_LIST_AT = (f"SELECT k.name, k.value, k.create_revision, k.id FROM ({_LATEST_IDS}) AS m "
            "JOIN kv AS k ON k.id = m.id WHERE k.deleted = 0 ORDER BY k.name LIMIT ?")
_COUNT_AT = f"SELECT COUNT(*) FROM ({_LATEST_IDS}) AS m JOIN kv AS k ON k.id = m.id WHERE k.deleted = 0"
# `+k.name` keeps the planner on the rowid: a watch usually resumes from a recent revision,
# so walking ids after it beats walking every version of every key under the prefix.
_REPLAY = ("SELECT k.id, k.name, k.created, k.deleted, k.create_revision, k.prev_revision, k.value, "
           "p.value FROM kv AS k LEFT JOIN kv AS p ON p.id = k.prev_revision AND k.created = 0 "
           "WHERE k.id > ? AND +k.name >= ? AND +k.name < ? ORDER BY k.id LIMIT ?")
# Compaction at R keeps, for every key, its newest version as of R (so reads at R stay
# exact) unless that is a tombstone older than R, and everything newer than R. A chunk
# compacts the whole history below R of every key written in its id range, not only the
# rows in the range: the version a key had at the previous compaction sits below this
# one's range, and dropping a tombstone without it would bring the deleted key back.
_COMPACT_CHUNK = ("DELETE FROM kv WHERE id < :rev AND name IN ("
                  "SELECT name FROM kv WHERE id >= :low AND id < :high) AND (deleted = 1 OR EXISTS ("
                  "SELECT 1 FROM kv AS n WHERE n.name = kv.name AND n.id > kv.id AND n.id <= :rev))")


@dataclass(frozen=True, slots=True)
class LogState:
    revision: int
    compacted: int
    oldest_id: int


def connect(path: str, *, writer: bool, durability: Durability = "normal") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    # Reads of whole kinds touch many pages: a large cache and mmap keep lists off syscalls.
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA mmap_size = 1073741824")
    if writer:
        conn.execute("PRAGMA journal_mode = WAL")
        # In WAL mode a commit is in the OS before COMMIT returns, so NORMAL already keeps
        # every acknowledged write across a crash of this process (kill -9); only an OS
        # crash or power loss can lose the last transactions, which FULL (an fsync of the
        # WAL per commit) prevents at a large cost in write latency. Group commit makes
        # FULL affordable when that guarantee is needed.
        conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
        conn.executescript(_SCHEMA)
    else:
        conn.execute("PRAGMA query_only = ON")
    return conn


def load_state(conn: sqlite3.Connection) -> LogState:
    max_id, min_id = conn.execute("SELECT MAX(id), MIN(id) FROM kv").fetchone()
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
    compacted = conn.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()
    compacted_rev = compacted[0] if compacted else 0
    revision = max(max_id or 0, seq[0] if seq else 0, compacted_rev)
    return LogState(revision=revision, compacted=compacted_rev, oldest_id=min_id or 0)


# -- writes (inside the writer's transaction) --------------------------------------------

def create(conn: sqlite3.Connection, key: str, value: bytes, revision: int) -> Event:
    row = conn.execute(_LATEST, (key,)).fetchone()
    if row is not None and not row[1]:
        raise KeyExistsError(key)
    conn.execute(_INSERT, (revision, key, 1, 0, revision, row[0] if row else 0, value))
    return Event(EventType.PUT, KeyValue(key, value, revision, revision), None)


def update(conn: sqlite3.Connection, key: str, value: bytes, expected: int, revision: int) -> Event:
    prev_id, create_rev, prev_value = _live(conn, key, expected)
    conn.execute(_INSERT, (revision, key, 0, 0, create_rev, prev_id, value))
    return Event(EventType.PUT, KeyValue(key, value, create_rev, revision),
                 KeyValue(key, prev_value, create_rev, prev_id))


def delete(conn: sqlite3.Connection, key: str, expected: int, revision: int) -> Event:
    prev_id, create_rev, prev_value = _live(conn, key, expected)
    conn.execute(_INSERT, (revision, key, 0, 1, create_rev, prev_id, prev_value))
    return Event(EventType.DELETE, KeyValue(key, prev_value, create_rev, revision),
                 KeyValue(key, prev_value, create_rev, prev_id))


def _live(conn: sqlite3.Connection, key: str, expected: int) -> tuple[int, int, bytes]:
    row = conn.execute(_LATEST, (key,)).fetchone()
    if row is None or row[1]:
        raise KeyNotFoundError(key)
    if expected and row[0] != expected:
        raise ConflictError(key, expected, row[0])
    return row[0], row[2], row[3]


def compact_chunk(conn: sqlite3.Connection, low: int, high: int, revision: int) -> None:
    """Drops the history that compaction at `revision` no longer needs of the keys written
    in ids [low, high)."""
    conn.execute(_COMPACT_CHUNK, {"low": low, "high": high, "rev": revision})


def set_compacted(conn: sqlite3.Connection, revision: int) -> None:
    conn.execute("INSERT INTO meta (name, value) VALUES ('compacted', ?) "
                 "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (revision,))


# -- reads (on a reader connection) --------------------------------------------------------

def get_at(conn: sqlite3.Connection, key: str, revision: int) -> KeyValue | None:
    row = conn.execute(_GET_AT, (key, revision)).fetchone()
    if row is None or row[1]:
        return None
    return KeyValue(key, row[3], row[2], row[0])


def list_at(
    conn: sqlite3.Connection, rng: KeyRange, revision: int, limit: int, start_after: str
) -> tuple[list[KeyValue], bool, int]:
    """(items, more, remaining) for live keys in `rng` after `start_after` as of `revision`."""
    rows = conn.execute(_LIST_AT, (rng.low, rng.sql_high, start_after, revision,
                                   limit + 1 if limit > 0 else -1)).fetchall()
    items = [KeyValue(name, value, create_rev, mod_rev) for name, value, create_rev, mod_rev in rows]
    if limit <= 0 or len(items) <= limit:
        return items, False, 0
    del items[limit:]
    remaining = count_at(conn, rng, revision, items[-1].key)
    return items, True, remaining


def count_at(conn: sqlite3.Connection, rng: KeyRange, revision: int, start_after: str = "") -> int:
    return conn.execute(_COUNT_AT, (rng.low, rng.sql_high, start_after, revision)).fetchone()[0]


def replay(conn: sqlite3.Connection, rng: KeyRange, after: int, limit: int) -> list[Event]:
    """Logged writes in `rng` with a revision above `after`, oldest first, as events."""
    events = []
    for rev, name, created, deleted, create_rev, prev_rev, value, prev_value in conn.execute(
            _REPLAY, (after, rng.low, rng.sql_high, limit)):
        if deleted:
            events.append(Event(EventType.DELETE, KeyValue(name, value, create_rev, rev),
                                KeyValue(name, value, create_rev, prev_rev)))
        else:
            prev = None if created or prev_value is None else KeyValue(name, prev_value, create_rev,
                                                                       prev_rev)
            events.append(Event(EventType.PUT, KeyValue(name, value, create_rev, rev), prev))
    return events

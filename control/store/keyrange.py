"""Which keys a watch or list prefix selects, as a half-open range of strings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Keys `k` with `low <= k < high` (`high` None: no upper bound).

    A prefix ending in '/' selects its subtree; any other non-empty prefix is a whole
    key (the `Store` contract), so `/registry/pods/` never matches
    `/registry/podsecurity/x`. The empty prefix selects everything.
    """

    low: str
    high: str | None

    @classmethod
    def of(cls, prefix: str) -> KeyRange:
        if not prefix:
            return cls("", None)
        if prefix.endswith("/"):
            # Bumping the last code point gives the first string past the subtree; SQLite's
            # BINARY collation compares UTF-8 bytes, which preserves code point order.
            return cls(prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        return cls(prefix, prefix + "\x00")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.low <= key and (self.high is None or key < self.high)

    @property
    def sql_high(self) -> str:
        """An upper bound usable in SQL even when unbounded (above every real key)."""
        return self.high if self.high is not None else "\U0010ffff"

"""Times as kubectl shows them: ages (`5m30s`, Kubernetes' HumanDuration) and describe's
RFC 1123 timestamps."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(stamp: str | None) -> datetime | None:
    """An API timestamp (RFC 3339, `2024-05-01T10:00:00Z`), or None."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: int) -> str:
    """Kubernetes' duration.HumanDuration: 45s, 5m30s, 3h20m, 4d5h, 2y30d."""
    if seconds < 0:
        return "<invalid>"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if days % 365 else f"{years}y"


def age(stamp: str | None, now: datetime | None = None) -> str:
    """How long ago `stamp` was, as kubectl's AGE column says it."""
    then = parse_time(stamp)
    if then is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    return human_duration(max(int((now - then).total_seconds()), 0))


def rfc1123(stamp: str | None) -> str:
    """`Mon, 02 Jan 2006 15:04:05 -0700` in local time (describe's format); "<unset>" if none."""
    then = parse_time(stamp)
    if then is None:
        return "<unset>"
    return then.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")

"""placeholder until netplane ctl lands (helper-6 overwrites this file)."""

from typing import Any


def register(sub: Any) -> None:
    pass

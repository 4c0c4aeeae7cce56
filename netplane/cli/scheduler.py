"""placeholder: the `scheduler` subcommand lands with issue 3 (its owner overwrites this file)."""

from typing import Any


def register(sub: Any) -> None:
    pass

"""Golden files: rendered text compared with a reviewed file in the repository.

`NETPLANE_UPDATE_GOLDEN=1 pytest ...` rewrites the files instead of comparing; the diff
is then reviewed line by line before it is committed (CONVENTIONS.md §3)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path


def assert_golden(actual: str, path: Path) -> None:
    if os.environ.get("NETPLANE_UPDATE_GOLDEN"):
        path.write_text(actual)
        return
    expected = path.read_text() if path.exists() else ""
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                            actual.splitlines(keepends=True),
                                            fromfile=f"{path.name} (golden)", tofile="rendered"))
        raise AssertionError(f"rendered text differs from {path} (NETPLANE_UPDATE_GOLDEN=1 rewrites it; "
                             f"review the diff):\n{diff}")

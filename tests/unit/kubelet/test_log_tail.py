"""`tailLines` of a container log: found by reading the file backwards, as far as needed."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from control.kubelet.server import frame, tail_offset


def _reference(data: bytes, n: int) -> bytes:
    lines = io.BytesIO(data).readlines()  # split at "\n" only, as a log reader does
    return data if n < 0 else b"".join(lines[max(len(lines) - n, 0):]) if n else b""


@settings(max_examples=300)
@given(st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n")), st.integers(-1, 12),
       st.sampled_from([1, 2, 7, 65536]))
def test_tail_offset_finds_the_last_lines(data: bytes, n: int, block: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "0.log"
        path.write_bytes(data)
        start, end = tail_offset(path, n, block)
        assert end == len(data)
        assert data[start:] == _reference(data, n)


def test_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert tail_offset(tmp_path / "nope.log", 3) == (0, 0)


def test_exec_frames_are_channel_length_data() -> None:
    assert frame(1, b"hi") == b"\x01\x00\x00\x00\x02hi"
    assert frame(3, b"") == b"\x03\x00\x00\x00\x00"

"""`netplane proxy render` prints what the iptables mode would program, from files, with
no root and no kernel; bad input is one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "testdata"
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]


def test_render_prints_the_golden_rules_for_the_representative_services() -> None:
    out = subprocess.run([*NETPLANE, "proxy", "render", "--mode", "iptables", "-f",
                          str(DATA / "representative.yaml"), "--node-name", "node-1",
                          "--cluster-cidr", "10.0.0.0/24"],
                         capture_output=True, text=True, check=True)
    assert out.stdout == (DATA / "representative.rules").read_text()
    assert "2 services without a ClusterIP" in out.stderr


def test_a_broken_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
    out = subprocess.run([*NETPLANE, "proxy", "render", "-f", str(tmp_path / "bad.yaml")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "bad.yaml" in out.stderr

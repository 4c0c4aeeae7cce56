"""On a kernel without IPVS (this machine's), asking for IPVS mode is one clear line and a
non-zero exit, before anything is built; the proxy's --cleanup still works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netplane.proxy_ipvs.kernel import ipvs_available

NETPLANE = [sys.executable, "-m", "netplane.cli.main"]
pytestmark = pytest.mark.skipif(ipvs_available() is None, reason="this kernel has IPVS: nothing to refuse")


def test_up_with_ipvs_mode_says_the_kernel_has_no_ipvs(tmp_path: Path) -> None:
    out = subprocess.run([*NETPLANE, "up", "--proxy-mode", "ipvs", "--state-dir", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "no IPVS" in out.stderr and "--proxy-mode iptables" in out.stderr
    assert not (tmp_path / "c").exists(), "nothing was built"


def test_the_proxy_in_ipvs_mode_says_the_kernel_has_no_ipvs(tmp_path: Path) -> None:
    out = subprocess.run([*NETPLANE, "proxy", "--mode", "ipvs", "--kubeconfig", str(tmp_path / "k")],
                         capture_output=True, text=True, timeout=60)
    if out.returncode == 2 and "root" in out.stderr:
        pytest.skip("the proxy checks for root first; run as root")
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "no IPVS" in out.stderr

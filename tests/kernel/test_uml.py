"""The user-mode Linux harness itself: a guest boots over this machine's files, has the
kernel features the IPVS tests need, cannot write the host's files outside its share,
and hands back its command's exit code and output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netplane.kernel import uml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> tuple[uml.Result, Path]:
    if uml.in_guest():
        pytest.skip("already inside the guest")
    reason = uml.unavailable()
    if reason:
        pytest.skip(f"user-mode Linux cannot boot here: {reason}")
    share = tmp_path_factory.mktemp("share")
    probe = Path(__file__).resolve().parent / "uml-probe-must-not-exist"
    script = (f"set -e; cat /proc/net/ip_vs | head -1; ip link add d0 type dummy; ip -o link show d0; "
              f"ipset create s0 hash:ip,port; echo $(id -u) $NETPLANE_UML; "
              f"echo hello > {uml.GUEST_SHARE}/note; "
              f"touch {probe} 2>/dev/null && echo wrote-host || echo host-read-only; exit 7")
    return uml.run(["sh", "-c", script], share=share, mem="512M", timeout=300), share


def test_the_guest_runs_the_command_as_root_with_ipvs_dummy_links_and_ipsets(
        guest: tuple[uml.Result, Path]) -> None:
    result, _ = guest
    assert result.returncode == 7, result.output + result.console[-2000:]
    assert "IP Virtual Server version" in result.output
    assert "d0:" in result.output
    assert "0 1" in result.output  # uid 0, NETPLANE_UML=1


def test_the_guest_writes_only_its_share(guest: tuple[uml.Result, Path]) -> None:
    result, share = guest
    assert (share / "note").read_text() == "hello\n"
    assert "host-read-only" in result.output
    assert not (Path(__file__).resolve().parent / "uml-probe-must-not-exist").exists()


def test_a_guest_that_cannot_finish_is_killed_and_says_so(tmp_path: Path) -> None:
    if uml.unavailable() or uml.in_guest():
        pytest.skip("user-mode Linux cannot boot here")
    with pytest.raises(uml.UmlError, match="did not finish"):
        uml.run(["sleep", "600"], share=tmp_path, mem="256M", timeout=15)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_guest(p, tmp_path)]


def _is_guest(pid: str, share: Path) -> bool:
    try:
        return str(share) in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return False


def test_a_checkout_under_tmp_is_mounted_back_read_only(tmp_path: Path) -> None:
    """The guest mounts tmpfs over /tmp: a clone or venv there must still be seen."""
    if uml.unavailable() or uml.in_guest():
        pytest.skip("user-mode Linux cannot boot here")
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "marker").write_text("from the host\n")
    result = uml.run(["sh", "-c", "cat marker; touch x 2>/dev/null && echo writable || echo read-only"],
                     cwd=work, share=tmp_path / "share", mem="256M", timeout=120)
    assert result.returncode == 0, result.output + result.console[-2000:]
    assert result.output == "from the host\nread-only\n"
    assert not (work / "x").exists()


def test_only_the_outermost_hidden_paths_are_mounted_back() -> None:
    assert uml.hidden_paths(["/tmp/a/repo", "/tmp/a/repo/.venv", "/usr/bin", "/run/x", "/tmpfoo"]) == [
        "/run/x", "/tmp/a/repo"]

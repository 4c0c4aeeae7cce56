"""`netplane up` in the foreground, interrupted while the cluster is still coming up: the
signal stops the bring-up where it is instead of waiting for the nodes, removes every
process, namespace and file it made, and exits 130 for Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from control.apiserver.process import free_port
from control.cluster import processes
from control.cluster.layout import ClusterRecord, Layout, cluster_id_for
from tests.e2e.conftest import NETPLANE, eventually


def _link_names() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split(":")[1].strip() for line in out.splitlines())


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_ctrl_c_while_coming_up_removes_everything_and_exits_130(tmp_path: Path) -> None:
    netns_before, links_before = _netns_names(), _link_names()
    state = tmp_path / "state"
    layout = Layout(state)
    prefix = f"np-{cluster_id_for(state)}-"
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        up = subprocess.Popen([*NETPLANE, "up", "--nodes", "2", "--state-dir", str(state),
                               "--api-port", str(free_port())],
                              stdout=stdout, stderr=stderr, start_new_session=True)
    record: ClusterRecord | None = None
    try:
        def started() -> ClusterRecord | None:
            rec = layout.read_record()
            return rec if rec is not None and rec.processes else None

        # The record names the apiserver as soon as it is started: the networks exist, and
        # the nodes are minutes (on a slow machine) from Ready.
        record = eventually(started, "netplane up to record its first process", timeout=120)
        assert any(name.startswith(prefix) for name in _netns_names())
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=300)
        assert code == 130, f"exit code {code}:\n{out.read_text()}\n{err.read_text()}"
        assert "is up" not in out.read_text(), "the cluster came up before the signal landed"
        assert "SIGINT while the cluster was coming up" in err.read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if state.exists() and up.returncode != 130:  # a failed test still leaves the host clean
            subprocess.run([*NETPLANE, "down", "--state-dir", str(state)], capture_output=True, timeout=300)

    assert not state.exists(), f"the state dir is still there: {sorted(p.name for p in state.iterdir())}"
    assert record is not None
    assert not [p.name for p in record.processes if processes.is_running(p)]
    # Another cluster (the session's) may remove its pods' namespaces meanwhile, never add ours.
    assert not {name for name in _netns_names() if name.startswith(prefix)}
    assert _netns_names() <= netns_before
    assert _link_names() == links_before, "the host's links changed"

"""A benchmark killed with SIGKILL leaves its network namespace and the servers in it; the
next benchmark removes them when it starts (bench/common.py), and leaves alone those of
benchmarks still running."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.common import namespace_name, sweep_namespaces
from netplane.kernel import netns as ns
from tests.polling import poll

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates network namespaces: needs root"),
]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def names() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        ns.delete(name)


def test_the_namespace_of_a_dead_benchmark_is_removed_with_its_processes(names: list[str]) -> None:
    orphan = f"npb-ipt-{_dead_pid()}-0a1b2c"
    mine = namespace_name("ipt")
    names += [orphan, mine]
    for name in names:
        ns.create(name)
    server = subprocess.Popen(["ip", "netns", "exec", orphan, "sleep", "300"])
    try:
        poll(lambda: subprocess.run(["ip", "netns", "pids", orphan], capture_output=True, text=True).stdout,
             "the server inside the orphan namespace", timeout=10, interval=0.05, not_yet=())
        removed = sweep_namespaces()
        assert orphan in removed
        assert server.wait(timeout=10) != 0, "the orphan's server was killed"
        assert not ns.exists(orphan)
        assert ns.exists(mine), "a live benchmark's namespace stays"
        assert mine not in removed
    finally:
        server.kill()
        server.wait()


def test_names_carry_the_creator_and_other_namespaces_are_not_touched(names: list[str]) -> None:
    assert namespace_name().startswith(f"npb-{os.getpid()}-")
    assert namespace_name("ipvs").startswith(f"npb-ipvs-{os.getpid()}-")
    other = f"npc-{_dead_pid()}-0a1b2c"  # not a benchmark's
    names.append(other)
    ns.create(other)
    sweep_namespaces()
    assert ns.exists(other)

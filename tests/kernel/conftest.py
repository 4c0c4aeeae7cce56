"""Tests that need a kernel this machine lacks (IPVS, dummy links) run inside user-mode
Linux, automatically: mark a test module `pytest.mark.uml` and run pytest as usual.

On the host, the first `uml` test to run boots one guest (netplane/kernel/uml.py) that
runs every selected `uml` test in one pytest session, as root over this machine's own
root file system; the guest writes each test's reports into the share directory, and the
host replays them as the tests' own results (tracebacks included), as pytest-xdist relays
a worker's. Where user-mode Linux cannot boot, the tests skip and say why. Inside the
guest (NETPLANE_UML=1) the tests simply run.

    .venv/bin/pytest tests/kernel            # boots the guest once, ~1 min before the first result
    NETPLANE_UML_KEEP=DIR pytest tests/kernel  # keep the guest's console, output and reports in DIR
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from _pytest.reports import TestReport

from netplane.kernel import uml

REPORTS = "reports.jsonl"
GUEST_TIMEOUT = 1200.0
# A whole `netplane up` cluster runs in the guest (tests/kernel/test_trace_ipvs.py).
GUEST_MEMORY = "3G"
_RESULTS = pytest.StashKey[dict[str, list[TestReport]]]()
_FAILURE = pytest.StashKey[str]()
_REPORT_FILE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "uml: runs inside user-mode Linux (tests/kernel/conftest.py)")
    if uml.in_guest() and os.environ.get("NETPLANE_UML_REPORTS"):
        config.stash[_REPORT_FILE] = Path(os.environ["NETPLANE_UML_REPORTS"])


# -- in the guest: write every report where the host reads it ---------------------------

def pytest_runtest_logreport(report: TestReport) -> None:
    config = _CONFIG.get("config")
    if config is None or _REPORT_FILE not in config.stash:
        return
    data = config.hook.pytest_report_to_serializable(config=config, report=report)
    with config.stash[_REPORT_FILE].open("a") as f:
        f.write(json.dumps(data) + "\n")


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config


# -- on the host: one guest for every selected uml test, results replayed ---------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if uml.in_guest() or item.get_closest_marker("uml") is None:
        return None
    config = item.config
    if _RESULTS not in config.stash:
        _boot(item.session)
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = config.stash[_RESULTS].get(item.nodeid)
    if not reports:
        reports = [_synthetic(item, config.stash.get(_FAILURE, "no result from the guest"))]
    for rep in reports:
        item.ihook.pytest_runtest_logreport(report=rep)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _boot(session: pytest.Session) -> None:
    """Boots the guest with a share directory of our own, reads the reports, removes it."""
    config = session.config
    config.stash[_RESULTS] = {}
    reason = uml.unavailable()
    if reason:
        config.stash[_FAILURE] = f"SKIP:user-mode Linux cannot boot here: {reason}"
        return
    keep = os.environ.get("NETPLANE_UML_KEEP")
    share = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="np-uml-tests-"))
    items = [i for i in session.items if i.get_closest_marker("uml")]
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "--tb=short",
            *(i.nodeid for i in items)]
    env = {"NETPLANE_UML_REPORTS": f"{uml.GUEST_SHARE}/{REPORTS}", "PYTHONPATH": str(config.rootpath)}
    try:
        (share / REPORTS).unlink(missing_ok=True)
        try:
            result = uml.run(argv, cwd=config.rootpath, env=env, timeout=GUEST_TIMEOUT, share=share,
                             mem=GUEST_MEMORY)
        except uml.UmlError as exc:
            config.stash[_FAILURE] = f"the user-mode Linux guest failed: {exc}"
            return
        text = (share / REPORTS).read_text() if (share / REPORTS).exists() else ""
    finally:
        if not keep:
            shutil.rmtree(share, ignore_errors=True)
    results: dict[str, list[TestReport]] = {}
    for line in text.splitlines():
        rep = config.hook.pytest_report_from_serializable(config=config, data=json.loads(line))
        if isinstance(rep, TestReport):
            results.setdefault(rep.nodeid, []).append(rep)
    config.stash[_RESULTS] = results
    what = "reported nothing" if not results else "did not report this test"
    config.stash[_FAILURE] = (f"the guest's pytest {what} (exit {result.returncode}, "
                              f"{result.seconds:.0f} s); output tail:\n{result.output[-4000:]}")


def _synthetic(item: pytest.Item, message: str) -> TestReport:
    path, lineno, _ = item.location
    if message.startswith("SKIP:"):
        longrepr = (str(path), (lineno or 0) + 1, message[5:])
        return TestReport(item.nodeid, item.location, {}, "skipped", longrepr, "setup")
    return TestReport(item.nodeid, item.location, {}, "failed", message, "call")

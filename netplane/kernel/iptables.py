"""iptables as a transaction: `iptables-restore --noflush` with the whole change on stdin,
`iptables-save` to read back, and the variant (nf_tables or legacy) chosen as kube-proxy's
iptables wrapper chooses it. Never one `iptables` call per rule."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

VARIANTS = ("nft", "legacy")
# Seconds to wait for the legacy xtables lock another program may hold.
_LOCK_WAIT = "5"


class IptablesError(Exception):
    """iptables-restore refused the input or is missing; the message has its stderr."""


def _count_rules(variant: str) -> int:
    try:
        out = subprocess.run([f"iptables-{variant}-save"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return -1
    return sum(1 for line in out.splitlines() if line.startswith("-A "))


def detect_variant() -> str:
    """The variant that already holds rules in this network namespace (so a proxy never
    splits the data plane across two), else the one the `iptables` command points at,
    else nft. Raises when neither is installed."""
    installed = [v for v in VARIANTS if shutil.which(f"iptables-{v}-restore")]
    if not installed:
        raise IptablesError("iptables-restore is not installed (Debian package iptables)")
    if len(installed) == 1:
        return installed[0]
    counts = {v: _count_rules(v) for v in installed}
    if counts["legacy"] > counts["nft"]:
        return "legacy"
    if counts["nft"] > counts["legacy"]:
        return "nft"
    try:
        version = subprocess.run(["iptables", "--version"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    return "legacy" if "legacy" in version else "nft"


@dataclass(frozen=True)
class Iptables:
    variant: str = "nft"
    ipv6: bool = False

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"iptables variant must be one of {', '.join(VARIANTS)}")

    def command(self, what: str) -> list[str]:
        """argv of `what` ("restore", "save" or "" for plain iptables) for this variant."""
        family = "ip6tables" if self.ipv6 else "iptables"
        name = f"{family}-{self.variant}" + (f"-{what}" if what else "")
        argv = [name]
        if what in ("restore", ""):
            argv += ["-w", _LOCK_WAIT]
        return argv

    async def restore(self, text: str, *, noflush: bool = True, counters: bool = False) -> None:
        argv = self.command("restore")
        if noflush:
            argv.append("--noflush")
        if counters:
            argv.append("--counters")
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = await proc.communicate(text.encode())
        if proc.returncode != 0:
            raise IptablesError(_explain(argv[0], err.decode(errors="replace"), text))

    async def restore_stream(self, pieces: Iterable[str], *, noflush: bool = True) -> None:
        """One restore whose input is written as `pieces` are produced: the parse of what
        is written overlaps the production of the rest. Written with blocking writes on a
        thread of its own: an event loop's pipe transport may still hold unsent data when
        it is closed (seen under uvloop in user-mode Linux, where iptables-restore then
        read a truncated input and failed with "COMMIT expected")."""
        await asyncio.to_thread(self._restore_stream_blocking, pieces, noflush)

    def _restore_stream_blocking(self, pieces: Iterable[str], noflush: bool) -> None:
        argv = self.command("restore") + (["--noflush"] if noflush else [])
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stderr is not None
        sent: list[str] = []
        try:
            for piece in pieces:
                sent.append(piece)
                proc.stdin.write(piece.encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it stopped reading: its exit status and stderr say why
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise IptablesError(_explain(argv[0], err.decode(errors="replace"), "".join(sent)))

    def restore_blocking(self, text: str, *, noflush: bool = True) -> None:
        argv = self.command("restore") + (["--noflush"] if noflush else [])
        proc = subprocess.run(argv, input=text.encode(), capture_output=True, check=False)
        if proc.returncode != 0:
            raise IptablesError(_explain(argv[0], proc.stderr.decode(errors="replace"), text))

    def save_blocking(self, table: str | None = None, *, counters: bool = False) -> str:
        argv = self.command("save")
        if table:
            argv += ["-t", table]
        if counters:
            argv.append("-c")
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise IptablesError(f"{argv[0]} failed: {proc.stderr.strip()}")
        return proc.stdout

    async def save(self, table: str | None = None, *, counters: bool = False) -> str:
        argv = self.command("save")
        if table:
            argv += ["-t", table]
        if counters:
            argv.append("-c")
        proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise IptablesError(f"{argv[0]} failed: {err.decode(errors='replace').strip()}")
        return out.decode()

    def run_blocking(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One plain iptables call, for the few checks a transaction cannot express
        (`-C` to test whether a jump exists); never in a loop over services."""
        return subprocess.run([*self.command(""), *args], capture_output=True, text=True, check=False)


def _explain(cmd: str, stderr: str, text: str) -> str:
    """iptables-restore names the failing line by number: quote it."""
    message = stderr.strip() or "failed"
    lines = text.splitlines()
    for word in message.replace(":", " ").split():
        if word.isdigit() and 0 < int(word) <= len(lines):
            return f"{cmd}: {message} (line {word}: {lines[int(word) - 1]!r})"
    return f"{cmd}: {message}"


def chains_in(saved: str, table: str) -> set[str]:
    """The chain names declared in `table` of an iptables-save dump."""
    out: set[str] = set()
    current = None
    for line in saved.splitlines():
        if line.startswith("*"):
            current = line[1:].strip()
        elif line.startswith(":") and current == table:
            out.add(line[1:].split()[0])
    return out

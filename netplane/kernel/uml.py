"""User-mode Linux as a throw-away machine for what this kernel lacks (IPVS, dummy links).

`run(argv)` boots the Debian `user-mode-linux` kernel over this machine's own root file
system (hostfs, mounted read-only, so the guest cannot change the host's files), with
tmpfs over /run, /tmp and /dev/shm, the kernel modules of /usr/lib/uml/modules/<version>
loadable, loopback up, and runs `argv` as root in it; then powers off. The guest
writes its output, exit code and any files the caller wants into a share directory: a
host directory the guest mounts read-write (hostfs) at `GUEST_SHARE`.

Tests (tests/kernel/) and benchmarks (bench/proxy_ipvs.py) use it:

    from netplane.kernel import uml
    reason = uml.unavailable()          # None, or why it cannot boot here
    result = uml.run([sys.executable, "-m", "pytest", "tests/kernel"], modules=uml.IPVS_MODULES)
    result.returncode, result.output    # the command's exit code and output

Inside the guest, `NETPLANE_UML=1` is set (see `in_guest`), and `GUEST_SHARE` is the
share directory. Guests are independent: a crash or timeout kills the whole machine and
leaves nothing behind on the host but the share directory, which `run` removes unless
the caller passed its own.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MODULES_ROOT = Path("/usr/lib/uml/modules")
GUEST_SHARE = "/tmp/.np-share"
ENV_FLAG = "NETPLANE_UML"
# What the IPVS proxy needs: IPVS and its schedulers, the dummy link for kube-ipvs0, veth
# for pods, ipset and the iptables matches on it, NAT and conntrack.
IPVS_MODULES = (
    "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_sh", "ip_vs_mh", "ip_vs_sed",
    "ip_vs_nq", "ip_vs_dh", "ip_vs_lblc", "ip_vs_lblcr", "ip_vs_fo", "ip_vs_ovf",
    "dummy", "veth", "bridge", "ip_set", "ip_set_hash_ip", "ip_set_hash_ipport", "ip_set_hash_ipportip",
    "ip_set_hash_ipportnet", "ip_set_bitmap_port", "xt_set", "nf_conntrack", "nf_nat", "iptable_nat",
    "iptable_filter", "xt_MASQUERADE", "xt_mark", "xt_comment", "xt_addrtype", "xt_conntrack",
    "iptable_mangle", "ipt_REJECT", "xt_statistic", "xt_recent", "xt_nat", "xt_tcpudp", "xt_physdev",
    "br_netfilter", "xt_multiport", "nf_conntrack_netlink",
)
# Debian's UML kernel has no nf_tables NAT (no nft_chain_nat): use iptables-legacy in the guest.
IPTABLES_VARIANT = "legacy"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class UmlError(Exception):
    """The guest could not be booted or did not finish; the message says what to do."""


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str   # the command's stdout and stderr
    console: str  # the guest kernel's console (boot messages, init's complaints)
    seconds: float


def in_guest() -> bool:
    return os.environ.get(ENV_FLAG) == "1"


def kernel() -> str | None:
    return shutil.which("linux") or shutil.which("linux.uml")


def kernel_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def unavailable() -> str | None:
    """Why user-mode Linux cannot boot here, or None when it can."""
    binary = kernel()
    if binary is None:
        return "user-mode Linux is not installed (Debian package user-mode-linux; `make deps` installs it)"
    if shutil.which("modprobe") is None:
        return "modprobe is missing (Debian package kmod), so the guest cannot load IPVS"
    try:
        version = kernel_version(binary)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{binary} does not start: {exc}"
    if not (MODULES_ROOT / version).is_dir():
        return f"no modules for user-mode Linux {version} in {MODULES_ROOT}"
    if not Path("/dev/shm").is_dir():
        return "/dev/shm is missing (user-mode Linux keeps its memory there)"
    return None


# The guest mounts tmpfs over these: host paths under them must be mounted back (hostfs).
_GUEST_TMPFS = ("/tmp", "/run", "/dev/shm")


def hidden_paths(paths: Sequence[str]) -> list[str]:
    """Those of `paths` that the guest's tmpfs mounts would hide (a checkout or a venv under
    /tmp), without any that another one contains."""
    hidden = sorted({os.path.normpath(p) for p in paths
                     if any(p == root or p.startswith(root + "/") for root in _GUEST_TMPFS)})
    return [p for p in hidden if not any(p.startswith(q + "/") for q in hidden if q != p)]


def _init_script(version: str, share: Path, modules: Sequence[str], command: Path,
                 host_paths: Sequence[str] = ()) -> str:
    modprobe = f"{GUEST_SHARE}-modprobe"
    remounts = "\n".join(f"mkdir -p {shlex.quote(p)} && mount -r -t hostfs -o {shlex.quote(p)} hostfs "
                          f"{shlex.quote(p)}" for p in host_paths)
    loads = "\n".join(f"{modprobe} {shlex.quote(m)} 2>>{GUEST_SHARE}/modprobe.log" for m in modules)
    return f"""#!/bin/sh
# netplane's user-mode Linux init: mount, load modules, run the command, power off.
export PATH={_PATH}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
# Host directories the tmpfs mounts just hid (the checkout, the venv), read-only again.
{remounts}
mkdir -p {GUEST_SHARE} /tmp/.np-modules/lib/modules/{version}
mount -t hostfs -o {shlex.quote(str(share))} hostfs {GUEST_SHARE}
mount --bind {MODULES_ROOT}/{version} /tmp/.np-modules/lib/modules/{version}
# The root file system is the host's, read-only, and has no /lib/modules: the kernel's own
# module requests (iptables matches, IPVS schedulers) go through this wrapper too.
printf '#!/bin/sh\\nexec /sbin/modprobe -d /tmp/.np-modules "$@"\\n' > {modprobe}
chmod +x {modprobe}
echo {modprobe} > /proc/sys/kernel/modprobe
{loads}
ip link set lo up
hostname uml
. {GUEST_SHARE}/{command.name} > {GUEST_SHARE}/output 2>&1
echo $? > {GUEST_SHARE}/rc.tmp && mv {GUEST_SHARE}/rc.tmp {GUEST_SHARE}/rc
sync
poweroff -f
"""


def _command_script(argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> str:
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    return f"""cd {shlex.quote(cwd)} || exit 97
{exports}
{shlex.join(argv)}
"""


def run(argv: Sequence[str], *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
        mem: str = "1536M", modules: Sequence[str] = IPVS_MODULES, timeout: float = 600.0,
        share: Path | None = None) -> Result:
    """Boots a guest, runs `argv` in `cwd` (default: the current directory) with `env`
    added to a clean environment (PATH, HOME, NETPLANE_UML=1, PYTHONDONTWRITEBYTECODE=1),
    and returns its exit code and output. `share`: a host directory the guest can write
    (default: a temporary one, removed afterwards). Raises UmlError when no guest can be
    booted or it does not power off within `timeout` seconds (then it is killed)."""
    reason = unavailable()
    if reason:
        raise UmlError(reason)
    binary = kernel()
    assert binary is not None
    version = kernel_version(binary)
    own_share = share is None
    share_dir = Path(tempfile.mkdtemp(prefix="np-uml-")) if share is None else share
    share_dir.mkdir(parents=True, exist_ok=True)
    full_env = {"PATH": _PATH, "HOME": "/tmp", ENV_FLAG: "1", "PYTHONDONTWRITEBYTECODE": "1",
                "LANG": "C.UTF-8", **(env or {})}
    try:
        command = share_dir / "command.sh"
        command.write_text(_command_script(argv, str(cwd or os.getcwd()), full_env))
        init = share_dir / "init"
        workdir = str(cwd or os.getcwd())
        init.write_text(_init_script(version, share_dir, modules, command,
                                     hidden_paths([workdir, sys.prefix, os.path.dirname(sys.executable)])))
        init.chmod(0o755)
        for stale in ("rc", "output", "modprobe.log"):
            (share_dir / stale).unlink(missing_ok=True)
        console = share_dir / "console.log"
        # No `rw`: the host's root file system is mounted read-only in the guest.
        cmdline = [binary, f"mem={mem}", "rootfstype=hostfs", f"init={init}", "con=null",
                   "con0=fd:0,fd:1", "quiet"]
        started = time.monotonic()
        with console.open("wb") as out:
            # UML backs guest memory with a file in TMPDIR: tmpfs, never the disk.
            proc = subprocess.Popen(cmdline, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, "TMPDIR": "/dev/shm"})
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                raise UmlError(f"the user-mode Linux guest did not finish within {timeout:.0f} s; "
                               f"console tail: {_tail(console)}") from None
            finally:
                if proc.poll() is None:
                    _kill(proc)
        seconds = time.monotonic() - started
        rc_file = share_dir / "rc"
        output = (share_dir / "output").read_text(errors="replace") if (share_dir / "output").exists() else ""
        if not rc_file.exists():
            raise UmlError(f"the guest stopped before its command finished (exit {proc.returncode}); "
                           f"console tail: {_tail(console)}; output tail: {output[-2000:]}")
        return Result(int(rc_file.read_text().strip() or "1"), output,
                      console.read_text(errors="replace"), seconds)
    finally:
        if own_share:
            shutil.rmtree(share_dir, ignore_errors=True)


def _kill(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    # UML runs every guest process as a host process of its own session: kill them all,
    # and return only once they are gone (they die asynchronously, after the kernel process).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""

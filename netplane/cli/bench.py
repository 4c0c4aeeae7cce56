"""`netplane bench compare`: the proxy modes side by side, one report."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from netplane.cli.main import CliError
from netplane.proxy import modes as proxy_modes

GUEST_MEMORY = "3G"


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need one or more positive numbers: {text!r}")
    return values


def _modes(text: str) -> tuple[str, ...]:
    values = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [m for m in values if m not in proxy_modes.ALL]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(proxy_modes.ALL)}; got {text!r}")
    return values


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks of netplane's data planes")
    verbs = p.add_subparsers(dest="bench_verb", metavar="VERB")
    verbs.required = True
    c = verbs.add_parser(
        "compare", help="every proxy mode at every size, measured the same way; a Markdown report",
        description="Builds the same cluster state for each proxy mode in fresh network namespaces and "
        "measures sync times, network programming latency, connection set-up, requests/s, bulk "
        "throughput, CPU, memory and the spread over endpoints; writes report.md, PNG plots and "
        "results.json to --out. Where IPVS is asked for and this kernel has none, everything runs "
        "inside user-mode Linux. Needs root, nginx, wrk and curl (`make bench-deps`).")
    c.add_argument("--modes", type=_modes, default=proxy_modes.ALL, help="comma-separated (default: all)")
    c.add_argument("--services", type=_ints, default=(100, 1000, 5000, 10000), help="comma-separated sizes")
    c.add_argument("--endpoints", type=int, default=10, help="endpoints per service (and endpoint servers)")
    c.add_argument("--out", type=Path, default=Path("bench/results/compare"), help="the report's directory")
    c.add_argument("--where", choices=("auto", "host", "uml"), default="auto",
                   help="auto: in user-mode Linux only when IPVS is asked for and this kernel lacks it")
    c.add_argument("--changes", type=int, default=5, help="one-change syncs measured per run")
    c.add_argument("--programming-changes", type=int, default=10, help="API writes timed to the data plane")
    c.add_argument("--requests", type=int, default=1000, help="new connections timed one by one")
    c.add_argument("--wrk-seconds", type=float, default=5.0)
    c.add_argument("--no-bulk", action="store_true", help="skip the 1 GiB download")
    c.add_argument("--progress-file", type=Path, help=argparse.SUPPRESS)  # the guest's progress, for the host
    c.set_defaults(func=compare)


def _plan(args: argparse.Namespace) -> Any:
    from netplane.bench.compare import Plan

    if args.endpoints < 1 or args.endpoints > 200:
        raise CliError("--endpoints must be between 1 and 200", 2)
    options = {"changes": args.changes, "programming": args.programming_changes, "requests": args.requests,
               "wrk_seconds": args.wrk_seconds, "bulk": not args.no_bulk}
    return Plan(modes=args.modes, services=args.services, endpoints=args.endpoints, out=args.out.resolve(),
                options=options)


def compare(args: argparse.Namespace) -> int:
    from netplane.bench import compare as cmp

    plan = _plan(args)
    where = args.where
    if where == "auto":
        where = "uml" if "ipvs" in plan.modes and not cmp.has_ipvs() else "host"
    try:
        if where == "uml":
            results = _in_guest(args, plan)
        else:
            results = cmp.compare(plan, progress_file=args.progress_file)
    except cmp.CompareError as exc:
        raise CliError(str(exc)) from exc
    print(f"{len(results['runs'])} runs in {results['duration_s']} s; report: {plan.out / 'report.md'}")
    return 0


def _in_guest(args: argparse.Namespace, plan: Any) -> dict[str, Any]:
    """The same command inside user-mode Linux, its output written to a share directory and
    copied to --out; the host draws the progress bar from the guest's progress file."""
    import shutil
    import tempfile

    from tqdm import tqdm

    from netplane.bench.compare import STEPS, CompareError, write
    from netplane.kernel import uml

    reason = uml.unavailable()
    if reason:
        raise CliError(f"IPVS needs user-mode Linux here, which cannot boot: {reason}")
    share = Path(tempfile.mkdtemp(prefix="np-bench-uml-"))
    argv = [sys.executable, "-m", "netplane.cli.main", "bench", "compare", "--where", "host",
            "--modes", ",".join(plan.modes), "--services", ",".join(map(str, plan.services)),
            "--endpoints", str(plan.endpoints), "--out", f"{uml.GUEST_SHARE}/out",
            "--progress-file", f"{uml.GUEST_SHARE}/progress", "--changes", str(args.changes),
            "--programming-changes", str(args.programming_changes), "--requests", str(args.requests),
            "--wrk-seconds", str(args.wrk_seconds), *(["--no-bulk"] if args.no_bulk else [])]
    box: dict[str, Any] = {}

    def boot() -> None:
        try:
            box["result"] = uml.run(argv, mem=GUEST_MEMORY, timeout=6 * 3600, share=share)
        except Exception as exc:  # reported on the main thread
            box["error"] = exc

    thread = threading.Thread(target=boot, daemon=True)
    thread.start()
    bar = tqdm(total=len(plan.runs) * len(STEPS), unit="step", desc="user-mode Linux", file=sys.stderr)
    progress = share / "progress"
    seen = 0
    try:
        while thread.is_alive():
            thread.join(0.5)
            lines = progress.read_text().splitlines() if progress.exists() else []
            if len(lines) > seen:  # redraw only on news: the bar may go to a log file
                seen = len(lines)
                last = json.loads(lines[-1])
                bar.set_description(f"uml: {last['run']}", refresh=False)
                bar.set_postfix_str(last["step"], refresh=False)
                bar.update(seen - bar.n)
        bar.close()
        if "error" in box:
            raise CliError(f"user-mode Linux: {box['error']}")
        result = box["result"]
        if result.returncode != 0:
            raise CompareError(f"the comparison failed inside user-mode Linux (exit {result.returncode}):\n"
                               f"{result.output[-4000:]}")
        results = json.loads((share / "out" / "results.json").read_text())
        results["machine"]["host_kernel"] = _host_kernel()
        plan.out.mkdir(parents=True, exist_ok=True)
        write(results, plan.out)  # report and plots drawn again here, naming the host's kernel too
        return results
    finally:
        shutil.rmtree(share, ignore_errors=True)


def _host_kernel() -> str:
    import platform

    return platform.release()

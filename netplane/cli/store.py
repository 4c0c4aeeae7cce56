"""`netplane store migrate`: copies every object from one store to another (control/store)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from netplane.cli.main import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("store", help="work with the apiserver's store (SQLite or etcd)",
                       description="Operations on the store behind the apiserver.")
    ops = p.add_subparsers(dest="store_command", metavar="OPERATION")
    ops.required = True
    m = ops.add_parser("migrate", help="copy every object from one store to another",
                       description="Copies every object (the live state, not its history) from "
                       "--from to --to, e.g. from the embedded SQLite file to etcd. Stop the "
                       "apiservers first. Objects get new resourceVersions; clients re-list.")
    m.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]")
    m.add_argument("--to", dest="target", required=True, metavar="URL",
                   help="sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]")
    m.add_argument("--overwrite", action="store_true",
                   help="copy into a target that is not empty, replacing the keys it holds")
    m.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for an etcd member to answer")
    m.set_defaults(func=run_migrate)


def _check(url: str, role: str) -> None:
    """Refuses bad URLs before anything is opened; a source file must exist (opening a
    missing SQLite file would create it, and copy nothing)."""
    from control.store.urls import SQLiteURL, parse_store_url

    try:
        spec = parse_store_url(url)
    except ValueError as exc:
        raise CliError(f"--{role}: {exc}", 2) from exc
    if role == "from" and isinstance(spec, SQLiteURL) and not Path(spec.path).is_file():
        raise CliError(f"--from: no such file: {spec.path}")


def run_migrate(args: argparse.Namespace) -> int:
    from netplane.cli.loop import run_async

    _check(args.source, "from")
    _check(args.target, "to")
    if args.source == args.target:
        raise CliError("--from and --to name the same store", 2)
    return run_async(_migrate(args))


async def _migrate(args: argparse.Namespace) -> int:
    from control.store import StoreError, open_store
    from control.store.migrate import SourceChangedError, TargetNotEmptyError, migrate

    stores = []
    try:
        for role, url in (("from", args.source), ("to", args.target)):
            try:
                # No background compaction while copying: it is a one-off run.
                stores.append(await open_store(_without_compaction(url),
                                               connect_timeout=args.connect_timeout))
            except StoreError as exc:
                raise CliError(f"--{role}: cannot open {url}: {exc}") from exc
        source, target = stores
        try:
            result = await migrate(source, target, overwrite=args.overwrite,
                                   progress=lambda n: print(f"\r{n} objects copied", end="",
                                                            file=sys.stderr, flush=True))
        except TargetNotEmptyError as exc:
            raise CliError(f"{exc} ({args.target}); migrate into an empty store, or pass "
                           "--overwrite to replace the keys it holds") from exc
        except SourceChangedError as exc:
            raise CliError(f"{exc}: stop every apiserver that uses {args.source}, then run "
                           "again with --overwrite") from exc
        except StoreError as exc:
            raise CliError(f"copy failed: {exc}") from exc
        print(file=sys.stderr)
        print(f"copied {result.copied} objects ({result.replaced} replaced) from {args.source} at "
              f"revision {result.revision} to {args.target}")
        return 0
    finally:
        for store in stores:
            await store.close()


def _without_compaction(url: str) -> str:
    if "compact_interval=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "compact_interval=0"

"""The `netplane` command: one subcommand per component, each in its own module.

Each subcommand module exposes `register(subparsers)`, which adds its parser and
sets `func` (a callable taking the parsed args and returning the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Subcommand modules, in the order `netplane --help` lists them.
_SUBCOMMANDS = (
    "netplane.cli.cluster",
    "netplane.cli.apiserver",
    "netplane.cli.scheduler",
    "netplane.cli.controller_manager",
    "netplane.cli.kubelet",
    "netplane.cli.proxy",
    "netplane.cli.ctl",
    "netplane.cli.agnhost",
    "netplane.cli.bench",
    "netplane.cli.trace",
    "netplane.cli.dns",
    "netplane.cli.ingress",
    "netplane.cli.store",
)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netplane", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"netplane {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run as `python -m netplane.cli.main`, this file is `__main__`, and the subcommands'
    # `CliError` (imported from netplane.cli.main) would be a different class than the one
    # caught above: call the real module's main instead.
    from netplane.cli.main import main as _main

    sys.exit(_main())

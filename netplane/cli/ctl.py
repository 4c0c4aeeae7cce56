"""`netplane ctl`: apply, get, describe, delete, logs and exec, kubectl-style."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from netplane.cli.main import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("ctl", help="a small kubectl: apply, get, describe, delete, logs, exec",
                       description="Talks to the apiserver of a kubeconfig (--kubeconfig, else "
                       "$KUBECONFIG, else ~/.netplane/admin.kubeconfig).")
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--context", default=None)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    def common(v: argparse.ArgumentParser) -> None:
        v.add_argument("-n", "--namespace", default=None)

    a = verbs.add_parser("apply", help="create or update objects from files or folders")
    a.add_argument("-f", "--filename", action="append", required=True)
    common(a)
    g = verbs.add_parser("get", help="list or show objects")
    g.add_argument("kind")
    g.add_argument("names", nargs="*")
    g.add_argument("-o", "--output", choices=("wide", "yaml", "json", "name"), default=None)
    g.add_argument("-l", "--selector", default=None)
    g.add_argument("-A", "--all-namespaces", action="store_true")
    common(g)
    d = verbs.add_parser("describe", help="show an object in detail")
    d.add_argument("kind")
    d.add_argument("name")
    common(d)
    rm = verbs.add_parser("delete", help="delete objects by name or from files")
    rm.add_argument("kind", nargs="?")
    rm.add_argument("names", nargs="*")
    rm.add_argument("-f", "--filename", action="append", default=[])
    rm.add_argument("--ignore-not-found", action="store_true")
    common(rm)
    lg = verbs.add_parser("logs", help="print a container's log")
    lg.add_argument("pod")
    lg.add_argument("-c", "--container", default=None)
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--tail", type=int, default=None)
    lg.add_argument("-p", "--previous", action="store_true")
    common(lg)
    ex = verbs.add_parser("exec", help="run a command in a pod: exec POD -- CMD...")
    ex.add_argument("pod")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.add_argument("-c", "--container", default=None)
    ex.add_argument("-i", "--stdin", action="store_true", help="pass this terminal's stdin")
    common(ex)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netplane.cli.loop import run_async
    from netplane.client.kubeconfig import KubeconfigError, load_kubeconfig
    from netplane.client.rest import ApiError
    from netplane.ctl import commands
    from netplane.ctl.apply import ApplyError
    from netplane.ctl.manifests import ManifestError
    from netplane.ctl.podio import PodIOError

    try:
        config = load_kubeconfig(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        raise CliError(str(exc)) from exc
    if args.verb == "exec":
        if args.command[:1] == ["--"]:
            args.command = args.command[1:]
        if not args.command:
            raise CliError("exec needs a command: netplane ctl exec POD -- CMD [ARGS...]", 2)
    try:
        return int(run_async(commands.run(config, args)) or 0)
    except (ManifestError, ApplyError, PodIOError, commands.UsageError) as exc:
        raise CliError(str(exc)) from exc
    except ApiError as exc:
        raise CliError(f"{exc.reason or exc.code}: {exc.message}") from exc
    except OSError as exc:
        raise CliError(f"cannot reach the apiserver at {config.server}: {exc}") from exc
    finally:
        sys.stdout.flush()

"""`netplane ctl`: apply, get, describe, delete, logs, exec and port-forward, kubectl-style.

Argument parsing and dispatch only; the verbs live in netplane/ctl.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from netplane.cli.durations import parse_duration
from netplane.cli.main import CliError
from netplane.ctl import forwardspec


def _duration(text: str) -> float | None:
    """kubectl's durations; 0 means no limit."""
    return parse_duration(text) or None


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _argument(parse: Any) -> Any:
    """An argparse type from a forwardspec parser: its message, not argparse's generic one."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except forwardspec.ForwardSpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    # On `ctl` itself and again on every verb (there with SUPPRESS, so a verb that does not
    # repeat them keeps what was given before it): `ctl -n x get` and `ctl get -n x` agree.
    parser.add_argument("--kubeconfig", default=default, metavar="PATH",
                        help="kubeconfig file (default: $KUBECONFIG, else ~/.netplane/admin.kubeconfig)")
    parser.add_argument("--context", default=default, help="kubeconfig context (default: current)")
    parser.add_argument("-n", "--namespace", default=default,
                        help="namespace (default: the context's, else default)")


def _verb(verbs: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    v: argparse.ArgumentParser = verbs.add_parser(name, help=help_text, description=help_text)
    _connection_options(v, argparse.SUPPRESS)
    return v


def _selection(v: argparse.ArgumentParser) -> None:
    v.add_argument("-l", "--selector", default=None, help="label selector, e.g. app=web,tier!=db")
    v.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")


def register(sub: Any) -> None:
    p = sub.add_parser("ctl", help="a small kubectl: apply, get, describe, delete, logs, exec, port-forward",
                       description="Talks to the apiserver of a kubeconfig, as kubectl does.")
    _connection_options(p, None)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    a = _verb(verbs, "apply", "create or update objects from files, folders (recursively) or - (stdin)")
    a.add_argument("-f", "--filename", action="append", required=True, metavar="PATH")
    a.add_argument("-R", "--recursive", action="store_true", help="(always on: folders are read whole)")
    a.add_argument("--dry-run", choices=("none", "client", "server"), default="none", nargs="?",
                   const="client")

    g = _verb(verbs, "get", "list objects, or show some: get KIND[,KIND] [NAME...] | get KIND/NAME...")
    g.add_argument("resources", nargs="+", metavar="KIND [NAME...]")
    g.add_argument("-o", "--output", choices=("wide", "yaml", "json", "name"), default=None)
    _selection(g)
    g.add_argument("--field-selector", default=None, help="e.g. spec.nodeName=node-1")
    g.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    g.add_argument("--no-headers", action="store_true", help="leave out the header line")

    d = _verb(verbs, "describe", "show objects in detail: describe KIND [NAME...] | describe KIND/NAME")
    d.add_argument("resources", nargs="+", metavar="KIND [NAME...]")
    _selection(d)

    rm = _verb(verbs, "delete", "delete objects: KIND NAME... | KIND/NAME | KIND -l SEL | -f PATH")
    rm.add_argument("resources", nargs="*", metavar="KIND [NAME...]")
    rm.add_argument("-f", "--filename", action="append", default=[], metavar="PATH")
    rm.add_argument("-l", "--selector", default=None)
    rm.add_argument("--all", action="store_true", help="every object of the kind in the namespace")
    rm.add_argument("--ignore-not-found", action="store_true")
    rm.add_argument("--grace-period", type=int, default=None, metavar="SECONDS")
    rm.add_argument("--now", action="store_true", help="a grace period of 1 second")
    rm.add_argument("--cascade", choices=("background", "foreground", "orphan"), default="background")
    rm.add_argument("--wait", type=_bool, nargs="?", const=True, default=True,
                    help="wait until the objects are gone (default true; --wait=false to not)")
    rm.add_argument("--timeout", type=_duration, default=None, help="how long to wait (default: no limit)")
    rm.add_argument("--dry-run", choices=("none", "client", "server"), default="none", nargs="?",
                    const="client")

    lg = _verb(verbs, "logs", "print a container's log")
    lg.add_argument("pod")
    lg.add_argument("-c", "--container", default=None)
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--tail", type=int, default=None)
    lg.add_argument("-p", "--previous", action="store_true")

    ex = _verb(verbs, "exec", "run a command in a pod: exec POD -- CMD...")
    ex.add_argument("pod")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.add_argument("-c", "--container", default=None)
    ex.add_argument("-i", "--stdin", action="store_true", help="pass this terminal's stdin")

    pf = _verb(verbs, "port-forward", "forward local ports to a pod, or to a pod of a service or deployment: "
                                      "port-forward TYPE/NAME [LOCAL_PORT:]REMOTE_PORT...")
    pf.add_argument("target", type=_argument(forwardspec.parse_target), metavar="TYPE/NAME",
                    help="NAME or pod/NAME, svc/NAME, deploy/NAME")
    pf.add_argument("ports", nargs="+", type=_argument(forwardspec.parse_port),
                    metavar="[LOCAL_PORT:]REMOTE_PORT",
                    help="LOCAL omitted: the same as REMOTE; empty (:REMOTE): a free port; REMOTE may "
                         "name a port (of the service, for svc/NAME)")
    pf.add_argument("--address", action="append", default=None, metavar="ADDRESS[,ADDRESS]",
                    help="local addresses to listen on (default 127.0.0.1; localhost: 127.0.0.1 and ::1)")
    p.set_defaults(func=run)


def _schema_for(group: str, kind: str) -> Any:
    """The apiserver's own patch metadata (the Go struct tags kubectl compiles in) for
    built-in kinds; None for others, which get a JSON merge patch as kubectl sends them."""
    from control.apiserver.patchmeta import meta_for

    meta = meta_for(group, kind)
    return None if meta.name == "unknown" else meta


def run(args: argparse.Namespace) -> int:
    import aiohttp

    from netplane.cli.loop import run_async
    from netplane.client.kubeconfig import KubeconfigError, load_kubeconfig
    from netplane.client.rest import ApiError
    from netplane.ctl import commands
    from netplane.ctl.errors import CtlError, api_error_text
    from netplane.ctl.manifests import ManifestError
    from netplane.ctl.podio import PodIOError
    from netplane.ctl.resources import ResourceError

    if args.verb == "port-forward":
        try:
            args.address = forwardspec.split_addresses(args.address or ["127.0.0.1"])
        except forwardspec.ForwardSpecError as exc:
            raise CliError(str(exc), 2) from exc
    if args.verb == "exec":
        if args.command[:1] == ["--"]:
            args.command = args.command[1:]
        if not args.command:
            raise CliError("exec needs a command: netplane ctl exec POD -- CMD [ARGS...]", 2)
    try:
        config = load_kubeconfig(args.kubeconfig, args.context)
    except KubeconfigError as exc:
        raise CliError(str(exc)) from exc
    try:
        return int(run_async(commands.run(config, args, _schema_for)) or 0)
    except (ManifestError, CtlError, ResourceError, PodIOError, KubeconfigError) as exc:
        raise CliError(str(exc)) from exc
    except ApiError as exc:
        raise CliError(api_error_text(exc)) from exc
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        raise CliError(f"cannot reach the apiserver at {config.server}: {exc or type(exc).__name__}; "
                       "is it running?") from exc
    finally:
        sys.stdout.flush()

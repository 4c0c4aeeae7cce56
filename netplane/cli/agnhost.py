"""`netplane agnhost`: the built-in test server (Kubernetes' agnhost, in part):
serve-hostname, netexec, connect, pause."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netplane.cli.durations import parse_duration
from netplane.cli.main import CliError

_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}


def _go_bool(text: str) -> bool:
    """Go flag syntax, so manifests written for agnhost work: --http=false."""
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _bool_flag(p: argparse.ArgumentParser, name: str, help: str) -> None:
    p.add_argument(f"--{name}", nargs="?", const=True, default=None, type=_go_bool, help=help)


def _duration(text: str) -> float:
    return parse_duration(text)


def register(sub: Any) -> None:
    p = sub.add_parser("agnhost", help="the built-in test server (hostname, echo, dial, ...)",
                       description="Test servers in the spirit of Kubernetes' agnhost image.")
    cmds = p.add_subparsers(dest="agnhost_command", metavar="SUBCOMMAND")
    cmds.required = True

    s = cmds.add_parser("serve-hostname", help="answer every connection with the hostname",
                        description="Answers each TCP connection, UDP datagram or HTTP request "
                        "with the hostname ($HOSTNAME, else the kernel's). HTTP by default.")
    s.add_argument("--port", type=int, default=9376)
    _bool_flag(s, "tcp", "serve raw TCP (write the hostname, close); turns HTTP off")
    _bool_flag(s, "udp", "also serve UDP on the same port number")
    _bool_flag(s, "http", "serve HTTP (default, unless --tcp)")
    _bool_flag(s, "close", "HTTP: close the connection after each answer")
    s.set_defaults(func=_serve_hostname)

    n = cmds.add_parser("netexec", help="the e2e network test server (HTTP + UDP)",
                        description="HTTP: /, /hostname, /echo?msg=, /clientip, /header?key=, "
                        "/healthz, /readyz, /fail-readiness, /pass-readiness, /dial?request=&"
                        "host=&port=&protocol=http|udp&tries=, /exit?code=, /shell?cmd= (with "
                        "--allow-shell). UDP: hostname, echo <msg>, clientip.")
    n.add_argument("--http-port", type=int, default=8080)
    n.add_argument("--udp-port", type=int, default=8081, help="-1 disables UDP")
    n.add_argument("--allow-shell", action="store_true", help="enable /shell?cmd= (runs /bin/sh -c)")
    n.add_argument("--not-ready-file", type=Path, default=None,
                   help="/readyz fails while this file exists")
    n.add_argument("--delay-shutdown", type=_duration, default=0.0,
                   help="after SIGTERM, fail /readyz and keep serving this long (seconds or 5s)")
    n.set_defaults(func=_netexec)

    c = cmds.add_parser("connect", help="exit 0 if a TCP connection to HOST:PORT opens",
                        description="Prints TIMEOUT, REFUSED or OTHER: <error> and exits 1 otherwise.")
    c.add_argument("target", metavar="HOST:PORT")
    c.add_argument("--timeout", type=_duration, default=5.0)
    c.set_defaults(func=_connect)

    z = cmds.add_parser("pause", help="sleep until SIGTERM/SIGINT")
    z.set_defaults(func=_pause)


def _port(value: int, flag: str, allow_disabled: bool = False) -> None:
    if allow_disabled and value == -1:
        return
    if not 0 <= value <= 65535:
        raise CliError(f"{flag} must be a port number (0-65535){' or -1' if allow_disabled else ''}", 2)


def _serve_hostname(args: argparse.Namespace) -> int:
    from netplane.agnhost.runner import run_serve_hostname
    from netplane.agnhost.serve_hostname import ServeHostnameOptions
    from netplane.cli.loop import run_async

    _port(args.port, "--port")
    tcp, udp = bool(args.tcp), bool(args.udp)
    http = args.http if args.http is not None else not tcp
    if tcp and http:
        raise CliError("can't serve both --tcp and --http on one port; pass --http=false", 2)
    if not (tcp or udp or http):
        raise CliError("nothing to serve: pass --tcp, --udp or --http", 2)
    opts = ServeHostnameOptions(port=args.port, tcp=tcp, udp=udp, http=http, close=bool(args.close))
    try:
        return run_async(run_serve_hostname(opts))
    except OSError as exc:
        raise CliError(f"cannot serve on port {args.port}: {exc.strerror or exc}") from exc


def _netexec(args: argparse.Namespace) -> int:
    from netplane.agnhost.netexec import NetexecOptions
    from netplane.agnhost.runner import run_netexec
    from netplane.cli.loop import run_async

    _port(args.http_port, "--http-port")
    _port(args.udp_port, "--udp-port", allow_disabled=True)
    opts = NetexecOptions(http_port=args.http_port, udp_port=args.udp_port,
                          allow_shell=args.allow_shell, not_ready_file=args.not_ready_file,
                          delay_shutdown=args.delay_shutdown)
    try:
        return run_async(run_netexec(opts))
    except OSError as exc:
        raise CliError(f"cannot serve on ports {args.http_port}/{args.udp_port}: "
                       f"{exc.strerror or exc}") from exc


def _connect(args: argparse.Namespace) -> int:
    from netplane.agnhost.runner import run_connect
    from netplane.cli.loop import run_async

    host, sep, port = args.target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise CliError(f"want HOST:PORT, got {args.target!r}", 2)
    return run_async(run_connect(host, int(port), args.timeout))


def _pause(args: argparse.Namespace) -> int:
    from netplane.agnhost.runner import run_pause
    from netplane.cli.loop import run_async

    return run_async(run_pause())

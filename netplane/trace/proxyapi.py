"""What a node's proxy says about itself on its metrics port (kube-proxy's 127.0.0.1:10249,
inside the node's network namespace): its mode (/proxyMode) and the views of its state
that a backend publishes under /debug/."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from netplane.kernel import netns
from netplane.trace.namespaces import NodeHandle

METRICS_PORT = 10249


class ProxyUnreachable(Exception):
    """No proxy answers on the node; the message says what to check."""


def _get(node: NodeHandle, path: str, port: int) -> str:
    url = f"http://127.0.0.1:{port}{path}"

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()

    try:
        return netns.run_in(node.netns, fetch)
    except urllib.error.HTTPError as exc:
        raise ProxyUnreachable(f"the proxy on node {node.name} answered {exc.code} to {path}: is it an older "
                               "netplane proxy? restart it with this version") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProxyUnreachable(f"no proxy on node {node.name}: nothing answers on 127.0.0.1:{port} in its "
                               f"network namespace {node.netns} ({reason}); is `netplane proxy` running "
                               "there?") from None


def proxy_mode(node: NodeHandle, port: int = METRICS_PORT) -> str:
    return _get(node, "/proxyMode", port).strip()


def debug_view(node: NodeHandle, name: str, query: dict[str, str] | None = None,
               port: int = METRICS_PORT) -> Any:
    suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
    return json.loads(_get(node, f"/debug/{name}{suffix}", port))

"""The proxy modes and where each backend lives. The core never imports a backend; the
command line builds the one asked for from this table."""

from __future__ import annotations

import importlib
from typing import Any

ALL = ("userspace", "iptables", "ipvs")
# mode -> "module:class"; a mode missing here is not built yet.
BACKENDS = {
    "userspace": "netplane.proxy_userspace.backend:UserspaceBackend",
    "iptables": "netplane.proxy_iptables.backend:IptablesBackend",
    "ipvs": "netplane.proxy_ipvs.backend:IpvsBackend",
}


def backend_class(mode: str) -> Any:
    module, _, name = BACKENDS[mode].partition(":")
    return getattr(importlib.import_module(module), name)

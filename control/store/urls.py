"""Store URLs (`--store`): which store a URL names, parsed without opening anything.

    sqlite:///ABSOLUTE/PATH[?durability=normal|full&compact_interval=S]   (or sqlite://RELATIVE/PATH)
    etcd://HOST:PORT[,HOST:PORT...][/PREFIX][?compact_interval=S]

Every refusal is a ValueError that names the URL and says what to write instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

ETCD_DEFAULT_PORT = 2379
_FORMS = "use sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT...]"


@dataclass(frozen=True)
class SQLiteURL:
    path: str
    durability: str = "normal"
    compact_interval: float = 300.0


@dataclass(frozen=True)
class EtcdURL:
    endpoints: tuple[tuple[str, int], ...]
    prefix: str = ""  # prepended to every key, e.g. "/cluster-a"; "" keeps keys as they are
    compact_interval: float = 300.0


def parse_store_url(url: str) -> SQLiteURL | EtcdURL:
    # Split by hand, not with urlsplit: a list of members is no URL authority it knows
    # ("a:1,[::1]:2" is an "invalid IPv6 URL" to it).
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme.isalnum():
        scheme = ""
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    if scheme == "sqlite":
        return _sqlite(url, netloc + path if netloc else path, query)
    if scheme == "etcd":
        return _etcd(url, netloc, path, query)
    if scheme == "http":
        raise ValueError(f"store URL {url!r}: for etcd write etcd://HOST:PORT[,HOST:PORT...]")
    if scheme in ("https", "etcds"):
        raise ValueError(f"store URL {url!r}: etcd over TLS is not supported; use etcd://HOST:PORT "
                         "on loopback or a trusted network")
    raise ValueError(f"store URL {url!r}: unknown scheme {scheme!r}; {_FORMS}")


def _options(url: str, query: str, allowed: dict[str, str]) -> dict[str, str]:
    opts = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ValueError(f"store URL {url!r}: unknown options {unknown}")
    return {**allowed, **opts}


def _interval(url: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"store URL {url!r}: compact_interval must be seconds") from None
    if not value >= 0:  # also refuses nan
        raise ValueError(f"store URL {url!r}: compact_interval must be seconds") from None
    return value


def _sqlite(url: str, path: str, query: str) -> SQLiteURL:
    if not path:
        raise ValueError(f"store URL {url!r} names no file; write sqlite:///path/to/state.db")
    opts = _options(url, query, {"durability": "normal", "compact_interval": "300"})
    if opts["durability"] not in ("normal", "full"):
        raise ValueError(f"store URL {url!r}: durability must be 'normal' or 'full'")
    return SQLiteURL(path, opts["durability"], _interval(url, opts["compact_interval"]))


def _etcd(url: str, netloc: str, path: str, query: str) -> EtcdURL:
    if not netloc:
        raise ValueError(f"store URL {url!r} names no etcd member; write etcd://HOST:PORT[,HOST:PORT...]")
    if "@" in netloc:
        raise ValueError(f"store URL {url!r}: etcd authentication is not supported; "
                         "write etcd://HOST:PORT")
    endpoints = tuple(_endpoint(url, part) for part in netloc.split(","))
    prefix = unquote(path).rstrip("/")
    if prefix and "//" in prefix:
        raise ValueError(f"store URL {url!r}: the key prefix {prefix!r} has an empty segment")
    opts = _options(url, query, {"compact_interval": "300"})
    return EtcdURL(endpoints, prefix, _interval(url, opts["compact_interval"]))


def _endpoint(url: str, text: str) -> tuple[str, int]:
    bad = ValueError(f"store URL {url!r}: {text!r} is not HOST:PORT")
    if text.startswith("["):  # [IPv6]:PORT
        host, sep, rest = text[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise bad
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
        if not host or ":" in port_text:
            raise bad
    if not port_text:
        return host, ETCD_DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise bad
    return host, int(port_text)

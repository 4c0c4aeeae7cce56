"""The ingress-nginx annotations people use most, read from an Ingress into typed settings.

Names and defaults are ingress-nginx's (`nginx.ingress.kubernetes.io/...`), so manifests
written for it work unchanged: rewrite-target (with use-regex), ssl-redirect and
force-ssl-redirect, proxy-body-size, proxy-connect/read/send-timeout, affinity: cookie
(session-cookie-name/-path/-max-age), canary (by header, header value or pattern, cookie,
weight), x-forwarded-prefix, permanent-redirect and temporal-redirect. A value that does
not parse keeps the default and is reported as a problem (logged once per change).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from netplane.ingress.routes import Policy

PREFIX = "nginx.ingress.kubernetes.io/"
DEFAULT_COOKIE = "INGRESSCOOKIE"
_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """nginx's size syntax ("8m", "512k", "1g", "100"); 0 means unlimited."""
    m = _SIZE.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a size such as 8m, 512k or 1g")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true or false")


def _seconds(text: str) -> float:
    value = float(text.strip().rstrip("s"))
    if value <= 0:
        raise ValueError(f"{text!r} must be a positive number of seconds")
    return value


@dataclass(frozen=True)
class CanarySettings:
    header: str = ""
    header_value: str = ""
    header_pattern: re.Pattern[str] | None = None
    cookie: str = ""
    weight: int = 0
    weight_total: int = 100


@dataclass(frozen=True)
class IngressAnnotations:
    policy: Policy
    use_regex: bool = False
    rewrite_target: str | None = None
    canary: CanarySettings | None = None  # set when the Ingress is a canary
    redirect_url: str | None = None
    redirect_code: int = 0
    problems: tuple[str, ...] = ()


def parse(annotations: Mapping[str, str], defaults: Policy) -> IngressAnnotations:
    """The settings of one Ingress from its annotations, on top of the gateway's defaults."""
    a = {k[len(PREFIX):]: v for k, v in annotations.items() if k.startswith(PREFIX)}
    problems: list[str] = []
    changes: dict[str, object] = {}

    def read(name: str, convert: object, attr: str) -> None:
        if name not in a:
            return
        try:
            changes[attr] = convert(a[name])  # type: ignore[operator]
        except ValueError as exc:
            problems.append(f"annotation {PREFIX}{name}: {exc}; using the default")

    read("proxy-body-size", parse_size, "max_body_size")
    read("proxy-connect-timeout", _seconds, "connect_timeout")
    read("proxy-read-timeout", _seconds, "read_timeout")
    read("proxy-send-timeout", _seconds, "send_timeout")
    read("ssl-redirect", _bool, "ssl_redirect")
    read("force-ssl-redirect", _bool, "force_ssl_redirect")
    read("x-forwarded-prefix", str, "forwarded_prefix")
    if a.get("affinity", "").strip() == "cookie":
        changes["affinity_cookie"] = a.get("session-cookie-name", DEFAULT_COOKIE).strip() or DEFAULT_COOKIE
        read("session-cookie-path", str, "cookie_path")
        read("session-cookie-max-age", int, "cookie_max_age")
    elif "affinity" in a and a["affinity"].strip():
        problems.append(f"annotation {PREFIX}affinity: only \"cookie\" is supported, not {a['affinity']!r}")
    policy = replace(defaults, **changes)  # type: ignore[arg-type]

    use_regex = False
    try:
        use_regex = _bool(a["use-regex"]) if "use-regex" in a else False
    except ValueError as exc:
        problems.append(f"annotation {PREFIX}use-regex: {exc}")
    rewrite = a.get("rewrite-target")
    if rewrite is not None:
        use_regex = True  # as ingress-nginx: rewrite-target makes the paths regular expressions

    canary = None
    try:
        is_canary = _bool(a["canary"]) if "canary" in a else False
    except ValueError as exc:
        problems.append(f"annotation {PREFIX}canary: {exc}")
        is_canary = False
    if is_canary:
        canary, canary_problems = _canary(a)
        problems.extend(canary_problems)

    redirect_url, redirect_code = None, 0
    for name, default_code in (("permanent-redirect", 301), ("temporal-redirect", 302)):
        if a.get(name):
            redirect_url = a[name].strip()
            redirect_code = default_code
            code_name = f"{name}-code" if name == "permanent-redirect" else ""
            if code_name and code_name in a:
                try:
                    redirect_code = int(a[code_name])
                except ValueError:
                    problems.append(f"annotation {PREFIX}{code_name}: {a[code_name]!r} is not a status code")
            break
    return IngressAnnotations(policy, use_regex, rewrite, canary, redirect_url, redirect_code,
                              tuple(problems))


def _canary(a: Mapping[str, str]) -> tuple[CanarySettings, list[str]]:
    problems: list[str] = []
    pattern = None
    if a.get("canary-by-header-pattern"):
        try:
            pattern = re.compile(a["canary-by-header-pattern"])
        except re.error as exc:
            problems.append(f"annotation {PREFIX}canary-by-header-pattern: {exc}")
    weight, total = 0, 100
    try:
        weight = int(a.get("canary-weight", "0") or 0)
        total = int(a.get("canary-weight-total", "100") or 100)
        if total <= 0 or not 0 <= weight <= total:
            raise ValueError("needs 0 <= canary-weight <= canary-weight-total")
    except ValueError as exc:
        problems.append(f"annotation {PREFIX}canary-weight: {exc}; no weighted canary traffic")
        weight, total = 0, 100
    return CanarySettings(header=a.get("canary-by-header", "").strip().lower(),
                          header_value=a.get("canary-by-header-value", ""), header_pattern=pattern,
                          cookie=a.get("canary-by-cookie", "").strip(), weight=weight,
                          weight_total=total), problems

"""An async client for the Kubernetes REST API (aiohttp): verbs, watch streams, discovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from netplane.client.kubeconfig import ClusterConfig, load_kubeconfig

_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class ApiError(Exception):
    """A non-2xx answer, carrying the Kubernetes `Status` it came with."""

    def __init__(self, code: int, reason: str, message: str, status: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status or {}


@dataclass(frozen=True)
class ResourceRef:
    group_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return self.group_version


def resource_path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """`resource_path("apps/v1", "deployments", "default", "web")` →
    `/apis/apps/v1/namespaces/default/deployments/web`."""
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [root]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
        if subresource:
            parts.append(subresource)
    return "/".join(parts)


def _params(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in params.items() if v is not None}


async def _raise_for(resp: aiohttp.ClientResponse) -> None:
    if resp.status < 300:
        return
    raw = await resp.read()
    try:
        status = orjson.loads(raw)
    except orjson.JSONDecodeError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        raise ApiError(resp.status, status.get("reason", ""), status.get("message", ""), status)
    raise ApiError(resp.status, resp.reason or "", raw[:300].decode(errors="replace"))


class ApiClient:
    """One connection pool to one apiserver. Use as `async with ApiClient(cfg) as api:`."""

    def __init__(self, config: ClusterConfig, *, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | Path | None = None, context: str | None = None) -> ApiClient:
        return cls(load_kubeconfig(path, context))

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": "netplane"}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            connector = aiohttp.TCPConnector(ssl=self.config.ssl_context() or False, limit=64)
            self._session = aiohttp.ClientSession(
                self.config.server, headers=headers, connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      accept: str | None = None) -> Any:
        """One call; the decoded JSON answer. ApiError for non-2xx."""
        headers = {"Content-Type": content_type} if body is not None else {}
        if accept:
            headers["Accept"] = accept
        data = orjson.dumps(body) if body is not None else None
        async with self.session.request(method, path, params=_params(params), data=data, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
            await _raise_for(resp)
            raw = await resp.read()
        if not raw:
            return None
        if resp.content_type != "application/json":
            return raw.decode(errors="replace")
        return orjson.loads(raw)

    async def get(self, path: str, params: dict[str, Any] | None = None, *, accept: str | None = None) -> Any:
        return await self.request("GET", path, params=params, accept=accept)

    async def list(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: Any, params: dict[str, Any] | None = None) -> Any:
        return await self.request("POST", path, params=params, body=body)

    async def update(self, path: str, body: Any, params: dict[str, Any] | None = None) -> Any:
        return await self.request("PUT", path, params=params, body=body)

    async def patch(self, path: str, body: Any, patch_type: str = "merge",
                    params: dict[str, Any] | None = None) -> Any:
        if patch_type not in _PATCH_TYPES:
            raise ValueError(f"patch_type must be one of {sorted(_PATCH_TYPES)}")
        return await self.request("PATCH", path, params=params, body=body,
                                  content_type=_PATCH_TYPES[patch_type])

    async def delete(self, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        return await self.request("DELETE", path, params=params, body=body)

    async def stream(self, path: str, params: dict[str, Any] | None = None) -> AsyncIterator[bytes]:
        """The raw body of a long-running GET (logs with follow) as it arrives."""
        async with self.session.get(path, params=_params(params)) as resp:
            await _raise_for(resp)
            async for chunk in resp.content.iter_any():
                yield chunk

    async def watch(self, path: str, params: dict[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Watch events (`{"type", "object"}`) until the server ends the stream. An ERROR
        event is yielded like any other: the caller decides (410 means relist)."""
        query = {"watch": "true", "allowWatchBookmarks": "true", **(params or {})}
        # A peer that vanished without a FIN (host down, netns deleted) would leave the
        # stream silent forever; the server must end it by timeoutSeconds, so silence well
        # past that means the connection is dead (aiohttp raises a TimeoutError).
        server_timeout = query.get("timeoutSeconds")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10,
                                        sock_read=float(server_timeout) + 30 if server_timeout else None)
        async with self.session.get(path, params=_params(query), timeout=timeout) as resp:
            await _raise_for(resp)
            # Lines can be far longer than aiohttp's default line limit (big objects).
            buffer = bytearray()
            async for chunk in resp.content.iter_any():
                buffer += chunk
                start = 0
                while (nl := buffer.find(b"\n", start)) >= 0:
                    line = bytes(buffer[start:nl])
                    start = nl + 1
                    if line.strip():
                        yield orjson.loads(line)
                del buffer[:start]
            if buffer.strip():
                yield orjson.loads(bytes(buffer))

    async def discover(self) -> dict[str, ResourceRef]:
        """Kind, plural, singular and short names (lower-cased, plus the exact Kind) → the
        resource, for every resource the server serves (each group's preferred version);
        core/v1 wins a name that two groups share, as kubectl prefers it."""
        out: dict[str, ResourceRef] = {}
        versions = ["v1"]
        groups = await self.get("/apis")
        versions += [g["preferredVersion"]["groupVersion"] for g in groups.get("groups", [])]
        for gv in versions:
            doc = await self.get("/api/v1" if gv == "v1" else f"/apis/{gv}")
            for r in doc.get("resources", []):
                if "/" in r["name"]:
                    continue
                ref = ResourceRef(gv, r["kind"], r["name"], bool(r.get("namespaced")))
                for alias in (r["kind"], r["name"], r.get("singularName") or "", *r.get("shortNames", [])):
                    if alias:
                        out.setdefault(alias.lower(), ref)
                # The exact Kind too, so a manifest's "kind" looks up without lower-casing.
                out.setdefault(r["kind"], ref)
        return out

"""`netplane ctl delete`: by name, by selector or from manifests; like kubectl it waits,
by default, until the objects are really gone (graceful deletion, finalizers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from netplane.client.rest import ApiClient, ApiError, ResourceRef, resource_path
from netplane.ctl.errors import CtlError, api_error_text
from netplane.ctl.printers import qualified_kind

_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class DeleteOptions:
    grace_period: int | None = None
    propagation: str = "Background"
    ignore_not_found: bool = False
    wait: bool = True
    timeout: float | None = None  # None: as long as it takes, as kubectl's --timeout=0
    dry_run: str = "none"  # none, client (nothing is sent), server (the server checks, keeps all)


@dataclass(frozen=True)
class Target:
    ref: ResourceRef
    namespace: str | None
    name: str

    @property
    def path(self) -> str:
        return resource_path(self.ref.group_version, self.ref.plural, self.namespace, self.name)

    @property
    def label(self) -> str:
        """kubectl's way to name it in delete messages: `deployment.apps "web"`."""
        return f'{qualified_kind(self.ref)} "{self.name}"'


async def delete_one(api: ApiClient, target: Target, options: DeleteOptions) -> tuple[str | None, str]:
    """Asks for the deletion; (the object's uid if it is to be waited for, kubectl's line).
    A missing object is an error unless `ignore_not_found` (then the line is "")."""
    body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1",
                            "propagationPolicy": options.propagation}
    if options.grace_period is not None:
        body["gracePeriodSeconds"] = options.grace_period
    if options.dry_run == "client":
        return None, f"{target.label} deleted (dry run)"
    if options.dry_run == "server":
        body["dryRun"] = ["All"]
    try:
        answer = await api.delete(target.path, {"dryRun": "All"} if body.get("dryRun") else None, body)
    except ApiError as exc:
        if exc.code == 404 and options.ignore_not_found:
            return None, ""
        raise CtlError(api_error_text(exc)) from None
    if options.dry_run == "server":
        return None, f"{target.label} deleted (server dry run)"
    uid = ((answer.get("metadata") or {}).get("uid")) if isinstance(answer, dict) else None
    return uid, f"{target.label} deleted"


async def _gone(api: ApiClient, target: Target, uid: str | None) -> bool:
    try:
        live = await api.get(target.path)
    except ApiError as exc:
        if exc.code == 404:
            return True
        raise CtlError(f"waiting for {target.label} to be deleted: {api_error_text(exc)}") from None
    return bool(uid) and (live.get("metadata") or {}).get("uid") != uid


async def wait_deleted(api: ApiClient, pending: list[tuple[Target, str | None]],
                       within: float | None) -> None:
    """Returns once every target is gone (or replaced by a new object of the same name);
    `within` seconds at most (None: no limit)."""
    left = list(pending)
    try:
        async with asyncio.timeout(within):
            while left:
                left = [(t, uid) for t, uid in left if not await _gone(api, t, uid)]
                if left:
                    await asyncio.sleep(_POLL_SECONDS)
    except TimeoutError:
        names = ", ".join(t.label for t, _ in left)
        raise CtlError(f"timed out waiting for the deletion of {names}; it may finish later "
                       "(finalizers, a pod's grace period)") from None

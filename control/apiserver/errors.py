"""Kubernetes `Status` errors: what every failed request answers, with code and reason."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request failure, rendered as a `meta/v1 Status` by the error middleware."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        causes: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = self.causes
        if self.retry_after:
            details["retryAfterSeconds"] = self.retry_after
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


def _qualified(plural: str, group: str) -> str:
    # Kubernetes names a resource "deployments.apps" in messages; the core group is bare.
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{_qualified(plural, group)} "{name}" not found',
        name=name, group=group or None, kind=plural,
    )


def not_found_path() -> ApiError:
    """A path that names no resource at all (Kubernetes' generic 404 text)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{_qualified(plural, group)} "{name}" already exists',
        name=name, group=group or None, kind=plural,
    )


def conflict(plural: str, group: str, name: str, detail: str) -> ApiError:
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {detail}',
        name=name, group=group or None, kind=plural,
    )


STALE_OBJECT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(
    kind: str, group: str, name: str, message: str, causes: list[dict[str, Any]]
) -> ApiError:
    return ApiError(422, "Invalid", message, name=name, group=group or None, kind=kind,
                    causes=causes)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, *, name: str | None = None, kind: str | None = None) -> ApiError:
    return ApiError(403, "Forbidden", message, name=name, kind=kind)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def expired(message: str) -> ApiError:
    # Kubernetes answers a too-old resourceVersion with 410 and reason "Expired"
    # (errors.NewResourceExpired); clients key on the 410.
    return ApiError(410, "Expired", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


_MEDIA_TYPES = ("application/json, application/yaml, application/merge-patch+json, "
                "application/strategic-merge-patch+json, application/json-patch+json")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f"the body of the request was in an unknown format ({content_type}) - "
                    f"accepted media types include: {_MEDIA_TYPES}")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def too_many_requests(message: str) -> ApiError:
    return ApiError(429, "TooManyRequests", message, retry_after=1)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")

"""What `netplane ctl` says when something fails: one line naming what and, where it
helps, what to try."""

from __future__ import annotations

from netplane.client.rest import ApiError

_HINTS = {
    401: "the kubeconfig's credentials were refused; is it the one this apiserver wrote?",
    403: "the kubeconfig's user may not do this",
}


class CtlError(Exception):
    """A user-facing failure of one command (or of one object in it)."""


def api_error_text(exc: ApiError) -> str:
    """`NotFound: services "web" not found`, the server's Status reason and message."""
    text = f"{exc.reason or exc.code}: {exc.message or 'the apiserver answered ' + str(exc.code)}"
    hint = _HINTS.get(exc.code)
    return f"{text} ({hint})" if hint else text

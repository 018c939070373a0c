"""The error types of the Valyent API client.

Every failure a call can meet is a ``ValyentError``. An answer from the server with a 4xx/5xx status is an
``ApiError`` (one subclass per meaningful status); a failure to reach the server or to get an answer in time is a
``TransportError``. Messages never contain the API token.
"""

from __future__ import annotations

import json
from typing import Any


class ValyentError(Exception):
    """Base class of every error raised by :mod:`valyent_cli.api`."""

    #: whether the call that failed was safe to repeat (a GET, a mkdir...); None when no call was made
    idempotent: bool | None = None


class ApiError(ValyentError):
    """The server answered with an error status.

    ``status`` is the HTTP status, ``message`` a human message taken from the body (Ravel's ``detail``, the
    console's ``error`` or ``errors[0].message``, else the reason phrase), ``code`` Ravel's error code when the
    body has one (``NOT_FOUND``, ``INVALID_ARGUMENT``...), ``payload`` the parsed body (or the raw text when it
    is not JSON, or None when empty). This is the seed SDK's ``FetchErrorWithPayload``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        payload: Any = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.payload = payload
        self.method = method
        self.url = url
        self.sent_credentials: bool | None = None  # whether the request carried an Authorization header

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class BadRequest(ApiError):
    """400: the server refused the input (INVALID_ARGUMENT, FAILED_PRECONDITION)."""


class AuthError(ApiError):
    """401 or 403: the token is missing, wrong, or not allowed to do this."""


class PaymentRequired(ApiError):
    """402: the account needs a payment method."""


class NotFound(ApiError):
    """404: the fleet, machine, gateway or file does not exist."""


class DeadlineExceeded(ApiError):
    """408: the server gave up waiting (a machine wait that did not reach its state in time)."""


class Conflict(ApiError):
    """409: the resource already exists or is in a state that forbids the call."""


class RateLimited(ApiError):
    """429: too many requests (RESOURCES_EXHAUSTED)."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server failed."""


class TransportError(ValyentError):
    """The request did not get an answer: the server could not be reached, or the exchange broke."""

    def __init__(self, message: str, *, url: str | None = None, method: str | None = None, reached: bool = True) -> None:
        super().__init__(message)
        self.url = url
        self.method = method
        self.reached = reached  # False when no connection was made: nothing reached the server

    @property
    def may_have_taken_effect(self) -> bool:
        """Whether a non-idempotent request (a create, an exec) may have reached the server before it failed."""
        return self.method == "POST" and self.reached and not self.idempotent


class ConnectError(TransportError):
    """The server could not be reached (connection refused, DNS failure, TLS failure)."""


class TimeoutError(TransportError):  # noqa: A001 - the name the SDK uses; never shadows the builtin in our code
    """No answer in time: a request's read timeout, or a machine that did not reach a state before the deadline."""


class StreamError(TransportError):
    """A live stream kept failing after every reconnection attempt."""


class InvalidArgument(ValyentError, ValueError):
    """An argument the client cannot send (an empty name, an unknown wait state...): refused before any request.

    A ``ValueError`` too, for callers that catch that.
    """


class MachineFailed(ValyentError):
    """A machine that was waited for cannot get there: its last start failed (an image that cannot be pulled, a
    command that cannot be run). ``reason`` is the server's own words."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class ResponseError(ValyentError):
    """The server answered 2xx with a body that is not what the contract says (e.g. malformed JSON)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthError,
    402: PaymentRequired,
    403: AuthError,
    404: NotFound,
    408: DeadlineExceeded,
    409: Conflict,
    422: BadRequest,
    429: RateLimited,
}


def parse_error_body(body: bytes, content_type: str | None) -> tuple[Any, str | None, str | None]:
    """Return (payload, message, code) from an error body of any shape seen in the field."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return None, None, None
    try:
        payload = json.loads(text)
    except RecursionError:
        return None, "the error answer is JSON nested too deeply to read", None
    except ValueError:
        # A proxy's HTML page or plain text: keep it as the payload, take a short plain line as the message.
        message = None
        if "html" not in (content_type or "").lower() and not text.lstrip().startswith("<"):
            first = text.splitlines()[0].strip()
            message = first[:200] or None
        return text, message, None
    message = code = None
    if isinstance(payload, dict):
        code = payload.get("Code") or payload.get("code")
        code = code if isinstance(code, str) else None
        for key in ("detail", "error", "message"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                message = value.strip()
                break
        if message is None:
            errors = payload.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                value = errors[0].get("message")
                if isinstance(value, str) and value.strip():
                    message = value.strip()
        if message is None and isinstance(payload.get("title"), str):
            message = payload["title"]
    elif isinstance(payload, str) and payload.strip():
        message = payload.strip()
    return payload, message, code


def error_for_status(
    status: int,
    body: bytes,
    *,
    content_type: str | None = None,
    reason: str | None = None,
    method: str | None = None,
    url: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the ApiError subclass for an error answer."""
    payload, message, code = parse_error_body(body, content_type)
    if not message:
        message = reason or f"HTTP {status}"
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    kwargs: dict[str, Any] = dict(code=code, payload=payload, method=method, url=url)
    if cls is RateLimited:
        return RateLimited(status, message, retry_after=retry_after, **kwargs)
    return cls(status, message, **kwargs)

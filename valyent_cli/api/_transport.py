"""The transport of the Valyent API: the one place that sends requests.

``Transport`` holds the HTTP connection pool and its settings and sends every call: the request loop, the retry
rules and their backoff, the overall deadline per attempt (``api/_deadline.py``), the debug hook, JSON parsing and
the mapping of httpx's failures to ``errors``. It imports no resource module: ``Client`` (``api/client.py``) is a
``Transport`` that adds the resources, and each resource (``api/_resource.py``) is given the transport it sends with.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from valyent_cli.api._http import httpx

from valyent_cli import __version__
from valyent_cli.api import _deadline, errors
from valyent_cli.defaults import (  # every default in one place
    DEFAULT_AUTH_SCHEME, DEFAULT_ENDPOINT, DEFAULT_INITD_ENDPOINT, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT,
)

#: the longest a `Retry-After` header may make us wait before one retry, in seconds
MAX_RETRY_AFTER = 30.0
#: retry n waits min(BACKOFF_BASE * 2**n, BACKOFF_MAX) seconds, times a random factor in [0.75, 1]
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0

#: how the token goes into the Authorization header: "Bearer TOKEN", or the token alone (a Ravel whose
#: `bearer_token` is configured without the "Bearer " prefix compares the whole header with it)
AUTH_SCHEMES = ("bearer", "raw")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: the most a whole answer (not a stream) may hold once decoded: a 1 MB gzip answer can expand to 1 GiB
MAX_ANSWER_BYTES = 256 * 1024 * 1024
#: of an error answer, what is read (its message is near the start; a hostile server may send gigabytes)
MAX_ERROR_BYTES = 1024 * 1024


@dataclass
class Exchange:
    """One HTTP exchange, as the debug hook sees it. It never holds the token.

    ``request_headers`` and ``response_headers`` are copies with ``Authorization`` (and any cookie) redacted.
    """

    method: str
    url: str
    status: int | None
    elapsed_ms: float
    attempt: int
    error: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        result = str(self.status) if self.status is not None else f"failed: {self.error}"
        retry = f" (attempt {self.attempt + 1})" if self.attempt else ""
        return f"{self.method} {self.url} -> {result} in {self.elapsed_ms:.0f} ms{retry}"


def encode(segment: Any) -> str:
    """URL-encode one path segment, `/` included, so a name can never change the path.

    ``.`` and ``..`` are encoded too (``%2E``): left bare, URL normalisation would remove them and climb the path.
    An empty segment is refused: ``/fleets/`` would silently become another call.
    """
    text = str(segment)
    if not text:
        raise errors.InvalidArgument("an empty name or id cannot be part of a request path")
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


def backoff_delay(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """How long to sleep before retry ``attempt`` (0-based): exponential, capped, with jitter."""
    return min(base * 2**attempt, cap) * random.uniform(0.75, 1.0)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


_Self = TypeVar("_Self", bound="Transport")


class Transport:
    """Sends the calls of one API client: its settings, its connection pool, the request loop.

    Its arguments are ``Client``'s, documented there with the retry policy; ``Transport`` knows no resource.
    """

    def __init__(
        self,
        token: str | None,
        endpoint: str = DEFAULT_ENDPOINT,
        namespace: str | None = None,
        initd_endpoint: str | None = DEFAULT_INITD_ENDPOINT,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        max_retry_after: float = MAX_RETRY_AFTER,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
        debug_hook: Callable[[Exchange], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        auth_scheme: str = DEFAULT_AUTH_SCHEME,
        ca_cert: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
    ) -> None:
        if auth_scheme not in AUTH_SCHEMES:
            raise errors.InvalidArgument(f"unknown auth scheme {auth_scheme!r}: choose one of {', '.join(AUTH_SCHEMES)}")
        if not token and endpoint.rstrip("/") == DEFAULT_ENDPOINT:
            # Valyent Cloud always needs one; a self-hosted Ravel configured without `bearer_token` takes none.
            raise errors.InvalidArgument("an API token is required")
        if client_key and not client_cert:
            raise errors.InvalidArgument("a client key needs its client certificate (client_cert)")
        self.endpoint = endpoint.rstrip("/")
        self.namespace = namespace or None
        self.initd_endpoint = initd_endpoint or None
        self.auth_scheme = auth_scheme
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.max_retry_after = max_retry_after
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.debug_hook = debug_hook
        headers = {"Accept": "application/json", "User-Agent": f"valyent-cli/{__version__}"}
        if token:
            # Ravel compares the whole header with its configured `bearer_token`: "raw" sends the token alone.
            headers["Authorization"] = token if auth_scheme == "raw" else f"Bearer {token}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout),
            transport=transport,
            follow_redirects=False,
            verify=_tls_context(self.endpoint, self.initd_endpoint, ca_cert, client_cert, client_key),
        )
        self._deadlines = _deadline.Deadlines()
        self._deadlines.install(self._http)

    # -- lifecycle --------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, namespace={self.namespace!r})"

    # -- URLs -------------------------------------------------------------------------------------------------
    def url(self, *segments: Any) -> str:
        """The control-plane URL of a path given as segments, each URL-encoded."""
        return self.endpoint + "".join("/" + encode(s) for s in segments)

    def initd_url(self, machine_id: str, *segments: Any) -> str:
        if not self.initd_endpoint:
            raise errors.InvalidArgument(
                "no initd endpoint: this server has no default agent host; set `initd_endpoint` (a URL template "
                "with {machine_id}, e.g. http://{machine_id}.initd.example:64242) to reach machines' files"
            )
        base = self.initd_endpoint.replace("{machine_id}", encode(machine_id)).rstrip("/")
        return base + "".join("/" + encode(s) for s in segments)

    # -- requests ---------------------------------------------------------------------------------------------
    def _params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for key, value in (params or {}).items():
            if value is None:
                continue
            merged[key] = ("true" if value else "false") if isinstance(value, bool) else value
        if self.namespace:
            merged.setdefault("namespace", self.namespace)  # a call's own namespace (secrets) wins
        return merged

    def request(self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any) -> httpx.Response:
        """Send one call, with the retry policy of the class docstring; return a 2xx response or raise.

        With ``stream=True`` the body is not read: the caller must close the response (see ``stream``). An error
        raised records whether the call was safe to repeat (``idempotent``), so that a failed mkdir is not said
        to have maybe taken effect the way a failed create is.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE", "PUT")
        call = None
        if not kwargs.get("stream"):  # a whole answer: an overall deadline per attempt (api/_deadline.py)
            seconds = _deadline.seconds_for(kwargs.get("timeout"), self.timeout)
            call = _deadline.Call(seconds) if seconds is not None else None
        self._deadlines.arm(call)
        try:
            return self._request(method, url, idempotent=idempotent, **kwargs)
        except errors.ValyentError as exc:
            if call is not None and call.expired and isinstance(exc, errors.TransportError):
                exc = _deadline.expired(exc, call, method, url)
                exc.idempotent = idempotent
                raise exc from None
            exc.idempotent = idempotent
            raise
        finally:
            self._deadlines.arm(None)
            if call is not None:
                call.end()

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
        timeout: httpx.Timeout | float | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one call, with the retry policy of the class docstring; return a 2xx response or raise.

        With ``stream=True`` the body is not read: the caller must close the response (see ``stream``).
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE", "PUT")
        body = {"json": drop_none(json)} if json is not None else {}
        try:
            request = self._http.build_request(
                method,
                url,
                params=self._params(params),
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                **body,
                **kwargs,
            )
        except httpx.InvalidURL as exc:
            raise errors.ConnectError(f"invalid URL {_redact_userinfo(url)!r}: {exc}", url=_redact_userinfo(url)) from None
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self._http.send(request, stream=True)
            except httpx.UnsupportedProtocol as exc:
                self._debug(request, None, started, attempt, error=_describe(exc))
                raise errors.ConnectError(
                    f"cannot reach {_public_url(request.url)}: the URL must start with http:// or https://",
                    url=_public_url(request.url),
                ) from None
            except httpx.TransportError as exc:
                self._debug(request, None, started, attempt, error=_describe(exc))
                # A connection that was never made carried nothing: repeating it is safe for any call.
                reached = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                if attempt < self.max_retries and (idempotent or not reached) and _replayable(request) \
                        and self._wait_to_retry(attempt):
                    attempt += 1
                    continue
                raise _transport_error(exc, request) from None
            self._debug(request, response.status_code, started, attempt, response=response)
            if response.is_success:
                if stream:
                    return response
                try:
                    read_capped(response, MAX_ANSWER_BYTES)
                except httpx.TransportError as exc:
                    if attempt < self.max_retries and idempotent and _replayable(request) \
                            and self._wait_to_retry(attempt):
                        attempt += 1
                        continue
                    raise _transport_error(exc, request) from None
                finally:
                    response.close()
                return response
            try:
                content = read_capped(response, MAX_ERROR_BYTES, truncate=True)
            except httpx.TransportError:
                content = b""
            finally:
                response.close()
            status = response.status_code
            retry_after = _retry_after(response)
            if idempotent and status in retry_statuses and attempt < self.max_retries and _replayable(request) \
                    and self._wait_to_retry(attempt, retry_after):
                attempt += 1
                continue
            error = errors.error_for_status(
                status,
                content,
                content_type=response.headers.get("content-type"),
                reason=response.reason_phrase,
                method=method,
                url=_public_url(request.url),
                retry_after=retry_after,
            )
            error.sent_credentials = "authorization" in request.headers
            raise error

    def _wait_to_retry(self, attempt: int, retry_after: float | None = None) -> bool:
        """Wait before the next attempt and say True; False (at once) when the call's overall deadline would pass
        first: the attempts share one budget (``_deadline.Call``), so a slow server cannot stretch a call to
        attempts x timeout."""
        if retry_after is not None:
            delay = min(retry_after, self.max_retry_after)
        else:
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_max)
        call = self._deadlines.current()
        if call is not None and call.left() <= delay:
            return False
        time.sleep(delay)
        return True

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed answer, closed when the block ends.

        A connection that breaks or stalls while the block reads the body raises a ``TransportError``
        (``TimeoutError`` for a stall), never an httpx exception.
        """
        response = self.request(method, url, stream=True, **kwargs)
        try:
            yield response
        except httpx.TransportError as exc:
            raise _transport_error(exc, response.request) from None
        finally:
            response.close()

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.get_json_body(url, **kwargs)[0]

    def get_json_body(self, url: str, **kwargs: Any) -> tuple[Any, bytes]:
        """The JSON answer to a GET, and the body it was read from, as received."""
        response = self.request("GET", url, **kwargs)
        return parse_json(response), response.content

    def send_json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.request(method, url, **kwargs)
        return parse_json(response) if response.content.strip() else None

    def _debug(
        self,
        request: httpx.Request,
        status: int | None,
        started: float,
        attempt: int,
        error: str | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        if self.debug_hook is not None:
            elapsed = (time.monotonic() - started) * 1000
            self.debug_hook(
                Exchange(
                    request.method,
                    _public_url(request.url),
                    status,
                    elapsed,
                    attempt,
                    error,
                    request_headers=_redact_headers(request.headers),
                    response_headers=_redact_headers(response.headers) if response is not None else {},
                )
            )


def _plain_http(url: str | None) -> bool:
    return url is None or url.lower().startswith("http://")


def _tls_context(endpoint: str, initd: str | None, ca_cert: str | None, client_cert: str | None,
                 client_key: str | None) -> Any:
    """What httpx verifies servers with: the system CAs, or ``ca_cert``; with ``client_cert`` (and
    ``client_key``), the certificate this client shows (mTLS). A missing or bad file is an InvalidArgument."""
    if not (ca_cert or client_cert):
        # Loading the CA bundle costs ~20 ms per run; with no https URL (the sandbox) there is nothing to verify.
        return not (_plain_http(endpoint) and _plain_http(initd))
    import ssl

    try:
        if ca_cert:
            context = ssl.create_default_context(cafile=ca_cert)
        else:
            import certifi

            context = ssl.create_default_context(cafile=certifi.where())
        if client_cert:
            context.load_cert_chain(client_cert, client_key or None)
    except FileNotFoundError as exc:
        raise errors.InvalidArgument(f"TLS file not found: {exc.filename or exc}") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        which = "ca_cert" if ca_cert and not client_cert else "ca_cert/client_cert/client_key"
        raise errors.InvalidArgument(f"cannot load the TLS files ({which}): {exc}") from None
    return context


def drop_none(value: Any) -> Any:
    """JSON without null fields: optional fields left out are omitted, not sent as null."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def parse_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except RecursionError:
        raise errors.ResponseError(
            f"unexpected answer from the server ({_public_url(response.request.url)}): JSON nested too deeply to read"
        ) from None
    except ValueError:
        text = response.text
        if "html" in response.headers.get("content-type", "").lower() or text.lstrip()[:1] == "<":
            # A proxy's or captive portal's page: its title says more than the markup.
            title = re.search(r"<title[^>]*>(.*?)</title>", text[:4096], re.IGNORECASE | re.DOTALL)
            name = " ".join(title.group(1).split())[:120] if title else ""
            snippet = f"an HTML page{f' titled {name!r}' if name else ''}"
        else:
            snippet = repr(text[:120].strip())
        raise errors.ResponseError(
            f"the server answered {response.status_code} with a body that is not JSON"
            f" ({_public_url(response.request.url)}): {snippet}"
        ) from None


def read_capped(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """Read a streamed answer's decoded body, at most ``limit`` bytes of it: past that, a ``ResponseError``
    (or, with ``truncate``, what was read so far). It becomes the response's ``content``, as ``read()`` makes it."""
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            if truncate:
                parts.append(chunk[: len(chunk) - (size - limit)])
                break
            response.close()
            raise errors.ResponseError(
                f"the answer from {_public_url(response.request.url)} is larger than {limit // (1024 * 1024)} MiB "
                "once decoded: refusing to read more (a broken or hostile server?)"
            )
        parts.append(chunk)
    response._content = content = b"".join(parts)  # what httpx's read() sets: .content, .text and .json() use it
    return content


def _replayable(request: httpx.Request) -> bool:
    """A request whose body is a stream (an upload from a file or stdin) cannot be sent again."""
    return isinstance(request.stream, httpx.ByteStream)


_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def _redact_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


def _redact_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"<redacted>@{host}").geturl()


def _public_url(url: httpx.URL | str) -> str:
    """The URL as it may be shown: credentials in it are redacted."""
    return _redact_userinfo(str(url))


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\] ", "", text)


_DNS_FAILURES = (
    "Name or service not known",
    "nodename nor servname",
    "Temporary failure in name resolution",
    "No address associated with hostname",
    "getaddrinfo failed",
)


def _transport_error(exc: httpx.TransportError, request: httpx.Request) -> errors.TransportError:
    url = _public_url(request.url)
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}"
    if isinstance(exc, httpx.ConnectTimeout):
        return errors.TimeoutError(f"could not connect to {where}: timed out", url=url, method=request.method,
                                   reached=False)
    if isinstance(exc, httpx.TimeoutException):
        return errors.TimeoutError(f"no answer from {where} in time ({request.method} {parts.path})", url=url,
                                   method=request.method)
    if isinstance(exc, httpx.ConnectError):
        reason = _describe(exc)
        if any(marker in reason for marker in _DNS_FAILURES):
            reason = f"cannot resolve host {parts.hostname!r}"
        elif "refused" in reason.lower():
            reason = "connection refused"
        return errors.ConnectError(f"cannot reach {where}: {reason}", url=url, method=request.method, reached=False)
    return errors.TransportError(f"the connection to {where} broke: {_describe(exc)}", url=url, method=request.method)

"""What can go wrong with a chat request, and which faults a retry can fix.

* transient faults (connection errors and resets, timeouts, HTTP 408/409/425/429/5xx, a cut-off or malformed body):
  :func:`fault_kind` names them, and the client's retry policy retries them, honouring :func:`retry_after_s`;
* a request the server refuses (400/401/403/404/422 and other 4xx): :class:`LLMRejectedError` at once;
* no server at all: :class:`LLMUnavailableError` from the preflight;
* an empty or unparsable reply *text* is not an error: it is returned, and the agent counts it invalid.

Messages never carry the API key: every one built here goes through the transport's ``redact``.
"""

from __future__ import annotations

import email.utils
import errno
import importlib
import json
import math
import re
import time
from typing import Any

import aiohttp
import openai
import pydantic

__all__ = ["LLMError", "LLMRejectedError", "LLMUnavailableError", "MalformedReply", "ServerStatusError",
           "STATUS_ERRORS", "REQUEST_ERRORS", "fault_kind", "retry_after_s", "server_says", "one_line",
           "connection_reason", "safe_cause", "rejection_hint"]

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})  # and every 5xx
# Transport errors that retrying cannot fix (a URL without http://, a redirect loop).
_HOPELESS_TRANSPORT_NAMES = ("UnsupportedProtocol", "TooManyRedirects")


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """httpx-family errors that may escape the SDK: the openai SDK moved from httpx to httpx2; take both."""
    # OSError: a connect that failed (refused, unknown host, ...), as the plain-http client (agents/llm/http1.py)
    # lets it through; ConnectionError among them.
    transient: list[type[BaseException]] = [OSError]
    hopeless: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        transient += [module.TransportError, module.DecodingError]
        hopeless += [getattr(module, error) for error in _HOPELESS_TRANSPORT_NAMES]
    return tuple(transient), tuple(hopeless)


TRANSPORT_ERRORS, HOPELESS_TRANSPORT_ERRORS = _transport_errors()
# aiohttp errors that retrying cannot fix: a malformed or non-HTTP URL, redirect loops, TLS certificates.
HOPELESS_AIOHTTP_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.InvalidURL, aiohttp.TooManyRedirects, aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)


class LLMError(RuntimeError):
    """The model could not be reached after all retries, or refused the request.

    Attributes:
        kind: what failed last, as counted in ``LLMClient.retries`` (e.g. ``"HTTP 500"``, ``"ReadTimeout"``,
            ``"JSONDecodeError"``).
        status: the HTTP status, when the server answered with one.
    """

    def __init__(self, message: str, kind: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class LLMRejectedError(LLMError):
    """The server refused the request (400/401/403/404/422, ...): retrying cannot help."""


class LLMUnavailableError(LLMError):
    """Preflight: no OpenAI-compatible server answers at ``base_url``, or it refuses the key."""


class MalformedReply(ValueError):
    """A 200 answer that is JSON but not a chat completion (no choices, a choice without a message)."""


class ServerStatusError(Exception):
    """The server answered a chat request with an HTTP error status (retried or not by :func:`fault_kind`)."""

    def __init__(self, status: int, headers: Any, content: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = headers
        self.text = content.decode("utf-8", "replace")
        try:
            self.body: Any = json.loads(self.text)
        except ValueError:
            self.body = None


# An HTTP error status, from our chat requests or from the SDK's (the preflight, users' own code).
STATUS_ERRORS = (ServerStatusError, openai.APIStatusError)
# What one request attempt may raise: retried or not by fault_kind, then turned into an LLMError.
REQUEST_ERRORS: tuple[type[BaseException], ...] = (
    ServerStatusError, aiohttp.ClientError, TimeoutError, openai.APIError, *TRANSPORT_ERRORS,
    json.JSONDecodeError, UnicodeDecodeError, pydantic.ValidationError, MalformedReply)


def fault_kind(error: BaseException | None) -> str | None:
    """The retry counter's name for a transient fault (``"HTTP 503"``, ``"ReadTimeout"``, ...), else None.

    Example:
        >>> import json
        >>> fault_kind(json.JSONDecodeError("Unterminated string", "{", 1))
        'JSONDecodeError'
        >>> fault_kind(ValueError("a bug")) is None
        True
    """
    if isinstance(error, STATUS_ERRORS):
        status = error.status_code
        return f"HTTP {status}" if status in RETRYABLE_STATUSES or status >= 500 else None
    if isinstance(error, HOPELESS_AIOHTTP_ERRORS):
        return None
    if isinstance(error, (TimeoutError, aiohttp.ServerTimeoutError)):
        return "Timeout"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "ServerDisconnected"  # e.g. the connection closed before an answer
    if isinstance(error, aiohttp.ClientOSError) and error.errno in (errno.ECONNRESET, errno.EPIPE):
        return "ConnectionReset"
    if isinstance(error, aiohttp.ClientError):
        return type(error).__name__
    if isinstance(error, openai.APIConnectionError):  # timeouts too; the cause says which
        cause = error.__cause__
        if isinstance(cause, HOPELESS_TRANSPORT_ERRORS):
            return None
        return type(cause).__name__ if cause is not None else type(error).__name__
    if isinstance(error, HOPELESS_TRANSPORT_ERRORS):
        return None
    if isinstance(error, UnicodeDecodeError):
        return "JSONDecodeError"  # a body that is not even text
    if isinstance(error, (*TRANSPORT_ERRORS, json.JSONDecodeError, pydantic.ValidationError, MalformedReply,
                          openai.APIResponseValidationError)):
        return type(error).__name__
    return None


def retry_after_s(error: BaseException | None) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms``, ``Retry-After`` seconds or HTTP date), if any."""
    headers = error.headers if isinstance(error, ServerStatusError) else getattr(getattr(error, "response", None),
                                                                                   "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, OverflowError):
                continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
        return None
    return None


def server_says(error: ServerStatusError | openai.APIStatusError) -> str:
    """The message in an error body: OpenAI's ``{"error": {"message"}}`` or FastAPI's ``{"detail": [...]}``."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return one_line(inner["message"])
        if isinstance(inner, str):
            return one_line(inner)
        detail = body.get("detail")
        if isinstance(detail, list):
            return one_line("; ".join(
                f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg', '')}" if isinstance(item, dict)
                else str(item) for item in detail))
        if isinstance(detail, str):
            return one_line(detail)
    if isinstance(error, ServerStatusError):
        return one_line(error.text or str(error))
    text = error.response.text if error.response is not None else ""
    return one_line(text or error.message)


def rejection_hint(status: int, said: str, api_key_env: str | None, structured: bool) -> str:
    """What to check when the server refused a request with ``status`` (``""`` when nothing useful)."""
    hint = ""
    if status == 401:
        hint = (f"; check the key in ${api_key_env}" if api_key_env else
                "; the server wants a key: set llm.api_key_env to the name of the variable holding it")
    elif status == 403:
        hint = f"; the key in ${api_key_env} may have no access to this model" if api_key_env else ""
    elif status == 404:
        hint = "; check llm.model and llm.base_url (the server's GET /models lists what it serves)"
    if structured and status in (400, 422) and re.search(r"schema|response_format|json|grammar|guided", said,
                                                         re.IGNORECASE):
        hint += "; llm.structured_output=false may help"
    return hint


def one_line(text: str, limit: int = 400) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def connection_reason(error: BaseException) -> str:
    """``connection refused``, ``name or service not known``, ...: the innermost OS-level reason."""
    cause: BaseException | None = error
    reason = "connection failed"
    while cause is not None:
        text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(cause)).strip()
        if text and text not in ("Connection error.", "Request timed out."):
            reason = text
        cause = cause.__cause__ or cause.__context__
    reason = reason.rstrip(".")
    return reason[:1].lower() + reason[1:]


def safe_cause(error: BaseException) -> BaseException | None:
    """Chain transport errors for debugging; not what repeats the server's words (which may quote the key)."""
    return None if isinstance(error, (*STATUS_ERRORS, MalformedReply)) else error

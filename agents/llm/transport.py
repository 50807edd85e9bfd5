"""HTTPTransport: one OpenAI-compatible endpoint over one connection pool per event loop.

Chat requests do not go through the ``openai`` SDK: its request path (option models, header building, httpx) cost
about 1.5 ms of CPU per request, and at hundreds of streams that is what keeps the server waiting
(``benchmarks/throughput.py``). The SDK stays the interface for users' own code, and :meth:`HTTPTransport.preflight`
uses it. A plain ``http://`` server with no proxy in the way (llama.cpp, vLLM, the embedded server: the case where
the server is fast and our CPU binds) gets :class:`~agents.llm.http1.HTTP1Pool`, a keep-alive HTTP/1.1 client on
httptools' C parser that writes each request at once; everything else (``https://``, proxies, credentials in the
URL) gets an ``aiohttp`` session (its C parser and keep-alive pool). CPU per request, 3000 sequential requests to a
0 ms local server (``benchmarks/fixed_latency_server.py``) on a shared 2-core machine: the whole ``send`` (body
encoding and reply parsing included) 240-360 us over aiohttp, 120-180 us over the pool; the exchange alone 240-340 us
for aiohttp, 75-140 us for the pool and 55-115 us for a bare asyncio-streams client. aiohttp on Python 3.11 also
sends a request's body from a task of its own, a loop turn later: at 64 streams (Blackjack, 50 ms server) a
stream's turnaround went from 39-49 ms to 13-20 ms and busy requests/s from 0.55-0.60 of the ceiling to 0.74-0.81.

The transport sends one request and reads its body; it does not retry (the client's retry policy does, around
request *and* parse; the pool only replaces a connection the server had closed while it was idle, see
:mod:`agents.llm.http1`). The API key is read from the environment variable named here when a pool or session is
made; it lives in their request headers only, never in the transport's settings, so it is never pickled, logged or
shown.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Hashable
from dataclasses import dataclass
from typing import Any

import aiohttp
import multidict
import openai
import orjson

from agents.llm.errors import (
    LLMUnavailableError,
    MalformedReply,
    ServerStatusError,
    connection_reason,
    one_line,
    server_says,
)
from agents.llm.http1 import HTTP1Pool
from agents.llm.slots import SlotTable

__all__ = ["HTTPTransport", "Reply", "parse_reply"]

logger = logging.getLogger(__name__)
OPENAI_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Reply:
    """One HTTP chat request's answer: its texts and what the server said it cost."""

    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int | None
    latency_s: float
    # Per text, its sampled tokens as {"token", "logprob", "id"?} where the request asked for ``logprobs`` and the
    # server gave them (OpenAI, vLLM, llama.cpp; llama.cpp and vLLM also give token ids), else None.
    token_logprobs: list[list[dict[str, Any]] | None] | None = None


class HTTPTransport:
    """Sends chat requests to one OpenAI-compatible ``/v1`` endpoint, at most ``max_concurrency`` at once.

    Args:
        base_url: the server's OpenAI-compatible ``/v1`` address (``None``: OpenAI's).
        api_key_env: name of the environment variable holding the API key (not the key itself).
        timeout_s: seconds per request attempt.
        max_concurrency: requests in flight at once against this endpoint.
        slot_count: the server's decoding slots, for a llama.cpp server: each single-sample request then names a
            slot (``id_slot``) so that a session's requests keep landing on the slot that holds its prompt prefix
            (see :class:`~agents.llm.slots.SlotTable`). ``None``: the server picks.
        identity: what identifies the server in cache keys (default: ``base_url``). The embedded server gets a
            new port every start, so it is keyed by its model file instead.

    Attributes:
        in_flight: requests sent and not yet answered (progress displays show it).

    Example:
        >>> HTTPTransport("http://127.0.0.1:8000/v1", api_key_env=None, max_concurrency=4)
        HTTPTransport(base_url='http://127.0.0.1:8000/v1', max_concurrency=4)
    """

    def __init__(self, base_url: str | None = None, api_key_env: str | None = "OPENAI_API_KEY", *,
                 timeout_s: float = 120.0, max_concurrency: int = 8, slot_count: int | None = None,
                 identity: str | None = None) -> None:
        if max_concurrency < 1:
            raise ValueError(f"expected max_concurrency >= 1, actually {max_concurrency}")
        if slot_count is not None and slot_count < 1:
            raise ValueError(f"expected slot_count >= 1 or None, actually {slot_count}")
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.slot_count = slot_count
        self.identity = identity or base_url
        self.in_flight = 0
        self._chat_url = self.server.rstrip("/") + "/chat/completions"
        self._slots = SlotTable(slot_count) if slot_count else None
        self._url = urllib.parse.urlsplit(self._chat_url)
        self._path = self._url.path + (f"?{self._url.query}" if self._url.query else "")
        # Built lazily per event loop: connection pools and asyncio primitives belong to the loop that made them.
        # The plain-http pool, or an aiohttp session where it does not apply (see the module's docstring).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: HTTP1Pool | aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._closer: AsyncGenerator[None, None] | None = None
        self._proxy: str | None = None

    @property
    def server(self) -> str:
        """The server's address as messages name it."""
        return self.base_url or OPENAI_URL

    def copy(self, **changes: Any) -> HTTPTransport:
        """This endpoint with ``changes`` (``max_concurrency``, ``slot_count``).

        Nothing is in flight and nothing bound to an event loop: for another process (it pickles) or another limit.
        """
        unknown = set(changes) - {"max_concurrency", "slot_count"}
        if unknown:
            raise TypeError(f"copy() can change max_concurrency and slot_count, not {sorted(unknown)}")
        settings = {"timeout_s": self.timeout_s, "max_concurrency": self.max_concurrency,
                    "slot_count": self.slot_count, "identity": self.identity, **changes}
        return HTTPTransport(self.base_url, self.api_key_env, **settings)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its settings: a worker process makes its own session, semaphore and slot table."""
        return (functools.partial(HTTPTransport, timeout_s=self.timeout_s, max_concurrency=self.max_concurrency,
                                  slot_count=self.slot_count, identity=self.identity),
                (self.base_url, self.api_key_env))

    def __repr__(self) -> str:  # never shows the key
        return f"HTTPTransport(base_url={self.base_url!r}, max_concurrency={self.max_concurrency})"

    def api_key(self) -> str:
        """The key from the environment, read now.

        ``"not-needed"`` without one: the SDK insists on a non-empty key, and local servers accept any.
        """
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return key or "not-needed"

    def redact(self, text: str) -> str:
        """``text`` without the API key, however a server came to repeat it."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return text.replace(key, "***") if key else text

    async def _bind(self) -> tuple[HTTP1Pool | aiohttp.ClientSession, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._http is None or self._semaphore is None:
            # Its loop ended without closing it (a loop closed by hand). A pool's sockets on a dead loop just go.
            if isinstance(self._http, aiohttp.ClientSession) and not self._http.closed:
                _forget(self._http)
            self._loop = loop
            # HTTPS_PROXY and friends apply as they do for the SDK, looked up once here: aiohttp's trust_env would
            # look them (and ~/.netrc) up in a thread on every request.
            self._proxy = _env_proxy(self._chat_url)
            headers = {"Authorization": f"Bearer {self.api_key()}", "Content-Type": "application/json",
                       "Accept": "application/json", "User-Agent": "textgym"}
            url = self._url
            if url.scheme == "http" and self._proxy is None and url.hostname and url.username is None:
                self._http = HTTP1Pool(url.hostname, url.port or 80, headers, self.timeout_s)
            else:
                # No connection limit of aiohttp's own: the semaphore is the one limit. certifi's CA bundle, as
                # the SDK's httpx uses.
                self._http = aiohttp.ClientSession(
                    headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                    connector=aiohttp.TCPConnector(limit=0, ssl=_ssl_context()))
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            # Closed when this loop shuts down (``asyncio.run`` finalizes async generators before it closes the
            # loop), so a caller that never calls aclose() gets no "Unclosed client session" warnings.
            self._closer = _close_at_loop_end(self._http)
            await anext(self._closer)
        return self._http, self._semaphore

    async def send(self, request: dict[str, Any], session: Hashable | None = None) -> Reply:
        """POST ``request`` to ``/chat/completions`` once, under the concurrency limit, and parse the answer.

        Args:
            request: the chat completion body.
            session: what the request belongs to; with ``slot_count`` set, a single-sample request names the slot
                that holds this session's previous prompt.

        Raises:
            ServerStatusError: the server answered with an HTTP error status.
            aiohttp.ClientError, OSError, TimeoutError: the exchange failed (see :mod:`agents.llm.http1`).
            json.JSONDecodeError, MalformedReply: the body is not HTTP or not a chat completion.
        """
        http, semaphore = await self._bind()
        async with semaphore:
            # n > 1 fans out over several slots on llama.cpp: pinning it to one would serialize the samples.
            slot = self._slots.claim(session) if self._slots is not None and request["n"] == 1 else None
            if slot is not None:
                request = {**request, "id_slot": slot}
            started = time.perf_counter()  # latency of the request itself, not of the queue before it
            self.in_flight += 1
            try:
                if isinstance(http, HTTP1Pool):
                    status, headers, content = await http.post(self._path, orjson.dumps(request))
                    if status >= 400:  # aiohttp's headers are case-insensitive: so are these
                        raise ServerStatusError(status, multidict.CIMultiDict(headers), content)
                else:
                    async with http.post(self._chat_url, data=orjson.dumps(request), proxy=self._proxy) as response:
                        content = await response.read()
                        if response.status >= 400:
                            raise ServerStatusError(response.status, response.headers, content)
            finally:
                self.in_flight -= 1
                if slot is not None:
                    self._slots.release(slot)  # type: ignore[union-attr]  # a slot comes only from _slots
            latency = time.perf_counter() - started
        return parse_reply(orjson.loads(content), latency)  # its JSONDecodeError is json's (retried alike)

    async def aclose(self) -> None:
        """Close the pool or session of the running loop; the next request makes a new one."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    # Preflight ---------------------------------------------------------------------------------------
    def preflight(self, model: str, timeout_s: float = 3.0) -> None:
        """Check that the server answers ``GET {base_url}/models`` before any episode runs.

        A server without a model list (404) counts as answering. A model the list does not name only gets a
        warning (servers such as Ollama accept other spellings). Synchronous, on its own short-lived SDK client,
        so it binds nothing to an event loop.

        Raises:
            LLMUnavailableError: nothing answers (e.g. ``no OpenAI-compatible server at http://127.0.0.1:9/v1
                (connection refused); start one or use llm=local``), or the server refuses the key.
        """
        with openai.OpenAI(base_url=self.base_url, api_key=self.api_key(), timeout=timeout_s,
                           max_retries=0) as client:
            try:
                raw = client.models.with_raw_response.list()
                listing = json.loads(raw.http_response.content)
            except openai.APITimeoutError:
                raise self._unavailable(f"no answer within {timeout_s:g} s") from None
            except openai.APIConnectionError as error:
                raise self._unavailable(connection_reason(error)) from None
            except openai.NotFoundError:
                return  # it answers; it just has no model list
            except openai.APIStatusError as error:
                said = one_line(server_says(error))
                if error.status_code in (401, 403):
                    raise LLMUnavailableError(self.redact(
                        f"{self.server} refused the API key (HTTP {error.status_code}: {said}); "
                        + (f"check the key in ${self.api_key_env}" if self.api_key_env else
                           "set llm.api_key_env to the name of the variable holding the server's key")),
                        kind=f"HTTP {error.status_code}", status=error.status_code) from None
                # It answers; 5xx/429 may pass, and requests retry them anyway.
                logger.warning("%s answered GET /models with HTTP %d (%s); going on", self.server,
                               error.status_code, self.redact(said))
                return
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise LLMUnavailableError(f"{self.server} answered GET /models with something that is not JSON: "
                                          f"is llm.base_url the server's OpenAI-compatible /v1 address?",
                                          kind="JSONDecodeError") from None
        served = [entry.get("id") for entry in listing.get("data", []) if isinstance(entry, dict)] \
            if isinstance(listing, dict) and isinstance(listing.get("data"), list) else []
        if served and model not in served:
            logger.warning("%s does not list model %r (it lists %s); requests may be refused", self.server,
                           model, ", ".join(map(str, served[:8])) + (", ..." if len(served) > 8 else ""))

    def _unavailable(self, reason: str) -> LLMUnavailableError:
        return LLMUnavailableError(self.redact(f"no OpenAI-compatible server at {self.server} ({reason}); "
                                               f"start one or use llm=local"), kind="unavailable")


async def _close_at_loop_end(closeable: aiohttp.ClientSession | HTTP1Pool) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await closeable.close()


def _forget(session: aiohttp.ClientSession) -> None:
    """Forget a session whose event loop has ended (a transport used under one ``asyncio.run`` after another).

    Its sockets cannot be closed on a dead loop and need no goodbye, and aiohttp would warn of them. aiohttp has no
    public synchronous close: ``connector.close()`` schedules its waiting on the connector's (dead) loop. So this
    calls the synchronous part it is made of, ``_close()``, the one private call of the LLM layer.
    """
    connector = session.connector
    session.detach()
    if connector is not None:
        connector._close()  # noqa: SLF001 - see the docstring: no public synchronous way on a dead loop


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``; ``NO_PROXY``)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


@functools.cache  # loading the CA bundle takes ~30 ms; one context serves every session of the process
def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi
    except ImportError:  # the system's CA store, then
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_reply(payload: Any, latency_s: float) -> Reply:
    """Texts and token counts of a chat completion body; :class:`MalformedReply` when it is none.

    An empty or ``null`` content is an empty text, not an error. Cached prompt tokens come from
    ``usage.prompt_tokens_details.cached_tokens`` (OpenAI, vLLM, newer llama.cpp) or else llama.cpp's own
    ``timings.cache_n``; ``None`` when the server says neither.
    """
    if not isinstance(payload, dict):
        raise MalformedReply(f"the answer is JSON but not an object: {type(payload).__name__}")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        error = payload.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        raise MalformedReply(f"the answer has no choices{f' (it says: {said})' if said else ''}")
    texts: list[str] = []
    token_logprobs: list[list[dict[str, Any]] | None] = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise MalformedReply("a choice of the answer has no message")
        content = message.get("content")
        if isinstance(content, list):  # content parts, as some servers send
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        texts.append(content if isinstance(content, str) else "")
        token_logprobs.append(_token_logprobs(choice.get("logprobs")))
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    details = usage.get("prompt_tokens_details")
    cached = _int_or_none(details.get("cached_tokens")) if isinstance(details, dict) else None
    timings = payload.get("timings")
    if cached is None and isinstance(timings, dict):
        cached = _int_or_none(timings.get("cache_n"))
    return Reply(texts, _int_or_none(usage.get("prompt_tokens")) or 0,
                 _int_or_none(usage.get("completion_tokens")) or 0, cached, latency_s,
                 token_logprobs if any(entry is not None for entry in token_logprobs) else None)


def _token_logprobs(logprobs: Any) -> list[dict[str, Any]] | None:
    """A choice's ``logprobs.content`` as ``[{"token", "logprob", "id"?}]`` (top alternatives dropped).

    ``None`` when it has none. A malformed entry drops the whole list: logprobs are extra, never a reason to fail.
    """
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    tokens = []
    for entry in content:
        if not (isinstance(entry, dict) and isinstance(entry.get("logprob"), int | float)):
            return None
        token = {"token": entry.get("token"), "logprob": float(entry["logprob"])}
        if _int_or_none(entry.get("id")) is not None:
            token["id"] = entry["id"]
        tokens.append(token)
    return tokens

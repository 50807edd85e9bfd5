"""HTTP1Pool: a small keep-alive HTTP/1.1 client for one plain ``http://`` server, on asyncio and httptools.

:class:`~agents.llm.transport.HTTPTransport` posts its chat requests to plain-http servers (llama.cpp, vLLM, the
embedded server) through this pool instead of aiohttp: a request is one ``transport.write`` of a header block built
once, and the answer is parsed by ``httptools`` (llhttp, the C parser uvicorn uses) straight from
``data_received``. It costs about a third of aiohttp's CPU per request (the transport's docstring has the numbers),
which is what a CPU-bound process at 64+ streams spends on each decision. It does only what those servers need:
``POST`` with a body, ``Content-Length`` or chunked answers, or an answer that ends when the server closes the
connection. No TLS, proxies, redirects, cookies or authentication of its own (the caller's headers carry the key).

Connections: idle ones are reused last-in first-out; a connection goes back to the pool only after a complete
answer that keeps it alive (llhttp's ``should_keep_alive()``, so no ``Connection: close``, and not HTTP/1.0 without
keep-alive). One that timed out, was cancelled or failed is closed, never pooled. Idle connections the server has
closed (the loop saw it, or the socket is readable while idle: an EOF, reset or unasked data) are dropped when
taken, and one whose request could not even be written is replaced by a fresh connection once, silently: neither is
a fault. A connection that the server closes after it took the request, before any byte of the answer, is a fault
(``ServerDisconnectedError``), as it is for aiohttp: the server may have acted on the request, which only a race
with an idle-connection close (its FIN crossing the request) would tell apart from a server that drops requests.

Errors are the ones :mod:`agents.llm.errors` already classifies:

* cannot connect: the ``OSError`` of ``loop.create_connection`` (``ConnectionRefusedError``, ``socket.gaierror``);
* the connection ends before the answer's headers: ``aiohttp.ServerDisconnectedError``, or ``aiohttp.ClientOSError``
  with the reset's errno; within the body: ``aiohttp.ClientPayloadError``;
* not HTTP/1.1, or an unreadable body encoding: :class:`MalformedHTTP` (a :class:`~agents.llm.errors.MalformedReply`);
* too slow: ``TimeoutError``, the whole exchange (connecting included) within ``timeout_s``.

No ``Accept-Encoding`` is sent, so servers answer with the identity encoding; a ``gzip`` or ``deflate`` body that
comes anyway is decompressed (zlib); any other encoding is a :class:`MalformedHTTP`.
"""

from __future__ import annotations

import asyncio
import select
import zlib
from collections.abc import Mapping
from typing import NamedTuple, cast

import aiohttp
import httptools

from agents.llm.errors import MalformedReply

__all__ = ["HTTP1Pool", "MalformedHTTP", "Response"]

# Interim (1xx) answers are skipped; these carry no body whatever their headers say.
_NO_BODY_STATUSES = frozenset({204, 304})


class MalformedHTTP(MalformedReply):
    """The server's answer is not valid HTTP/1.1, or its body's encoding cannot be read (retried like a bad body)."""


class Response(NamedTuple):
    """One HTTP answer: status, headers (lower-case names; repeated ones joined with ``", "``) and decoded body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Unsent(Exception):
    """The request could not be written: the connection was already closed (EPIPE or a reset at once)."""


class HTTP1Pool:
    """Keep-alive HTTP/1.1 connections to one ``http://`` server, for the event loop that makes the pool.

    Args:
        host: the server's host name or address.
        port: its TCP port.
        headers: sent with every request (``Host`` and ``Content-Length`` are added); built into bytes once.
        timeout_s: seconds for one whole exchange, connecting included (``None``: no limit).

    Attributes:
        connections_made: connections opened so far (a new one per request means keep-alive is not working).

    Example:
        >>> pool = HTTP1Pool("127.0.0.1", 8000, {"Content-Type": "application/json"}, timeout_s=30.0)
        >>> pool
        HTTP1Pool('127.0.0.1', 8000)
        >>> # response = await pool.post("/v1/chat/completions", b'{"model": "m", ...}'); await pool.close()
    """

    def __init__(self, host: str, port: int, headers: Mapping[str, str], timeout_s: float | None = None) -> None:
        for name, value in headers.items():
            if any(character in f"{name}{value}" for character in "\r\n\0") or not name or ":" in name:
                raise ValueError(f"expected HTTP header names and values without line breaks, actually {name!r}")
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.connections_made = 0
        authority = f"[{host}]" if ":" in host else host  # an IPv6 address
        fields = {"Host": f"{authority}:{port}", **headers}
        self._header_block = "".join(f"{name}: {value}\r\n" for name, value in fields.items()).encode("latin-1")
        self._heads: dict[str, bytes] = {}  # path -> request line and headers up to Content-Length's value
        self._idle: list[_Connection] = []
        self._connections: set[_Connection] = set()  # open ones, idle or busy: close() ends them all
        self._closed = False

    def __repr__(self) -> str:  # the headers may hold an API key
        return f"HTTP1Pool({self.host!r}, {self.port})"

    async def post(self, path: str, body: bytes) -> Response:
        """POST ``body`` to ``path`` and read the whole answer, on an idle connection or a new one.

        Raises:
            OSError: cannot connect (``ConnectionRefusedError``, ``socket.gaierror``, ...).
            aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError: the connection
                ended before the answer did.
            MalformedHTTP: the answer is not HTTP/1.1, or in an encoding other than gzip or deflate.
            TimeoutError: no whole answer within ``timeout_s``.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        head = self._heads.get(path)
        if head is None:
            if any(character in path for character in " \r\n\0") or not path.startswith("/"):
                raise ValueError(f"expected a path starting with / and without spaces, actually {path!r}")
            head = self._heads[path] = (f"POST {path} HTTP/1.1\r\n".encode("latin-1") + self._header_block
                                        + b"Content-Length: ")
        request = b"%b%d\r\n\r\n%b" % (head, len(body), body)
        async with asyncio.timeout(self.timeout_s):
            connection = self._checkout()
            if connection is not None:
                try:
                    return await connection.exchange(request)
                except _Unsent:
                    pass  # the server had closed it while idle: a new connection, not a fault
            connection = await self._connect()
            try:
                return await connection.exchange(request)
            except _Unsent:  # even a brand-new connection is gone
                raise aiohttp.ServerDisconnectedError() from None

    async def close(self) -> None:
        """Close every connection (requests still in flight fail); the pool takes no more requests."""
        self._closed = True
        self._idle.clear()
        for connection in list(self._connections):
            connection.close()
        await asyncio.sleep(0)  # their connection_lost runs now, closing the sockets before the loop may end

    def _checkout(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.reusable():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        self.connections_made += 1
        if self._closed:  # closed while this one was being made
            connection.close()
            raise RuntimeError(f"{self!r} is closed")
        return connection


class _Connection(asyncio.Protocol):
    """One connection: writes a request and hands the answer that httptools parses (its ``on_*`` callbacks) back."""

    def __init__(self, pool: HTTP1Pool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._poll = select.poll()  # is the socket readable while idle (closed by the server)?
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[Response, bool]] | None = None
        self._lost = False
        self._reset()

    def _reset(self) -> None:
        # New objects, not cleared ones: a finished Response keeps the previous answer's.
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._headers_done = False
        self._until_close = False  # the body ends when the connection does (no length, not chunked)

    # The pool's side ----------------------------------------------------------------------------------
    def reusable(self) -> bool:
        """Still open as far as anyone can tell without writing: not closed, nothing to read while idle."""
        return not self._lost and self._transport is not None and not self._transport.is_closing() \
            and not self._poll.poll(0)

    def close(self) -> None:
        """Close the connection without waiting (an answer in flight fails)."""
        self._lost = True
        if self._transport is not None:
            self._transport.close()

    async def exchange(self, request: bytes) -> Response:
        """Write ``request``, wait for the whole answer; pool the connection if the answer allows it."""
        assert self._transport is not None and self._waiter is None, "one request at a time on a connection"
        self._reset()
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        if self._transport.is_closing():  # the write failed at once: nothing went out
            self._waiter = None
            self._lost = True
            raise _Unsent
        try:
            response, keep_alive = await waiter
        except BaseException:  # failed, timed out or cancelled: whatever comes next on it is not ours
            self._waiter = None
            self.close()
            raise
        # Not while some of the request is still unsent (a server that answered early): the rest would follow.
        if keep_alive and not self._lost and not self._transport.get_write_buffer_size():
            self._pool._idle.append(self)  # noqa: SLF001 - the pool and its connections are one unit
        else:
            self.close()
        encoding = response.headers.get("content-encoding")
        if encoding is not None and encoding.lower() != "identity":
            return response._replace(body=_decoded(response.body, encoding.lower()))
        return response

    # asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport subclass: uvloop's (which Ray's workers and
        # uvicorn install as the loop) is not.
        self._transport = cast(asyncio.Transport, transport)
        self._poll.register(transport.get_extra_info("socket").fileno(), select.POLLIN)
        self._pool._connections.add(self)  # noqa: SLF001

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing was asked (e.g. a 408 before the server closes): not reusable
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:  # an upgrade was never asked
            self._fail(MalformedHTTP(f"the answer from {self._pool.host}:{self._pool.port} is not HTTP/1.1 "
                                     f"({type(error).__name__}: {error})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._pool._connections.discard(self)  # noqa: SLF001
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and self._until_close:  # the close is the end of the body
            self._done(keep_alive=False)
            return
        error: Exception
        if self._headers_done:
            error = aiohttp.ClientPayloadError(
                f"the connection closed before the whole body came ({sum(map(len, self._body))} bytes came)")
        elif isinstance(exc, OSError) and exc.errno is not None:
            error = aiohttp.ClientOSError(exc.errno, exc.strerror)
        else:
            error = aiohttp.ServerDisconnectedError()
        error.__cause__ = exc
        self._fail(error)

    # httptools' callbacks -----------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        earlier = self._headers.get(key)
        self._headers[key] = text if earlier is None else f"{earlier}, {text}"

    def on_headers_complete(self) -> None:
        self._status = status = self._parser.get_status_code()
        self._headers_done = True
        self._until_close = status >= 200 and status not in _NO_BODY_STATUSES \
            and "content-length" not in self._headers \
            and "chunked" not in self._headers.get("transfer-encoding", "").lower()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:  # 100 Continue and the like: the real answer follows on the same connection
            self._reset()
            return
        self._done(keep_alive=self._parser.should_keep_alive()
                   and "close" not in self._headers.get("connection", "").lower())

    # ------------------------------------------------------------------------------------------------
    def _done(self, keep_alive: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((Response(self._status, self._headers, b"".join(self._body)), keep_alive))

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


def _decoded(body: bytes, encoding: str) -> bytes:
    """``body`` decompressed from a ``Content-Encoding`` of gzip or deflate (zlib-wrapped or raw)."""
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # servers that send raw deflate without the zlib wrapper
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error as error:
        raise MalformedHTTP(f"the answer's {encoding} body does not decompress ({error})") from None
    raise MalformedHTTP(f"the answer came in Content-Encoding {encoding!r}, which this client cannot read (it asks "
                        f"for none; gzip and deflate are read anyway)")

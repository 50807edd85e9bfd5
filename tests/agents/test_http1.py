"""The plain-http client (agents/llm/http1.py) and HTTPTransport over it, against real servers on 127.0.0.1.

``RawServer`` answers with scripted raw bytes, for what FakeLLMServer cannot do (chunked or close-delimited
bodies, a drop in the middle of an answer, gzip, garbage, an idle keep-alive connection closed by the server); it
counts the connections it accepts. The LLMClient-level faults (5xx, 429 and Retry-After, drops, timeouts) run
against FakeLLMServer as in test_llm_faults.py. Every exchange is bounded by a timeout of a few seconds at most.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from agents.llm.client import LLMClient, LLMError, RetryPolicy, fault_kind
from agents.llm.errors import ServerStatusError, retry_after_s
from agents.llm.http1 import HTTP1Pool, MalformedHTTP
from agents.llm.transport import HTTPTransport
from tests.fake_llm_server import FakeLLMServer, Faults

MESSAGES = [{"role": "user", "content": "hello"}]
CLOSE, RESET = "close", "reset"
Step = bytes | float | str  # bytes to send, seconds to wait, or CLOSE / RESET the connection
Script = Callable[[int, bytes], list[Step]]  # (request number from 0, request body) -> what the server does


def completion(text: str = "hi") -> bytes:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()


def answer(body: bytes, status: str = "200 OK", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
            .encode() + body)


def ok(index: int, body: bytes) -> list[Step]:
    return [answer(completion(f"answer {index}"))]


class RawServer:
    """A threaded HTTP/1.1 server whose answers are scripted steps; keep-alive unless a step closes.

    Attributes:
        connections: connections accepted so far.
        ended: connections that ended, closed by either side.
        requests: (request line, header block, body) of each request, in order.
    """

    def __init__(self, script: Script = ok) -> None:
        self.script = script
        self.connections = 0
        self.ended = 0
        self.requests: list[tuple[bytes, bytes, bytes]] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        pending = b""
        try:
            while True:
                while b"\r\n\r\n" not in pending:
                    data = connection.recv(65536)
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                request_line, _, header_block = head.partition(b"\r\n")
                length = next((int(line.split(b":")[1]) for line in header_block.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(pending) < length:
                    data = connection.recv(1 << 20)
                    if not data:
                        return
                    pending += data
                body, pending = pending[:length], pending[length:]
                with self._lock:
                    index = len(self.requests)
                    self.requests.append((request_line, header_block, body))
                for step in self.script(index, body):
                    if isinstance(step, bytes):
                        connection.sendall(step)
                    elif isinstance(step, float):
                        time.sleep(step)
                    else:
                        if step == RESET:  # SO_LINGER 0: close sends a TCP RST
                            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        connection.close()
                        return
        except OSError:
            pass
        finally:
            connection.close()
            with self._lock:
                self.ended += 1

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for connection in self._sockets:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test on asyncio's own loop and on uvloop's, which Ray's workers and uvicorn install (its transports are
    not asyncio.Transport subclasses)."""
    if request.param == "asyncio":
        yield "asyncio"
        return
    uvloop = pytest.importorskip("uvloop", reason="uvloop comes with the train extra (verifiers)")
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield "uvloop"
    finally:
        asyncio.set_event_loop_policy(previous)


@pytest.fixture
def raw() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


def run(coroutine_function: Callable[[], Any], limit_s: float = 10.0) -> Any:
    """Run a test's coroutine in a fresh loop, failing it after ``limit_s``."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine_function(), limit_s)

    return asyncio.run(bounded())


def posts(server: RawServer, bodies: list[bytes], timeout_s: float = 5.0, concurrently: bool = False) -> list[Any]:
    async def go() -> list[Any]:
        pool = HTTP1Pool("127.0.0.1", server.port, {"Content-Type": "application/json"}, timeout_s)
        try:
            if concurrently:
                return list(await asyncio.gather(*(pool.post("/v1/chat/completions", body) for body in bodies)))
            return [await pool.post("/v1/chat/completions", body) for body in bodies]
        finally:
            await pool.close()

    return run(go)


def client(url: str, timeout_s: float = 2.0, max_retries: int = 2, max_concurrency: int = 8) -> LLMClient:
    return LLMClient("m", HTTPTransport(url, None, timeout_s=timeout_s, max_concurrency=max_concurrency),
                     retry=RetryPolicy(max_retries, backoff_s=0.001, max_backoff_s=0.01))


def complete_all(llm: LLMClient, count: int = 1, pause_s: float = 0.0, block_loop_s: float = 0.0) -> list[Any]:
    """``count`` completions one after another; between them the loop sleeps ``pause_s`` or is blocked."""
    async def go() -> list[Any]:
        completions = []
        try:
            for index in range(count):
                if index:
                    await asyncio.sleep(pause_s)
                    time.sleep(block_loop_s)  # the loop sees nothing meanwhile (a busy loop at many streams)
                completions.append(await llm.complete([{"role": "user", "content": f"question {index}"}]))
        finally:
            await llm.aclose()
        return completions

    return run(go)


# ---- the wire: keep-alive, body framings, encodings ------------------------------------------------------

def test_keep_alive_reuses_one_connection(raw: RawServer) -> None:
    responses = posts(raw, [b'{"i": %d}' % i for i in range(50)])
    assert [r.status for r in responses] == [200] * 50 and raw.connections == 1
    assert responses[7].body == completion("answer 7")
    assert responses[0].headers["content-type"] == "application/json"  # lower-case names
    request_line, headers, body = raw.requests[3]
    assert request_line == b"POST /v1/chat/completions HTTP/1.1" and body == b'{"i": 3}'
    assert b"Content-Length: 8" in headers and b"Host: 127.0.0.1:" in headers
    assert b"accept-encoding" not in headers.lower()  # so servers answer uncompressed


def test_concurrent_requests_reuse_their_connections(raw: RawServer) -> None:
    responses = posts(raw, [b"{}"] * 16 * 5, concurrently=True)
    assert len(responses) == 80 and raw.connections == 80  # all at once: one connection each

    async def rounds() -> None:
        pool = HTTP1Pool("127.0.0.1", raw.port, {}, timeout_s=5.0)
        try:
            for _ in range(5):
                await asyncio.gather(*(pool.post("/", b"{}") for _ in range(16)))
        finally:
            await pool.close()
        assert pool.connections_made == 16

    run(rounds)
    assert raw.connections == 80 + 16


def test_chunked_answer_in_pieces_keeps_the_connection(raw: RawServer) -> None:
    body = completion("a chunked answer")
    chunks = [body[:10], body[10:25], body[25:]]
    raw.script = lambda index, _: [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        *[b"%x\r\n%b\r\n" % (len(chunk), chunk) for chunk in chunks[:2]], 0.02,
        b"%x\r\n%b\r\n0\r\n\r\n" % (len(chunks[2]), chunks[2])]
    responses = posts(raw, [b"{}", b"{}"])
    assert [r.body for r in responses] == [body, body] and raw.connections == 1


def test_answer_without_length_ends_at_close(raw: RawServer) -> None:
    body = completion("until close") * 50
    raw.script = lambda index, _: [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", body[:100], 0.02,
                                   body[100:], CLOSE]
    responses = posts(raw, [b"{}", b"{}"])
    assert [r.body for r in responses] == [body, body] and raw.connections == 2


def test_connection_close_and_http10_answers_are_not_pooled(raw: RawServer) -> None:
    raw.script = lambda index, _: [answer(completion(), headers="Connection: close\r\n")
                                   if index % 2 else answer(completion()).replace(b"HTTP/1.1", b"HTTP/1.0", 1)]
    assert [r.status for r in posts(raw, [b"{}"] * 4)] == [200] * 4 and raw.connections == 4


def test_interim_100_continue_is_skipped(raw: RawServer) -> None:
    raw.script = lambda index, _: [b"HTTP/1.1 100 Continue\r\n\r\n", answer(completion("after continue"))]
    (response,) = posts(raw, [b"{}"])
    assert response.status == 200 and response.body == completion("after continue")


def test_large_bodies_both_ways(raw: RawServer) -> None:
    sent = b'{"blob": "' + b"x" * (8 << 20) + b'"}'
    raw.script = lambda index, body: [answer(body[::-1])]
    (response,) = posts(raw, [sent])
    assert response.body == sent[::-1] and raw.requests[0][2] == sent


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_answers_are_decoded(raw: RawServer, encoding: str) -> None:
    import zlib
    packed = gzip.compress(completion()) if encoding == "gzip" else zlib.compress(completion())
    raw.script = lambda index, _: [answer(packed, headers=f"Content-Encoding: {encoding}\r\n")]
    (response,) = posts(raw, [b"{}"])
    assert response.body == completion()


@pytest.mark.parametrize(("reply", "says"), [
    (b"SMTP ready\r\n\r\n", "is not HTTP/1.1"),
    (answer(b"abc", headers="Content-Encoding: br\r\n"), "Content-Encoding 'br'"),
    (answer(b"not gzip", headers="Content-Encoding: gzip\r\n"), "does not decompress"),
])
def test_malformed_answers_raise_a_retried_malformed_reply(raw: RawServer, reply: bytes, says: str) -> None:
    raw.script = lambda index, _: [reply] if index < 2 else ok(index, b"")
    with pytest.raises(MalformedHTTP, match=says) as raised:
        posts(raw, [b"{}"])
    assert fault_kind(raised.value) == "MalformedHTTP"
    llm = client(raw.base_url)
    (done,) = complete_all(llm)
    assert done.texts == ["answer 2"] and llm.retries == {"MalformedHTTP": 1} and llm.failures == 0


# ---- dropped connections ---------------------------------------------------------------------------------

@pytest.mark.parametrize("block_loop_s", [0.0, 0.2])  # 0.2: the close is still unseen by the loop when it reuses
def test_idle_connection_closed_by_the_server_is_replaced_silently(raw: RawServer, block_loop_s: float) -> None:
    raw.script = lambda index, _: [answer(completion(f"answer {index}")), 0.05, RESET if index % 2 else CLOSE]
    llm = client(raw.base_url, max_retries=0)  # any fault would fail the request
    completions = complete_all(llm, count=4, pause_s=0.2 - block_loop_s, block_loop_s=block_loop_s)
    assert [c.texts for c in completions] == [[f"answer {i}"] for i in range(4)]
    assert not llm.retries and llm.failures == 0 and raw.connections == 4 and len(raw.requests) == 4


@pytest.mark.parametrize("fault", ["hang_drop", "connection_reset"])
def test_a_drop_after_the_request_on_a_reused_connection_is_a_counted_fault(fault: str) -> None:
    """The server took the request and may have acted on it: a fault, retried by the client, not hidden."""
    with FakeLLMServer(faults=Faults(hang_s=0.05)) as server:
        llm = client(server.base_url)
        async def go() -> None:
            try:
                await llm.complete(MESSAGES)
                server.fault_script = [fault]
                await llm.complete([{"role": "user", "content": "again"}])
            finally:
                await llm.aclose()

        run(go)
        assert sum(llm.retries.values()) == 1 and set(llm.retries) <= {"ServerDisconnected", "ConnectionReset"}
        assert server.injected == {fault: 1} and len(server.requests) == 3


@pytest.mark.parametrize(("steps", "error", "kind"), [
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + b"{" * 100, CLOSE], aiohttp.ClientPayloadError,
     "ClientPayloadError"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n", RESET], aiohttp.ClientPayloadError,
     "ClientPayloadError"),
    ([b"HTTP/1.1 200 OK\r\nContent-Le", CLOSE], aiohttp.ServerDisconnectedError, "ServerDisconnected"),
    ([CLOSE], aiohttp.ServerDisconnectedError, "ServerDisconnected"),
])
def test_a_drop_mid_answer_is_a_classified_fault_and_retried(raw: RawServer, steps: list[Step], error: type,
                                                             kind: str) -> None:
    raw.script = lambda index, _: steps if index == 0 else ok(index, b"")
    with pytest.raises(error) as raised:
        posts(raw, [b"{}"])
    assert fault_kind(raised.value) == kind
    llm = client(raw.base_url)
    raw.script = lambda index, _: steps if index == 1 else ok(index, b"")
    (done,) = complete_all(llm)
    assert done.texts == ["answer 2"] and llm.retries == {kind: 1} and llm.failures == 0


def test_connection_refused_gives_the_one_line_messages() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    llm = client(url, max_retries=1)
    with pytest.raises(LLMError) as raised:
        complete_all(llm)
    # The OSError's text is the loop's: asyncio names the address, uvloop says what happened.
    assert re.fullmatch(rf"m at {re.escape(url)}: gave up after 2 attempts: ConnectionRefusedError: (connect call "
                        rf"failed \('127\.0\.0\.1', {port}\)|connection refused)", str(raised.value))
    assert llm.retries == {"ConnectionRefusedError": 1} and llm.failures == 1
    with pytest.raises(LLMError, match=rf"^no OpenAI-compatible server at {url} \(connection refused\); start one "
                                       r"or use llm=local$"):
        llm.preflight()


def test_timeout_closes_the_connection_and_is_retried_then_reported(raw: RawServer) -> None:
    raw.script = lambda index, _: [1.0] + ok(index, b"")  # answers after 1 s; the client waits 0.2 s
    llm = client(raw.base_url, timeout_s=0.2, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(LLMError, match=r"gave up after 2 attempts: Timeout: no answer within 0.2 s"):
        complete_all(llm)
    assert time.perf_counter() - started < 1.0 and llm.retries == {"Timeout": 1}
    assert raw.connections == 2  # a timed-out connection is closed, never reused


# ---- HTTP statuses, as before ----------------------------------------------------------------------------

def test_5xx_and_429_with_retry_after_are_retried_as_before() -> None:
    with FakeLLMServer(faults=Faults(retry_after="0.3")) as server:
        server.fault_script = ["http_503", "http_429"]
        llm = client(server.base_url)
        started = time.perf_counter()
        (done,) = complete_all(llm)
        assert time.perf_counter() - started >= 0.3  # backoff alone is ~1 ms
        assert done.texts == ["Scripted free-text answer."] and llm.retries == {"HTTP 503": 1, "HTTP 429": 1}


def test_status_error_headers_are_case_insensitive(raw: RawServer) -> None:
    raw.script = lambda index, _: [answer(b'{"error": {"message": "slow down"}}', "429 Too Many Requests",
                                          "Retry-After: 7\r\nX-Thing: a\r\nX-Thing: b\r\n")]
    transport = HTTPTransport(raw.base_url, None)

    async def go() -> None:
        try:
            await transport.send({"model": "m", "messages": MESSAGES, "n": 1})
        finally:
            await transport.aclose()

    with pytest.raises(ServerStatusError) as raised:
        run(go)
    error = raised.value
    assert error.status_code == 429 and retry_after_s(error) == 7.0
    assert error.headers["RETRY-AFTER"] == "7" and error.headers["x-thing"] == "a, b"


# ---- HTTPTransport: which client, event loops, closing ---------------------------------------------------

def test_proxied_plain_http_goes_through_aiohttp(raw: RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", raw.base_url.removesuffix("/v1"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    (done,) = complete_all(client("http://llm.invalid:8000/v1"))
    assert done.texts == ["answer 0"]
    assert raw.requests[0][0] == b"POST http://llm.invalid:8000/v1/chat/completions HTTP/1.1"  # a proxy's form


def test_each_event_loop_gets_its_own_pool_and_aclose_closes_it(raw: RawServer) -> None:
    llm = client(raw.base_url)
    for round_ in range(2):
        complete_all(llm, count=3)  # a new loop each time; aclose at the end
        assert raw.connections == round_ + 1
    deadline = time.monotonic() + 3
    while raw.ended < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert raw.ended == 2

    unclosed = HTTPTransport(raw.base_url, None)  # never aclose()d: closed at the end of its loop
    run(lambda: unclosed.send({"model": "m", "messages": MESSAGES, "n": 1}))
    deadline = time.monotonic() + 3
    while raw.ended < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert raw.connections == 3 and raw.ended == 3

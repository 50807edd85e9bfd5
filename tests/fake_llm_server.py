"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for exact scripting and fault injection.

It speaks the real ``/v1/chat/completions`` and ``/v1/models`` protocol (HTTP/1.1, keep-alive) to the real
``openai`` client; nothing is monkeypatched. A test gives it a ``responder(request) -> reply text`` (called
once per choice) and can make requests fail in the ways real servers and networks do:

* ``fail_next``: HTTP statuses for the next requests (generic error body).
* ``fault_script``: fault kinds (see :data:`FAULT_KINDS`) for the next requests, in order.
* ``faults``: a seeded random mix, e.g. ``Faults(rate=0.3, seed=1)``. Whether a request gets a fault, and
  which, depends only on the seed, the request body and how often that same body was seen before, so the
  same requests get the same faults whatever order concurrent streams send them in, and a retried request
  draws afresh.

Fault kinds, and what a client sees:

=================  ==========================================================================================
http_500/503       5xx with an OpenAI-style error body
http_429           429 with ``Retry-After: Faults.retry_after`` (seconds or an HTTP date)
hang_drop          no answer for ``Faults.hang_s``, then the connection closes (ServerDisconnected, or a
                   read timeout if the client gives up first)
connection_reset   the connection is reset (TCP RST) instead of answered
truncated_json     200 whose JSON body is cut in half (Content-Length matches the cut body: JSONDecodeError)
no_message         200 whose choice has no ``message``
odd_payload        200 whose ``choices`` is a string
slow               the normal answer after ``Faults.slow_s`` (a read timeout where the client waits less)
empty_content      200 with ``content: ""``: not an error, an empty reply
random_text        200 with 80 seeded random characters: not an error, an unparsable reply
http_400           context length exceeded (OpenAI's wording)
http_400_schema    ``response_format`` schema rejected
http_401           bad key; the message repeats the whole key sent (OpenAI masks it) to test redaction
http_403/404       no access to / no such model (``model_not_found``)
http_422           a FastAPI-style ``{"detail": [{"loc", "msg"}]}`` validation error (vLLM and friends)
=================  ==========================================================================================

``injected`` counts what was injected, by kind. A request with ``logprobs: true`` gets llama.cpp-style
``logprobs.content`` (a token per 4 characters, with an id). Usage reports tokens as characters // 4 and simulates a
prefix cache: ``cached_tokens`` is the longest common prefix (in characters // 4) of this request's messages
with any of the last ``prefix_slots`` requests', reported as OpenAI/vLLM do
(``usage.prompt_tokens_details.cached_tokens``), as llama.cpp does (that and ``timings.cache_n``), as older
llama.cpp does (``timings`` only) or not at all: see ``cache_report``.

Example:
    >>> with FakeLLMServer(faults=Faults(rate=0.3, seed=1, slow_s=0.1)) as server:  # doctest: +SKIP
    ...     server.fault_script = ["truncated_json", "http_429"]
    ...     ...  # point a client at server.base_url
    ...     server.injected
    Counter({'truncated_json': 1, 'http_429': 1, ...})
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["FakeLLMServer", "Faults", "FAULT_KINDS", "TRANSIENT_FAULTS", "first_action_responder"]

Responder = Callable[[dict[str, Any]], str]
CacheReport = Literal["openai", "llama.cpp", "timings"] | None

# What a flaky server or network does now and then: the default mix of ``Faults``. "empty_content",
# "random_text" and "slow" (if it answers within the client's timeout) are not errors: a client returns them.
TRANSIENT_FAULTS = ("http_500", "http_429", "hang_drop", "truncated_json", "empty_content", "random_text",
                    "connection_reset", "slow")
# Requests a server refuses for good; retrying cannot help.
REJECTIONS = ("http_400", "http_400_schema", "http_401", "http_403", "http_404", "http_422")
FAULT_KINDS = (*TRANSIENT_FAULTS, "http_503", "no_message", "odd_payload", *REJECTIONS)


@dataclass
class Faults:
    """A seeded random mix of faults.

    Args:
        rate: the share of chat requests that get a fault (0 to 1).
        seed: makes the draws reproducible.
        kinds: the fault kinds drawn from, uniformly.
        slow_s: how long a ``slow`` answer takes (a real one: 10 s; tests scale it down).
        hang_s: how long a ``hang_drop`` hangs before it drops the connection.
        retry_after: the ``Retry-After`` header of an ``http_429`` (seconds, or an HTTP date).
    """

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = TRANSIENT_FAULTS
    slow_s: float = 10.0
    hang_s: float = 1.0
    retry_after: str = "1"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(FAULT_KINDS))
        if unknown or not 0 <= self.rate <= 1:
            raise ValueError(f"expected 0 <= rate <= 1 and kinds from {FAULT_KINDS}, actually rate={self.rate}, "
                             f"unknown kinds {unknown}")


def first_action_responder(request: dict[str, Any]) -> str:
    """Answers every request: the schema's first valid action (or 0.5 for numbers), else a fixed text."""
    schema = (request.get("response_format") or {}).get("json_schema", {}).get("schema")
    if schema:
        action_schema = schema["properties"]["action"]
        action: Any = action_schema["enum"][0] if "enum" in action_schema else 0.5
        reply = {"action": action}
        if "thought" in schema["properties"]:
            reply = {"thought": "the pole needs help", **reply}
        return json.dumps(reply)
    return "Scripted free-text answer."


def _openai_error(message: str, type_: str = "invalid_request_error", param: str | None = None,
                  code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _rejection(kind: str, body: dict[str, Any], api_key: str) -> tuple[int, dict[str, Any]]:
    """Status and body as OpenAI (or, for 422, a FastAPI-based server such as vLLM) words them."""
    model = body.get("model")
    if kind == "http_400":
        return 400, _openai_error("This model's maximum context length is 2048 tokens. However, your messages "
                                  "resulted in 9000 tokens. Please reduce the length of the messages.",
                                  param="messages", code="context_length_exceeded")
    if kind == "http_400_schema":
        return 400, _openai_error("Invalid schema for response_format 'reply': In context=(), "
                                  "'additionalProperties' is required to be supplied and to be false.",
                                  param="response_format")
    if kind == "http_401":
        # Worse than OpenAI, which masks all but a few characters: the whole key comes back, so tests can
        # check that clients never repeat what a server says about the key.
        return 401, _openai_error(f"Incorrect API key provided: {api_key}.", code="invalid_api_key")
    if kind == "http_403":
        return 403, _openai_error(f"Project `proj_fake` does not have access to model `{model}`",
                                  code="model_not_found")
    if kind == "http_404":
        return 404, _openai_error(f"The model `{model}` does not exist or you do not have access to it.",
                                  code="model_not_found")
    assert kind == "http_422", kind
    return 422, {"detail": [{"type": "missing", "loc": ["body", "messages", 0, "content"], "msg": "Field required",
                             "input": None}]}


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection over C-level slice comparisons (long prompts)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler never keeps the test process alive
    request_queue_size = 1024  # hundreds of streams connect at once


class FakeLLMServer:
    """Run with ``with FakeLLMServer(responder) as server: ... server.base_url ...``.

    Args:
        responder: the reply text of each choice.
        faults: a seeded random mix of faults (default: none).

    Attributes:
        requests: every JSON chat request body received, in order (faulty ones too).
        authorizations: the Authorization header of each chat request.
        fail_next: HTTP statuses for the next chat requests.
        fault_script: fault kinds for the next chat requests (after ``fail_next``).
        faults: the random fault mix, applied to requests no script covers.
        injected: how many faults of each kind were injected (``fail_next`` ones as ``http_<status>``).
        delay_s: seconds every chat answer waits.
        ignore_n: behave like servers that answer one choice whatever ``n`` asks.
        api_key: when set, requests that do not bring it get a 401.
        models: what ``GET /v1/models`` lists; ``models_status`` != 200 answers that status instead.
        model_listings: how many ``GET /v1/models`` requests came.
        cache_report: how cached prompt tokens are reported: ``"openai"`` (the default), ``"llama.cpp"``,
            ``"timings"`` (llama.cpp's ``timings.cache_n`` only) or ``None``.
        prefix_slots: how many recent prompts the simulated prefix cache remembers.
    """

    def __init__(self, responder: Responder = first_action_responder, faults: Faults | None = None) -> None:
        self.responder = responder
        self.faults = faults or Faults()
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.fail_next: list[int] = []
        self.fault_script: list[str] = []
        self.injected: Counter[str] = Counter()
        self.delay_s = 0.0
        self.ignore_n = False
        self.api_key: str | None = None
        self.models = ["scripted"]
        self.models_status = 200
        self.model_listings = 0
        self.cache_report: CacheReport = "openai"
        self.prefix_slots = 8
        self._recent_prompts: deque[str] = deque(maxlen=self.prefix_slots)
        self._seen_bodies: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # wakes sleeping handlers at shutdown
        self._connections: set[socket.socket] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:  # the client is gone (a dropped or reset connection)
                    pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.rstrip("/").endswith("/models"):
                    with server._lock:
                        server.model_listings += 1
                    if not server._authorized(self.headers.get("Authorization", "")):
                        self._send(*_rejection("http_401", {}, self._bearer()))
                    elif server.models_status != 200:
                        self._send(server.models_status, _openai_error("Not Found", code="not_found"))
                    else:
                        self._send(200, {"object": "list", "data": [
                            {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
                            for name in server.models]})
                    return
                self._send(404, _openai_error(f"Invalid URL (GET {self.path})"))

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw)
                authorization = self.headers.get("Authorization", "")
                with server._lock:
                    server.requests.append(body)
                    server.authorizations.append(authorization)
                    status = server.fail_next.pop(0) if server.fail_next else 200
                kind, rng = server._draw_fault(raw) if status == 200 else (f"http_{status}", random.Random(0))
                if kind is not None:
                    with server._lock:
                        server.injected[kind] += 1
                if server.delay_s:
                    server._stopping.wait(server.delay_s)
                if status != 200:
                    self._send(status, {"error": {"message": "injected failure", "type": "server_error"}})
                elif not server._authorized(authorization):
                    self._send(*_rejection("http_401", body, self._bearer()))
                elif kind in REJECTIONS:
                    self._send(*_rejection(kind, body, self._bearer()))
                elif kind is not None and self._fault(kind, body, rng):
                    pass
                else:
                    self._send(200, server._completion(body, empty=kind == "empty_content",
                                                       random_text=rng if kind == "random_text" else None))

            def _bearer(self) -> str:
                return self.headers.get("Authorization", "").removeprefix("Bearer ")

            def _fault(self, kind: str, body: dict[str, Any], rng: random.Random) -> bool:
                """Act out a transport or server fault; False when the request is to be answered after all."""
                faults = server.faults
                if kind == "http_500":
                    self._send(500, _openai_error("The server had an error while processing your request. "
                                                  "Sorry about that!", type_="server_error"))
                elif kind == "http_503":
                    self._send(503, _openai_error("The engine is currently overloaded, please try again later.",
                                                  type_="server_error"))
                elif kind == "http_429":
                    self._send(429, _openai_error("Rate limit reached for requests per min (RPM): Limit 500, "
                                                  "Used 500, Requested 1.", type_="requests",
                                                  code="rate_limit_exceeded"),
                               headers={"Retry-After": faults.retry_after})
                elif kind == "hang_drop":
                    server._stopping.wait(faults.hang_s)
                    self.close_connection = True  # no answer at all: the socket just closes
                elif kind == "connection_reset":
                    # SO_LINGER 0: closing sends a TCP RST instead of an orderly FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                elif kind == "truncated_json":
                    data = json.dumps(server._completion(body)).encode()
                    self._send_bytes(200, data[: len(data) // 2])
                elif kind == "no_message":
                    self._send(200, {"id": "fake", "object": "chat.completion", "created": 0, "model": body["model"],
                                     "choices": [{"index": 0, "finish_reason": "stop"}]})
                elif kind == "odd_payload":
                    self._send(200, {"id": "fake", "object": "chat.completion", "choices": "none today"})
                elif kind == "slow":
                    server._stopping.wait(faults.slow_s)
                    return False
                else:  # "empty_content", "random_text": answered, with odd content
                    return False
                return True

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), headers)

            def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timed out) first
                    self.close_connection = True

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def prompts(self) -> list[str]:
        """All message contents of every request, joined per request."""
        return ["\n".join(m["content"] for m in r["messages"]) for r in self.requests]

    def _authorized(self, authorization: str) -> bool:
        return self.api_key is None or authorization == f"Bearer {self.api_key}"

    def _draw_fault(self, raw: bytes) -> tuple[str | None, random.Random]:
        """The scripted fault, else a seeded draw from the body and how often it was seen."""
        digest = hashlib.sha256(raw).hexdigest()
        with self._lock:
            occurrence = self._seen_bodies[digest]
            self._seen_bodies[digest] += 1
            scripted = self.fault_script.pop(0) if self.fault_script else None
        rng = random.Random(f"{self.faults.seed}:{digest}:{occurrence}")
        if scripted is not None:
            if scripted not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {scripted!r}: expected one of {FAULT_KINDS}")
            return scripted, rng
        if self.faults.rate and rng.random() < self.faults.rate:
            return rng.choice(self.faults.kinds), rng
        return None, rng

    def _completion(self, body: dict[str, Any], empty: bool = False,
                    random_text: random.Random | None = None) -> dict[str, Any]:
        choices = []
        for index in range(1 if self.ignore_n else int(body.get("n", 1))):
            if empty:
                text = ""
            elif random_text is not None:
                text = "".join(random_text.choice("abcdefghij klmnop{}[]\":,.!?0123456789\n") for _ in range(80))
            else:
                text = self.responder({**body, "choice_index": index})
            choices.append({"index": index, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text}})
            if body.get("logprobs"):  # as llama.cpp gives them: a token per 4 characters, with its id
                choices[-1]["logprobs"] = {"content": [
                    {"id": int(hashlib.sha256(text[i:i + 4].encode()).hexdigest()[:4], 16), "token": text[i:i + 4],
                     "logprob": -0.25, "bytes": list(text[i:i + 4].encode())} for i in range(0, len(text), 4)]}
        prompt_chars = sum(len(m["content"]) for m in body["messages"])
        completion_chars = sum(len(c["message"]["content"]) for c in choices)
        prompt_tokens, completion_tokens = prompt_chars // 4, completion_chars // 4
        payload: dict[str, Any] = {
            "id": f"fake-{len(self.requests)}", "object": "chat.completion", "created": 0,
            "model": body["model"], "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        if self.cache_report is not None:
            cached = self._cached_tokens(body, prompt_tokens)
            if self.cache_report in ("openai", "llama.cpp"):
                payload["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
            if self.cache_report in ("llama.cpp", "timings"):
                payload["timings"] = {"cache_n": cached, "prompt_n": prompt_tokens - cached,
                                      "predicted_n": completion_tokens}
        return payload

    def _cached_tokens(self, body: dict[str, Any], prompt_tokens: int) -> int:
        """Characters // 4 of the longest prefix of the joined message contents shared with a recent prompt."""
        prompt = "".join(m["content"] for m in body["messages"])
        with self._lock:
            shared = max((_common_prefix(prompt, earlier) for earlier in self._recent_prompts), default=0)
            if self._recent_prompts.maxlen != self.prefix_slots:
                self._recent_prompts = deque(self._recent_prompts, maxlen=self.prefix_slots)
            self._recent_prompts.append(prompt)
        return min(prompt_tokens, shared // 4)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:  # idle keep-alive connections would otherwise keep their threads waiting
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

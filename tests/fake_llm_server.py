"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for exact scripting and fault injection.

It speaks the real ``/v1/chat/completions`` protocol to the real ``openai`` client; nothing is
monkeypatched. A test gives it a ``responder(request) -> reply text`` (called once per choice), and
can make the next requests fail with an HTTP status or stall.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]


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


class FakeLLMServer:
    """Run with ``with FakeLLMServer(responder) as server: ... server.base_url ...``.

    Attributes:
        requests: every JSON request body received, in order.
    """

    def __init__(self, responder: Responder = first_action_responder) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []  # the Authorization header of each request
        self.fail_next: list[int] = []  # HTTP statuses for the next requests
        self.delay_s = 0.0
        self.ignore_n = False  # behave like servers that answer one choice whatever n asks
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.authorizations.append(self.headers.get("Authorization", ""))
                    status = server.fail_next.pop(0) if server.fail_next else 200
                if server.delay_s:
                    time.sleep(server.delay_s)
                if status != 200:
                    self._send(status, {"error": {"message": "injected failure", "type": "server_error"}})
                    return
                choices = []
                for index in range(1 if server.ignore_n else int(body.get("n", 1))):
                    text = server.responder({**body, "choice_index": index})
                    choices.append({"index": index, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}})
                prompt_chars = sum(len(m["content"]) for m in body["messages"])
                completion_chars = sum(len(c["message"]["content"]) for c in choices)
                self._send(200, {
                    "id": f"fake-{len(server.requests)}", "object": "chat.completion", "created": 0,
                    "model": body["model"], "choices": choices,
                    "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": completion_chars // 4,
                              "total_tokens": (prompt_chars + completion_chars) // 4},
                })

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def prompts(self) -> list[str]:
        """All message contents of every request, joined per request."""
        return ["\n".join(m["content"] for m in r["messages"]) for r in self.requests]

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

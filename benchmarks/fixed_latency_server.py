"""A fast OpenAI-compatible chat server on 127.0.0.1 that answers every request after a fixed delay.

    python benchmarks/fixed_latency_server.py --latency-ms 50 --port 8123

For throughput benchmarks only (tests use ``tests/fake_llm_server.py``): one asyncio event loop with
HTTP/1.1 keep-alive, so the server itself is never the bottleneck at a few thousand requests per second.
Each reply is the first valid action of the request's JSON schema (``0.5`` for numbers), with
``usage`` estimated at 4 characters per token. ``GET /stats`` returns (and restarts) the busy window: chat requests
answered, the first one's arrival and the last reply's time, so a benchmark can count requests/s while the server was
busy, without its client's start-up and wind-down; and the clients' turnaround (total seconds and count) from a reply
to the same connection's next request: the time a stream spends on our side between two requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import time
from typing import Any

__all__ = ["serve", "start_in_process"]

_busy: dict[str, Any] = {}  # this server process's busy window and clients' turnaround, see GET /stats


def _restart_stats() -> None:
    _busy.update(requests=0, first=None, last=None, turnaround_s=0.0, turnarounds=0)


_restart_stats()


def _reply_text(body: dict[str, Any]) -> str:
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
    if not schema:
        return "A fixed free-text answer."
    action_schema = schema["properties"]["action"]
    reply: dict[str, Any] = {"action": action_schema["enum"][0] if "enum" in action_schema else 0.5}
    if "thought" in schema["properties"]:
        reply = {"thought": "steady", **reply}
    return json.dumps(reply)


def _response(body: dict[str, Any]) -> bytes:
    text = _reply_text(body)
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    n = int(body.get("n", 1))
    payload = json.dumps({
        "id": "fixed", "object": "chat.completion", "created": 0, "model": body.get("model", "fixed"),
        "choices": [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    for i in range(n)],
        "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": n * len(text) // 4,
                  "total_tokens": prompt_chars // 4 + n * len(text) // 4},
    }).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(payload)).encode()
            + b"\r\n\r\n" + payload)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency_s: float) -> None:
    replied = None  # when this connection's last chat reply was sent
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = time.perf_counter()
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            body_bytes = await reader.readexactly(int(headers.get("content-length", 0)))
            if request_line.startswith("GET"):
                if "/stats" in request_line:
                    payload = json.dumps(_busy).encode()
                    _restart_stats()
                else:
                    payload = b'{"object":"list","data":[{"id":"fixed","object":"model"}]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                continue
            if replied is not None:
                _busy["turnaround_s"] += arrived - replied
                _busy["turnarounds"] += 1
            if _busy["first"] is None:
                _busy["first"] = time.time()
            if latency_s:
                await asyncio.sleep(latency_s)
            writer.write(_response(json.loads(body_bytes or b"{}")))
            await writer.drain()
            _busy["requests"] += 1
            _busy["last"] = time.time()
            replied = time.perf_counter()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(sock: socket.socket, latency_s: float) -> None:
    server = await asyncio.start_server(lambda r, w: _handle(r, w, latency_s), sock=sock, backlog=4096)
    async with server:
        await server.serve_forever()


def serve(port: int, latency_ms: float) -> None:
    """Serve forever on 127.0.0.1:``port``."""
    sock = socket.create_server(("127.0.0.1", port), backlog=4096)
    asyncio.run(_serve(sock, latency_ms / 1000))


def _serve_socket(sock: socket.socket, latency_ms: float) -> None:
    asyncio.run(_serve(sock, latency_ms / 1000))


def start_in_process(latency_ms: float) -> tuple[multiprocessing.Process, str]:
    """Start the server in a child process on a free port; returns the process and its ``/v1`` URL."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = sock.getsockname()[1]
    process = multiprocessing.get_context("fork").Process(target=_serve_socket, args=(sock, latency_ms), daemon=True)
    process.start()
    sock.close()  # the child holds its own copy
    return process, f"http://127.0.0.1:{port}/v1"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    serve(args.port, args.latency_ms)

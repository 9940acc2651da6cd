"""Small real OpenAI-compatible model servers on loopback: one that answers at once, and faulty ones.

- ``instant``: streams a short answer immediately (the load benchmark's model: it measures the arena,
  not a model); ``slow``: the same answer after ``delay`` seconds (a pre-generation that takes a while);
- ``stall``: sends the headers and a first token, then goes silent with the connection open;
- ``garbage``: answers 200 ``text/event-stream`` with lines that are not OpenAI chunks.

A server that refuses connections needs no code: a free port nobody listens on
(:func:`tests.browser.free_port`). Run as a script (``python -m tests.fake_model_servers KIND PORT``)
a server runs in its own process, so that it does not share a GIL with a load generator.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "네, 말씀하신 내용을 확인했습니다. 테스트 답변입니다."
KINDS = ("instant", "slow", "stall", "garbage")


def _chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    body: dict = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    server: FakeModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet: tests and benchmarks print their own output
        pass

    def do_GET(self) -> None:  # /v1/models and /health, so health checks see a live server
        body = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            getattr(self, f"_{self.server.kind}")()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the arena gave up on us (timeout or stop): that is what the tests want to see
        self.close_connection = True

    def _instant(self) -> None:
        words = ANSWER.split(" ")
        for i, word in enumerate(words):
            self.wfile.write(_chunk(word if i == 0 else " " + word))
        usage = {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": 10 + len(words)}
        self.wfile.write(_chunk(None, "stop", usage))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _slow(self) -> None:
        time.sleep(self.server.delay)
        self._instant()

    def _stall(self) -> None:
        self.wfile.write(_chunk("생각 중"))
        self.wfile.flush()
        # Silent, connection open, until the client hangs up or the server stops.
        while not self.server.stopping.wait(0.2):
            pass

    def _garbage(self) -> None:
        for line in (
            b'data: {"choices": [{"delta": \n\n',
            b"data: <html>502 Bad Gateway</html>\n\n",
            b"\x00\xff\xfe garbage\n\n",
        ):
            self.wfile.write(line)
        self.wfile.flush()


class FakeModelServer(ThreadingHTTPServer):
    """One fake model server on 127.0.0.1; ``base_url`` is its OpenAI base URL."""

    daemon_threads = True
    request_queue_size = 128  # the arena opens up to 8 connections per model at once (pre-generation)

    def __init__(self, kind: str, port: int = 0, delay: float = 1.0) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        super().__init__(("127.0.0.1", port), _Handler)
        self.kind = kind
        self.delay = delay
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def running(kind: str, delay: float = 1.0) -> Iterator[FakeModelServer]:
    """A fake server serving in a background thread; stopped (and its stalled streams released) on exit."""
    server = FakeModelServer(kind, delay=delay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    srv = FakeModelServer(kind, port)
    print(f"ready {srv.base_url}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stopping.set()
        time.sleep(0.05)
        srv.server_close()

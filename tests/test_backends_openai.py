"""OpenAI backend against real servers: `transformers serve` on a tiny model, and a scripted SSE server.

The scripted server is a real HTTP server on loopback (http.server in a thread) whose answers are the
awkward streams seen in the wild: split tool-call arguments, missing blank lines and [DONE], garbage,
a server that dies mid-stream or never answers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backends.base import CancelToken, Error, Finish, Options, TextDelta, Timeouts, ToolCall, ToolCallDelta
from backends.openai import OpenAIBackend
from backends.serve import free_port, transformers_serve

HELLO = [{"role": "user", "content": "안녕."}]


async def collect(backend, messages=HELLO, **kwargs) -> list:
    try:
        return [event async for event in backend.stream(messages, **kwargs)]
    finally:
        await backend.aclose()


# ------------------------------------------------------------------------------------ transformers serve


@pytest.fixture(scope="module")
def tf_server(tiny_models) -> Iterator:
    with transformers_serve(tiny_models["llama-tiny"]) as server:
        yield server


async def test_streams_text_with_usage_from_transformers_serve(tf_server):
    backend = OpenAIBackend("llama-tiny", tf_server.base_url, tf_server.model)
    events = await collect(backend, options=Options(max_tokens=12, temperature=0))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    finish = events[-1]
    assert isinstance(finish, Finish), events[-1]
    assert len(deltas) >= 2
    assert finish.text == "".join(d.text for d in deltas)
    # transformers serve sends no [DONE]; usage rides on the last chunk.
    assert finish.usage.completion_tokens == 12 and finish.usage.prompt_tokens > 0
    assert finish.finish_reason == "length"
    assert finish.timings.ttft_s is not None and 0 < finish.timings.ttft_s <= finish.timings.total_s
    assert finish.timings.tokens_per_s and finish.timings.tokens_per_s > 0


async def test_health_and_model_listing_on_transformers_serve(tf_server):
    backend = OpenAIBackend("llama-tiny", tf_server.base_url, tf_server.model)
    assert isinstance(await backend.list_models(), list)
    health = await backend.health()
    await backend.aclose()
    assert health.ok, health.detail


async def test_bad_model_name_is_an_error_event(tf_server):
    backend = OpenAIBackend("nope", tf_server.base_url, "no-such-model")
    events = await collect(backend)
    assert len(events) == 1 and isinstance(events[0], Error)
    assert events[0].code == "http_400"
    assert "no-such-model" in events[0].message  # the server's own explanation is passed on


async def test_connection_refused_is_an_error_event():
    backend = OpenAIBackend("gone", f"http://127.0.0.1:{free_port()}", "m", timeouts=Timeouts(connect=2))
    started = time.monotonic()
    events = await collect(backend)
    assert [type(e) for e in events] == [Error]
    assert events[0].code == "connection" and "cannot connect" in events[0].message
    assert time.monotonic() - started < 5
    assert not (await backend.health()).ok
    await backend.aclose()


async def test_cancel_token_stops_a_long_answer(tf_server):
    backend = OpenAIBackend("llama-tiny", tf_server.base_url, tf_server.model)
    cancel = CancelToken()
    events, cancelled_at = [], None
    async for event in backend.stream(HELLO, options=Options(max_tokens=1500), cancel=cancel):
        events.append(event)
        if isinstance(event, TextDelta) and cancelled_at is None:
            cancel.cancel()  # "the annotator pressed stop" as soon as text shows
            cancelled_at = time.monotonic()
    await backend.aclose()
    assert isinstance(events[-1], Finish) and events[-1].finish_reason == "cancelled"
    assert time.monotonic() - cancelled_at < 1.0
    assert len([e for e in events if isinstance(e, TextDelta)]) < 1500


@pytest.mark.slow
async def test_server_killed_mid_stream_is_an_error_not_a_hang(tiny_models):
    with transformers_serve(tiny_models["llama-tiny"]) as server:
        backend = OpenAIBackend("llama-tiny", server.base_url, server.model, timeouts=Timeouts(read=10))
        events, started = [], None
        async for event in backend.stream(HELLO, options=Options(max_tokens=1500)):
            events.append(event)
            if isinstance(event, TextDelta) and started is None:
                started = time.monotonic()
                server.kill()
        await backend.aclose()
    assert started is not None, "the server sent no text before it was killed"
    assert isinstance(events[-1], Error), events[-1]
    assert events[-1].code in ("connection", "protocol")
    assert events[-1].partial_text  # what arrived before the crash is kept
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------------------- scripted SSE server


def chunk(delta=None, finish=None, **extra) -> dict:
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "choices": choices, **extra}


def data(obj) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()) + b"\n\n"


TOOL_FRAGMENTS = [
    chunk({"role": "assistant", "content": None}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "retrieve_fashion_text_knowledges_with_text_query", "arguments": ""},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"text_'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'query": "크록스'}}]}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_rain_probability", "arguments": '{"location": '},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' 브랜드 국가"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"Seoul"}'}}]}),
    chunk(finish="tool_calls"),
    chunk(usage={"prompt_tokens": 553, "completion_tokens": 24, "total_tokens": 577}),
]


class Scripted(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions with the stream named by the request's "model"."""

    protocol_version = "HTTP/1.1"
    disconnected: threading.Event  # set on the server class per test

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def start(self, status=200, chunked=True, ctype="text/event-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
        self.end_headers()

    def write(self, payload: bytes, chunked=True) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload) if chunked else payload)
        self.wfile.flush()

    def end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "scripted", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(request)
        getattr(self, "scenario_" + request["model"].replace("-", "_"))()

    def scenario_tools_split(self) -> None:
        self.start()
        self.write(b": keep-alive comment\n\nevent: message\n")
        for obj in TOOL_FRAGMENTS:
            self.write(data(obj))
        self.end()  # no [DONE]

    def scenario_no_blank_lines(self) -> None:
        self.start()
        for piece in ("안녕", "하세요", "."):
            self.write(b"data: " + json.dumps(chunk({"content": piece})).encode() + b"\n")
        self.write(b"data: " + json.dumps(chunk(finish="stop")).encode() + b"\ndata: [DONE]\n")
        self.end()

    def scenario_usage_last(self) -> None:
        self.start()
        for piece in ("코트는", " 옛 유럽식", " 정장입니다."):
            self.write(data(chunk({"content": piece})))
        last = chunk(
            finish="stop",
            usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
            metrics={"time_to_first_token_ms": 12.5, "decode_time_ms": 30.0},
        )
        self.write(data(last))
        self.end()

    def scenario_garbage(self) -> None:
        self.start()
        self.write(data(chunk({"content": "앞부분"})))
        self.write(data(b"{this is not json"))
        self.write(data(chunk({"content": "never seen"})))
        self.end()

    def scenario_error_mid(self) -> None:
        self.start()
        self.write(data(chunk({"content": "앞부분"})))
        self.write(data({"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}))
        self.end()

    def scenario_error_500(self) -> None:
        body = json.dumps({"error": {"message": "CUDA out of memory", "code": 500}}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def scenario_die_chunked(self) -> None:
        self.start()
        self.write(data(chunk({"content": "앞부분"})))
        self.connection.shutdown(socket.SHUT_RDWR)  # dies without the terminating chunk
        self.close_connection = True

    def scenario_die_eof(self) -> None:
        self.start(chunked=False)
        self.write(data(chunk({"content": "앞부분"})), chunked=False)
        self.close_connection = True  # a clean EOF, but the answer never finished

    def scenario_hang(self) -> None:
        self.start()
        self.server.release.wait(10)  # headers sent, then silence

    def scenario_no_headers(self) -> None:
        self.server.release.wait(10)  # not even a status line

    def scenario_slow(self) -> None:
        self.start()
        try:
            for i in range(400):
                self.write(data(chunk({"content": f"{i} "})))
                time.sleep(0.05)
            self.end()
        except OSError:
            self.server.disconnected.set()  # the client went away: a real server would abort here


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address) -> None:
        pass  # the "die" scenarios break their own sockets on purpose


@pytest.fixture
def scripted() -> Iterator[ThreadingHTTPServer]:
    server = QuietServer(("127.0.0.1", 0), Scripted)
    server.requests = []
    server.release = threading.Event()
    server.disconnected = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def backend_for(server, scenario, **kwargs) -> OpenAIBackend:
    return OpenAIBackend("scripted", f"http://127.0.0.1:{server.server_address[1]}", scenario, **kwargs)


async def test_split_tool_call_fragments_are_assembled(scripted):
    events = await collect(
        backend_for(scripted, "tools-split"), tools=[{"type": "function", "function": {"name": "x"}}]
    )
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    calls = [e for e in events if isinstance(e, ToolCall)]
    finish = events[-1]
    assert len(deltas) == 6
    assert [(c.index, c.id, c.name) for c in calls] == [
        (0, "call_0", "retrieve_fashion_text_knowledges_with_text_query"),
        (1, "call_1", "get_rain_probability"),
    ]
    assert json.loads(calls[0].arguments) == {"text_query": "크록스 브랜드 국가"}
    assert json.loads(calls[1].arguments) == {"location": "Seoul"}
    assert isinstance(finish, Finish) and finish.finish_reason == "tool_calls"
    assert finish.tool_calls == calls and finish.text == ""
    assert finish.usage.completion_tokens == 24  # usage on a last chunk with no choices
    sent = scripted.requests[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["tools"][0]["function"]["name"] == "x"


async def test_events_without_blank_lines_and_done(scripted):
    events = await collect(backend_for(scripted, "no-blank-lines"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["안녕", "하세요", "."]
    assert isinstance(events[-1], Finish) and events[-1].text == "안녕하세요."


async def test_usage_and_vllm_metrics_on_last_chunk(scripted):
    backend = backend_for(scripted, "usage-last", default_options=Options(max_tokens=3))
    events = await collect(backend, options=Options(temperature=0.7, no_repeat_ngram_size=3))
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.text == "코트는 옛 유럽식 정장입니다."
    assert finish.usage.total_tokens == 12
    assert finish.timings.server_ttft_s == pytest.approx(0.0125)
    assert finish.server_metrics["decode_time_ms"] == 30.0
    assert finish.ignored_options == ["no_repeat_ngram_size"]  # not an OpenAI parameter
    sent = scripted.requests[-1]
    assert sent["max_tokens"] == 3 and sent["temperature"] == 0.7 and "no_repeat_ngram_size" not in sent


@pytest.mark.parametrize(
    ("scenario", "code", "words"),
    [
        ("garbage", "protocol", "malformed chunk"),
        ("error-mid", "server", "engine died"),
        ("error-500", "http_500", "CUDA out of memory"),
        ("die-chunked", "connection", "broke off"),
        ("die-eof", "protocol", "before the answer finished"),
    ],
)
async def test_broken_streams_end_in_one_error_event(scripted, scenario, code, words):
    started = time.monotonic()
    events = await collect(backend_for(scripted, scenario))
    error = events[-1]
    assert isinstance(error, Error), events
    assert sum(isinstance(e, (Error, Finish)) for e in events) == 1
    assert error.code == code and words in error.message
    if scenario != "error-500":
        assert error.partial_text == "앞부분"
    assert time.monotonic() - started < 5


async def test_silent_server_times_out_for_first_token(scripted):
    backend = backend_for(scripted, "hang", timeouts=Timeouts(first_token=0.5, read=0.5))
    started = time.monotonic()
    events = await collect(backend)
    assert [type(e) for e in events] == [Error] and events[0].code == "timeout"
    assert "first token" in events[0].message
    assert time.monotonic() - started < 3


async def test_server_that_never_answers_times_out(scripted):
    backend = backend_for(scripted, "no-headers", timeouts=Timeouts(first_token=0.5))
    started = time.monotonic()
    events = await collect(backend)
    assert [type(e) for e in events] == [Error] and events[0].code == "timeout"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("scenario", ["hang", "no-headers"])
async def test_cancel_while_waiting_for_a_silent_server(scripted, scenario):
    cancel = CancelToken()
    asyncio.get_running_loop().call_later(0.3, cancel.cancel)
    started = time.monotonic()
    events = await collect(backend_for(scripted, scenario), cancel=cancel)
    assert isinstance(events[-1], Finish) and events[-1].finish_reason == "cancelled"
    assert time.monotonic() - started < 1.5


async def test_cancel_from_another_thread_closes_the_connection(scripted):
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()  # e.g. a UI thread
    events = await collect(backend_for(scripted, "slow"), cancel=cancel)
    assert events[-1].finish_reason == "cancelled"
    assert 0 < len([e for e in events if isinstance(e, TextDelta)]) < 50
    # The server notices the closed connection on its next write (every 50 ms).
    assert await asyncio.to_thread(scripted.disconnected.wait, 2)


async def test_closing_the_stream_early_closes_the_connection(scripted):
    # What happens when the page closes: the consumer stops iterating and closes the generator.
    backend = backend_for(scripted, "slow")
    stream = backend.stream(HELLO)
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    assert await asyncio.to_thread(scripted.disconnected.wait, 2)
    await backend.aclose()


async def test_consumer_task_cancelled_mid_stream(scripted):
    backend = backend_for(scripted, "slow")

    async def consume():
        async for _ in backend.stream(HELLO):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(scripted.disconnected.wait, 2)
    await backend.aclose()

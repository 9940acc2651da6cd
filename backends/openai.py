"""Any OpenAI-compatible chat server (vLLM, SGLang, transformers serve, llama.cpp) over HTTP + SSE."""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx

from backends.base import (
    Backend,
    CancelToken,
    Error,
    Event,
    Finish,
    Health,
    Message,
    Options,
    Stopwatch,
    TextDelta,
    Timeouts,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

# Options every OpenAI-compatible server understands; others are reported in Finish.ignored_options.
WIRE_OPTIONS = ("temperature", "top_p", "max_tokens", "seed", "stop")


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a URL with a path is kept as given."""
    url = url.rstrip("/")
    return url + "/v1" if httpx.URL(url).path in ("", "/") else url


def error_message(response_body: bytes) -> str:
    """The human part of an error body: OpenAI ``{"error": {"message"}}``, FastAPI ``detail``, or text."""
    text = response_body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if data.get(key):
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)[:500]
    return text[:500]


class OpenAIBackend(Backend):
    """Streams chat completions from an OpenAI-compatible server; every failure becomes an ``Error``."""

    supports_tools = True

    def __init__(
        self,
        name: str,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeouts: Timeouts | None = None,
        default_options: Options | None = None,
        extra_body: dict[str, Any] | None = None,
        wire_options: tuple[str, ...] = WIRE_OPTIONS,
    ) -> None:
        super().__init__(name, default_options)
        self.base_url = normalize_base_url(base_url)
        self.model = model or name
        self.timeouts = timeouts or Timeouts()
        self.extra_body = dict(extra_body or {})
        self.wire_options = wire_options
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # One client per event loop: an httpx pool must not be shared across loops (tests, threads).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def describe(self) -> str:
        return f"{self.base_url} ({self.model})"

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            t = self.timeouts
            # Per-chunk timeouts are enforced around each read below; httpx's read timeout is a backstop.
            timeout = httpx.Timeout(connect=t.connect, read=max(t.first_token, t.read), write=t.connect, pool=t.connect)
            client = httpx.AsyncClient(timeout=timeout, headers=self._headers)
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    def request_body(
        self, messages: list[Message], tools: list[Tool] | None, options: Options
    ) -> tuple[dict, list[str]]:
        """The JSON body for /chat/completions and the names of options this server cannot take."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
        ignored = []
        for key, value in options.model_dump(exclude_none=True).items():
            if key in self.wire_options:
                body[key] = value
            else:
                ignored.append(key)
        body.update(self.extra_body)
        return body, ignored

    async def list_models(self) -> list[dict[str, Any]]:
        """``GET /v1/models``: the ``data`` list (ids, and for vLLM adapters their ``parent``)."""
        response = await self._client().get(f"{self.base_url}/models", timeout=self.timeouts.connect + 5)
        response.raise_for_status()
        return list(response.json().get("data", []))

    async def health(self) -> Health:
        try:
            ids = [m.get("id") for m in await self.list_models()]
        except httpx.HTTPStatusError as exc:
            # transformers serve answers 500 on /v1/models without a hub cache; its /health still works.
            if exc.response.status_code >= 500 and await self._ping():
                return Health(ok=True, detail=f"server up at {self.base_url} (it cannot list models)")
            return Health(ok=False, detail=f"HTTP {exc.response.status_code} from {self.base_url}/models")
        except (httpx.HTTPError, ValueError) as exc:
            return Health(ok=False, detail=f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}")
        if not ids:
            # A server pinned to a local directory (transformers serve) may list nothing yet serve it.
            return Health(ok=True, detail=f"server up at {self.base_url} (lists no models)")
        if self.model not in ids:
            return Health(ok=False, detail=f"{self.model!r} is not served; server has {ids}")
        return Health(ok=True, detail=f"{self.model} served at {self.base_url}")

    async def _ping(self) -> bool:
        root = httpx.URL(self.base_url).copy_with(path="/health")
        try:
            return (await self._client().get(root, timeout=self.timeouts.connect + 5)).status_code == 200
        except httpx.HTTPError:
            return False

    async def stream(
        self,
        messages: list[Message],
        *,
        tools: list[Tool] | None = None,
        options: Options | None = None,
        cancel: CancelToken | None = None,
    ) -> AsyncIterator[Event]:
        opts = self._options(options)
        body, ignored = self.request_body(messages, tools, opts)
        watch = Stopwatch()
        cancel = cancel or CancelToken()
        state = _StreamState()
        deadline = None if self.timeouts.total is None else time.monotonic() + self.timeouts.total
        url = f"{self.base_url}/chat/completions"
        # Sending and reading happen in a task of their own so that cancellation can interrupt a wait
        # on a silent server (for headers or for a chunk) without cancelling the caller's task.
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        client = self._client()
        pump = asyncio.create_task(_pump_sse(client, client.build_request("POST", url, json=body), queue))
        watcher = asyncio.create_task(cancel.wait())
        watcher.add_done_callback(lambda t: t.cancelled() or queue.put_nowait(("cancel", None)))
        try:
            while True:
                limit = self.timeouts.read if state.got_token else self.timeouts.first_token
                try:
                    async with asyncio.timeout(self._limit(limit, deadline)):
                        kind, value = await queue.get()
                except TimeoutError:
                    what = "between chunks" if state.got_token else "for the first token"
                    yield self._error("timeout", f"{self.base_url} sent nothing {what} in time", state, watch)
                    return
                if kind == "cancel":
                    yield self._finish("cancelled", state, watch, ignored)
                    return
                if kind == "send_error":
                    yield self._send_error(value, url, state, watch)
                    return
                if kind == "status":
                    status, content = value
                    message = f"HTTP {status} from {url}: {error_message(content)}"
                    yield self._error(f"http_{status}", message, state, watch)
                    return
                if kind == "error":
                    yield self._error(
                        "connection",
                        f"stream from {self.base_url} broke off: {type(value).__name__}: {value or 'connection lost'}",
                        state,
                        watch,
                    )
                    return
                if kind == "eof" or value.strip() == "[DONE]":
                    break
                try:
                    chunk = json.loads(value)
                    if not isinstance(chunk, dict):
                        raise ValueError("not an object")
                except ValueError:
                    yield self._error(
                        "protocol", f"malformed chunk from {self.base_url}: {value[:200]!r}", state, watch
                    )
                    return
                if "error" in chunk or chunk.get("object") == "error":
                    detail = error_message(json.dumps(chunk).encode())
                    yield self._error("server", f"{self.base_url} reported an error mid-stream: {detail}", state, watch)
                    return
                for event in state.feed(chunk):
                    watch.mark_token()
                    yield event
            if state.finish_reason is None and kind == "eof":
                # A finished OpenAI stream has a finish_reason even without [DONE]; none means it was cut.
                yield self._error(
                    "protocol", f"{self.base_url} closed the stream before the answer finished", state, watch
                )
                return
            for call in state.tool_calls():
                yield call
            yield self._finish(state.finish_reason or "stop", state, watch, ignored)
        finally:
            watcher.cancel()
            if not pump.done():
                # The pump closes the connection as it is cancelled: that is how an OpenAI server learns
                # to abort the generation. Wait (briefly) so that it is closed when the stream ends.
                pump.cancel()
                await asyncio.wait([pump], timeout=2)

    def _send_error(self, exc: BaseException, url: str, state: _StreamState, watch: Stopwatch) -> Error:
        if isinstance(exc, httpx.ConnectError):
            return self._error("connection", f"cannot connect to {self.base_url}: {exc}", state, watch)
        if isinstance(exc, httpx.TimeoutException):
            return self._error("timeout", f"no response from {url} in time ({type(exc).__name__})", state, watch)
        return self._error("connection", f"request to {url} failed: {type(exc).__name__}: {exc}", state, watch)

    @staticmethod
    def _limit(limit: float, deadline: float | None) -> float:
        return limit if deadline is None else max(0.0, min(limit, deadline - time.monotonic()))

    def _error(self, code: str, message: str, state: _StreamState, watch: Stopwatch) -> Error:
        return Error(code=code, message=message, partial_text="".join(state.text), timings=watch.timings(None))

    def _finish(self, reason: str, state: _StreamState, watch: Stopwatch, ignored: list[str]) -> Finish:
        usage = state.usage
        completion = usage.completion_tokens if usage.completion_tokens is not None else state.chunks
        server_ttft = None
        if state.metrics:
            ms = state.metrics.get("time_to_first_token_ms")
            server_ttft = ms / 1000 if isinstance(ms, (int, float)) else None
        return Finish(
            finish_reason=reason,
            text="".join(state.text),
            tool_calls=state.tool_calls(),
            usage=usage,
            timings=watch.timings(completion, server_ttft),
            server_metrics=state.metrics,
            ignored_options=ignored,
        )


class _StreamState:
    """What a stream has said so far: text, tool-call fragments by index, usage, finish reason."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage = Usage()
        self.metrics: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.chunks = 0
        self.got_token = False

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """Events for one parsed chunk (usage and metrics may ride on any chunk, often the last)."""
        if isinstance(chunk.get("usage"), dict):
            self.usage = Usage.model_validate({k: v for k, v in chunk["usage"].items() if k in Usage.model_fields})
        if isinstance(chunk.get("metrics"), dict):
            self.metrics = chunk["metrics"]
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                self.text.append(content)
                events.append(TextDelta(text=content))
            for position, fragment in enumerate(delta.get("tool_calls") or []):
                events.append(self._tool_fragment(position, fragment))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if events:
            self.chunks += 1
            self.got_token = True
        return events

    def _tool_fragment(self, position: int, fragment: dict[str, Any]) -> ToolCallDelta:
        index = fragment.get("index", position)
        call = self.calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
        function = fragment["function"] if "function" in fragment else None
        if not isinstance(function, dict):  # later fragments of a call may carry only the index
            function = {}
        if fragment.get("id"):
            call["id"] = fragment["id"]
        if function.get("name"):
            # The name arrives whole in the first fragment; some servers repeat it, so set, never append.
            call["name"] = function["name"]
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        call["arguments"] += arguments
        return ToolCallDelta(index=index, id=fragment.get("id"), name=function.get("name"), arguments=arguments)

    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(index=i, id=c["id"], name=c["name"], arguments=c["arguments"] or "{}")
            for i, c in sorted(self.calls.items())
        ]


async def _pump_sse(client: httpx.AsyncClient, request: httpx.Request, queue: asyncio.Queue) -> None:
    """Send the request; put ("send_error", exc) or ("status", (code, body)) on ``queue`` if it fails,
    else each SSE event's data as ("data", text), then ("eof", None) or ("error", exc)."""
    try:
        response = await client.send(request, stream=True)
    except Exception as exc:  # noqa: BLE001 - reported as an event
        queue.put_nowait(("send_error", exc))
        return
    try:
        if response.status_code >= 400:
            await response.aread()
            queue.put_nowait(("status", (response.status_code, response.content)))
            return
        await _read_events(response, queue)
    except Exception as exc:  # noqa: BLE001 - any read failure ends the stream as an error event
        # A half-received event is dropped: the error says the stream broke, not that it was garbage.
        queue.put_nowait(("error", exc))
    finally:
        await response.aclose()


async def _read_events(response: httpx.Response, queue: asyncio.Queue) -> None:
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                queue.put_nowait(("data", "\n".join(data)))
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            value = value[1:] if value.startswith(" ") else value
            if data and _is_complete("\n".join(data)):
                # A server that omits the blank line between events: the buffered one is whole.
                queue.put_nowait(("data", "\n".join(data)))
                data = []
            data.append(value)
        # Comments (":"), "event:", "id:", "retry:" and stray lines carry no chunk: ignored per SSE.
    if data:
        # Tolerate a server that ends without the blank line after its last event.
        queue.put_nowait(("data", "\n".join(data)))
    queue.put_nowait(("eof", None))


def _is_complete(data: str) -> bool:
    if data.strip() == "[DONE]":
        return True
    try:
        json.loads(data)
    except ValueError:
        return False
    return True

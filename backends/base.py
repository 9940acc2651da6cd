"""The Backend interface: one async method that streams events for a chat request.

A stream is a sequence of ``TextDelta`` / ``ToolCallDelta`` / ``ToolCall`` events that always ends
with exactly one terminal event: ``Finish`` (also after cancellation, with ``finish_reason="cancelled"``)
or ``Error``. Backends never raise into the caller for server or model failures; they yield ``Error``.

Messages are OpenAI chat message dicts (``{"role", "content", "tool_calls", ...}``) and tools are
OpenAI tool dicts (``{"type": "function", "function": {"name", "parameters", ...}}``).
"""

from __future__ import annotations

import abc
import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Message = dict[str, Any]
Tool = dict[str, Any]


class Options(BaseModel):
    """Sampling options for one request; ``None`` means the backend's (or model entry's) default."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(None, ge=0, le=2, description="0 or None = greedy for local models")
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stop: list[str] | None = None
    no_repeat_ngram_size: int | None = Field(None, ge=0, description="local backend only")

    def merged_over(self, defaults: Options | None) -> Options:
        """These options with unset fields taken from ``defaults``."""
        if defaults is None:
            return self
        return defaults.model_copy(update=self.model_dump(exclude_none=True))


class Timeouts(BaseModel):
    """Seconds to wait: to connect, for the first token, between later chunks, and in total."""

    model_config = ConfigDict(extra="forbid")
    connect: float = Field(5.0, gt=0)
    first_token: float = Field(120.0, gt=0)
    read: float = Field(60.0, gt=0)
    total: float | None = Field(None, gt=0)


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class Timings(BaseModel):
    """Client-side timings in seconds, plus the server's own time to first token when it reports one."""

    ttft_s: float | None = None
    total_s: float = 0.0
    tokens_per_s: float | None = Field(None, description="decode speed: tokens after the first / time after it")
    server_ttft_s: float | None = None


class TextDelta(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ToolCallDelta(BaseModel):
    """A fragment of tool call ``index`` as it streams; ``arguments`` is a fragment to concatenate."""

    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ToolCall(BaseModel):
    """A complete tool call: the one tool-call type of the project (backend output, streamed sides,
    storage, metrics, recall, rendering). ``arguments`` is the JSON text as produced; stored and sent
    in the OpenAI shape through ``to_openai`` / ``from_openai``."""

    type: Literal["tool_call"] = "tool_call"
    index: int = 0
    id: str | None = None
    name: str
    arguments: str

    @classmethod
    def from_openai(cls, item: Mapping[str, Any], index: int = 0) -> ToolCall:
        """From an OpenAI ``tool_calls`` item ``{"id", "type": "function", "function": {"name", "arguments"}}``;
        arguments given as an object (some exporters write that) become JSON text."""
        function = item["function"]
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        return cls(index=index, id=item.get("id"), name=function.get("name") or "", arguments=arguments)

    @classmethod
    def list_from_openai(cls, items: Iterable[Mapping[str, Any]] | None) -> list[ToolCall]:
        """Stored or message ``tool_calls`` (OpenAI shape; None for none) as ToolCalls, indexed in order."""
        return [cls.from_openai(item, i) for i, item in enumerate(items or [])]

    def to_openai(self, with_id: bool = True) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` item for an assistant message (``with_id=False``: as stored, no server id)."""
        call = {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}
        return {"id": self.id, **call} if self.id and with_id else call

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON; json.JSONDecodeError when they are not JSON."""
        return json.loads(self.arguments)


class Finish(BaseModel):
    """Terminal event of a successful (or cancelled) stream: the whole answer, usage and timings."""

    type: Literal["finish"] = "finish"
    finish_reason: str  # "stop" | "length" | "tool_calls" | "cancelled" | whatever the server said
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    timings: Timings = Field(default_factory=Timings)
    server_metrics: dict[str, Any] | None = None
    ignored_options: list[str] = Field(default_factory=list)


class Error(BaseModel):
    """Terminal event of a failed stream. ``code`` is short and stable; ``message`` is for people."""

    type: Literal["error"] = "error"
    code: str  # "connection" | "timeout" | "http_<status>" | "protocol" | "model" | "bad_request"
    message: str
    partial_text: str = ""
    timings: Timings = Field(default_factory=Timings)


Event = Annotated[TextDelta | ToolCallDelta | ToolCall | Finish | Error, Field(discriminator="type")]


class Health(BaseModel):
    ok: bool
    detail: str = ""


class CancelToken:
    """A thread-safe stop flag that both a generation thread and the event loop can watch."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Ask every stream using this token to stop."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    async def wait(self) -> None:
        """Return once ``cancel()`` has been called (from any thread)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(wake)
                registered = True
            else:
                registered = False
        if not registered:
            return
        try:
            await future
        finally:
            with self._lock:
                if wake in self._callbacks:
                    self._callbacks.remove(wake)


class Stopwatch:
    """Measures time to first token, total time and decode speed for one stream."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None

    def mark_token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def timings(self, completion_tokens: int | None, server_ttft_s: float | None = None) -> Timings:
        total = time.perf_counter() - self.start
        ttft = None if self.first is None else self.first - self.start
        rate = None
        if completion_tokens and ttft is not None:
            # The first token carries the prompt's prefill; speed is the decode rate after it.
            after = total - ttft
            rate = (completion_tokens - 1) / after if completion_tokens > 1 and after > 0 else completion_tokens / total
        return Timings(ttft_s=ttft, total_s=total, tokens_per_s=rate, server_ttft_s=server_ttft_s)


class Backend(abc.ABC):
    """A model that answers chat requests by streaming events."""

    can_stream: bool = True
    supports_tools: bool = False
    supports_adapters: bool = False

    def __init__(self, name: str, default_options: Options | None = None) -> None:
        self.name = name
        self.default_options = default_options or Options()

    @abc.abstractmethod
    def stream(
        self,
        messages: list[Message],
        *,
        tools: list[Tool] | None = None,
        options: Options | None = None,
        cancel: CancelToken | None = None,
    ) -> AsyncIterator[Event]:
        """Stream events for one chat request; ends with one ``Finish`` or ``Error``.

        Stop early with ``cancel.cancel()`` (any thread) or by closing the iterator / cancelling
        the task that consumes it; either way generation stops promptly.
        """

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[Tool] | None = None,
        options: Options | None = None,
        cancel: CancelToken | None = None,
    ) -> Finish | Error:
        """Run a request to the end and return its terminal event."""
        last: Finish | Error | None = None
        async for event in self.stream(messages, tools=tools, options=options, cancel=cancel):
            if isinstance(event, (Finish, Error)):
                last = event
        assert last is not None, "a backend stream must end with Finish or Error"
        return last

    async def health(self) -> Health:
        """Whether the model can answer now (server up and serving it, files present)."""
        return Health(ok=True)

    def describe(self) -> str:
        """Where this model lives (path or URL), for listings."""
        return self.name

    async def aclose(self) -> None:  # noqa: B027 (a no-op default: most backends hold nothing to release)
        """Release connections or memory held by the backend."""

    def _options(self, options: Options | None) -> Options:
        return (options or Options()).merged_over(self.default_options)

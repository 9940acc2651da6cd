"""Stream several backends at once for one prompt; each side fails alone.

A side whose backend errors, raises, or goes silent for ``stall_timeout`` seconds ends with an
error on that side only; the others keep streaming. Closing the iterator (the annotator pressed
stop, or the page went away) cancels every backend stream, which stops generation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from backends.base import Backend, CancelToken, Error, Finish, Options, TextDelta, ToolCall, ToolCallDelta


@dataclass
class Side:
    """What one model has produced so far."""

    model: str
    text: str = ""
    calls: dict[int, ToolCall] = field(default_factory=dict)  # by the backend's call index
    done: bool = False
    error: str | None = None
    finish: Finish | None = None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Tool calls so far (complete after the stream ends), in index order."""
        return [self.calls[i] for i in sorted(self.calls)]

    def openai_tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls in OpenAI message shape, as stored (without the server's call ids)."""
        return [c.to_openai(with_id=False) for c in self.tool_calls]

    def apply(self, event: Any) -> None:
        """Fold one backend event into this side."""
        if isinstance(event, TextDelta):
            self.text += event.text
        elif isinstance(event, ToolCallDelta):
            call = self.calls.get(event.index) or ToolCall(index=event.index, name="", arguments="")
            self.calls[event.index] = call.model_copy(
                update={
                    "name": event.name or call.name,
                    "id": event.id or call.id,
                    "arguments": call.arguments + event.arguments,
                }
            )
        elif isinstance(event, ToolCall):
            self.calls[event.index] = event
        elif isinstance(event, Finish):
            self.finish, self.done = event, True
            self.text = event.text or self.text
            if event.tool_calls:
                self.calls = {c.index: c for c in event.tool_calls}
        elif isinstance(event, Error):
            self.error, self.done = f"[{event.code}] {event.message}", True
            self.text = self.text or event.partial_text


async def _run_side(
    side: Side,
    backend: Backend,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    options: Options | None,
    stall_timeout: float,
    changed: asyncio.Event,
    finished: asyncio.Event,
    cancel: CancelToken,
) -> None:
    stream = backend.stream(messages, tools=tools or None, options=options, cancel=cancel)
    try:
        while not side.done:
            try:
                event = await asyncio.wait_for(anext(stream), timeout=stall_timeout)
            except StopAsyncIteration:
                if not side.done:
                    side.error, side.done = "the backend ended its stream without a result", True
                break
            side.apply(event)
            changed.set()
    except TimeoutError:
        side.error, side.done = f"[timeout] no output for {stall_timeout:g} s; this side was stopped", True
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken backend must never take the other sides down
        side.error, side.done = f"[{type(exc).__name__}] {exc}", True
    finally:
        cancel.cancel()
        with contextlib.suppress(Exception):
            await stream.aclose()
        changed.set()
        finished.set()


async def stream_sides(
    backends: list[tuple[str, Backend]],
    messages: list[dict[str, Any]],
    *,
    side_messages: list[list[dict[str, Any]]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    options: Options | None = None,
    stall_timeout: float = 60.0,
    min_interval: float = 0.05,
) -> AsyncIterator[list[Side]]:
    """Yield the list of sides each time something changed (at most every ``min_interval`` s), then once at the end.

    ``side_messages`` gives each backend its own conversation (live mode: each side saw its own answers);
    otherwise all get ``messages``. One update covers every side: the UI sends it as one message whose
    answers only grow, so the page's work and the bytes sent stay linear in the answers' length.
    """
    prompts = side_messages if side_messages is not None else [messages] * len(backends)
    if len(prompts) != len(backends):
        raise ValueError(f"side_messages has {len(prompts)} conversations for {len(backends)} backends")
    sides = [Side(model=name) for name, _ in backends]
    changed, finished = asyncio.Event(), asyncio.Event()
    cancels = [CancelToken() for _ in backends]
    tasks = [
        asyncio.create_task(_run_side(side, backend, prompt, tools, options, stall_timeout, changed, finished, cancel))
        for side, (_, backend), prompt, cancel in zip(sides, backends, prompts, cancels)
    ]
    try:
        while not all(s.done for s in sides):
            await changed.wait()
            changed.clear()
            finished.clear()
            yield sides
            # Coalesce bursts of tokens into one UI update (the first token is never delayed), but show a
            # side's final text at once: a page that is sent fewer, smaller updates keeps up with the stream.
            if not all(s.done for s in sides):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), timeout=min_interval)
        await asyncio.gather(*tasks, return_exceptions=True)
        yield sides
    finally:
        for cancel, task in zip(cancels, tasks):
            cancel.cancel()
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

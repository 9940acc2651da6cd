"""Text-level helpers for backends that produce raw text: stop strings, and tool calls in generated JSON."""

from __future__ import annotations

import json
from typing import Any

from backends.base import Event, TextDelta, ToolCall


class StopMatcher:
    """Cuts streamed text at the first stop string, holding back a tail that may be a stop's prefix."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show, whether a stop string was hit)."""
        self.buffer += text
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer = self.buffer[: min(hits)], ""
            return out, True
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.buffer)), hold, -1):
                if self.buffer.endswith(stop[:k]):
                    hold = k
                    break
        cut = len(self.buffer) - hold
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class ToolSink:
    """Streams text, except an answer that opens like a JSON tool call, which is held and parsed at the end."""

    def __init__(self, active: bool) -> None:
        self.mode = "undecided" if active else "text"
        self.held = ""
        self.shown: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.shown)

    def feed(self, text: str) -> list[Event]:
        if not text:
            return []
        if self.mode == "text":
            self.shown.append(text)
            return [TextDelta(text=text)]
        self.held += text
        if self.mode == "undecided" and self.held.strip():
            start = self.held.lstrip()
            looks_like_call = start[0] in "{[" or start.startswith("<|python_tag|>") or start.startswith("```")
            self.mode = "json" if looks_like_call else "text"
            if self.mode == "text":
                held, self.held = self.held, ""
                self.shown.append(held)
                return [TextDelta(text=held)]
        return []

    def finish(self, parse: bool = True) -> list[Event]:
        """Tool calls parsed from the held text, or the held text as one TextDelta."""
        held, self.held = self.held, ""
        if not held:
            return []
        calls = parse_tool_calls(held) if parse and self.mode == "json" else []
        if calls:
            return list(calls)
        self.shown.append(held)
        return [TextDelta(text=held)]


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Tool calls in a model's JSON answer, or [] when the answer is not (only) tool calls.

    Accepts Llama 3.1's ``{"name": ..., "parameters": {...}}`` (several joined by ``;``), a JSON list of
    such objects, ``arguments`` instead of ``parameters`` (as a dict or a JSON string, as in the
    tool_selection fine-tunes), an optional ``<|python_tag|>`` prefix and a ```json fence.
    """
    body = text.strip()
    body = body.removeprefix("<|python_tag|>").strip()
    if body.startswith("```"):
        body = body.strip("`").strip()
        body = body.removeprefix("json").strip()
    decoder = json.JSONDecoder()
    objects: list[Any] = []
    pos = 0
    while pos < len(body):
        try:
            value, end = decoder.raw_decode(body, pos)
        except ValueError:
            return []
        objects.extend(value if isinstance(value, list) else [value])
        pos = end
        while pos < len(body) and body[pos] in " \t\r\n;,":
            pos += 1
    calls = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
            return []
        args = obj.get("parameters", obj.get("arguments", {}))
        if isinstance(args, str):
            try:
                json.loads(args)
            except ValueError:
                return []
            arguments = args
        elif isinstance(args, dict):
            arguments = json.dumps(args, ensure_ascii=False)
        else:
            return []
        calls.append(ToolCall(index=index, name=obj["name"], arguments=arguments))
    return calls

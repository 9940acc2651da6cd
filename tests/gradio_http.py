"""A Gradio session over plain HTTP, as a browser tab speaks it: log in, read /config, join the queue
and read the event stream. Used by the load benchmark and the reliability tests.

Events are addressed as the page addresses them: by the component that fires them (``elem_id`` and
event name) or by ``api_name``. State values are never sent (a browser never holds them); the server
keeps them per ``session_hash``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from gradio_client.utils import apply_diff


@dataclass
class CallResult:
    """How one event ended: completed (``ok``) or refused/failed, its output, and how long it took."""

    ok: bool
    output: Any  # the outputs' data list when ok; else the error payload or the HTTP body
    seconds: float  # from sending the join request to receiving the completion
    http_status: int = 200
    streamed: list[Any] = field(default_factory=list)  # the outputs of each update a generator sent first
    sse_bytes: int = 0  # bytes of this event's update and completion messages on the event stream, as sent
    elem_ids: list[str | None] = field(default_factory=list)  # of the event's outputs, in order

    def value(self, elem_id: str) -> Any:
        """The last value this event gave the output ``elem_id``, in its completion or in any update it
        streamed before (None: left as it was, or not an output)."""
        if not self.ok or elem_id not in self.elem_ids:
            return None
        k = self.elem_ids.index(elem_id)
        for outputs in (self.output, *reversed(self.streamed)):
            update = outputs[k]
            if isinstance(update, dict) and "value" in update:
                return update["value"]
            if update is not None and not isinstance(update, dict):
                return update
        return None

    def text(self) -> str:
        """The output as JSON text (Korean unescaped), for ``in`` checks; a generator's updates before its
        completion are included (a saved note shown before the next turn streams in counts as shown)."""
        return json.dumps([*self.streamed, self.output] if self.streamed else self.output, ensure_ascii=False)


def _followed(
    dep: dict[str, Any], first: CallResult, after: dict[str, Any], later: CallResult, seconds: float
) -> CallResult:
    """``first`` (of ``dep``) and then ``later`` (of ``after``, chained to it) as one result in ``dep``'s
    outputs: the first's completion becomes one more streamed update, outputs ``dep`` lacks are left out."""
    where = {c: k for k, c in enumerate(after["outputs"])}

    def mapped(outputs: list[Any]) -> list[Any]:
        return [outputs[where[c]] if c in where else None for c in dep["outputs"]]

    return CallResult(
        later.ok,
        mapped(later.output) if later.ok else later.output,
        seconds,
        later.http_status,
        streamed=[*first.streamed, first.output, *(mapped(u) for u in later.streamed)],
        sse_bytes=first.sse_bytes + later.sse_bytes,
        elem_ids=first.elem_ids,
    )


class GradioSession:
    """One browser tab of one user against one mounted Gradio app (``base_url`` ends with its path)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
        self.session_hash = uuid.uuid4().hex[:12]
        self.config: dict[str, Any] = {}
        self._props: dict[int, dict[str, Any]] = {}

    async def __aenter__(self) -> GradioSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def login(self, user: str, password: str) -> bool:
        """POST /login; True when the server set the session cookie."""
        response = await self.http.post("/login", data={"username": user, "password": password})
        return response.status_code == 200

    async def load_config(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET /config (or reuse one already read: every session of an app gets the same)."""
        if config is None:
            response = await self.http.get("/config")
            response.raise_for_status()
            config = response.json()
        self.config = config
        self._props = {c["id"]: c.get("props", {}) for c in config["components"]}
        return config

    async def page_loaded(self) -> list[CallResult]:
        """Run the page's load events as a browser does on opening it (they fill this account's model
        pickers: a session that skips them is offered no models, and Gradio refuses any it names)."""
        results = []
        for dep in self.config["dependencies"]:
            if any(t[1] == "load" for t in dep.get("targets", [])) and dep.get("trigger_after") is None:
                results.append(await self.call(dep))
        return results

    def elem_id(self, component: int) -> str | None:
        """The elem_id of a component of this app, by its id in the config."""
        return self._props.get(component, {}).get("elem_id")

    def dependency(self, api_name: str | None = None, *, target: tuple[str, str] | None = None) -> dict[str, Any]:
        """The event fired by ``target`` = (elem_id, event name), or the one named ``api_name``."""
        for dep in self.config["dependencies"]:
            if api_name is not None and dep.get("api_name") == api_name:
                return dep
            if target is not None and any(
                self._props.get(t[0], {}).get("elem_id") == target[0] and t[1] == target[1]
                for t in dep.get("targets", [])
            ):
                return dep
        raise KeyError(f"no event {api_name or target} in this app")

    def inputs(self, dep: dict[str, Any], **values: Any) -> list[Any]:
        """The event's input values: given ones by elem_id (``-`` may be written ``_``), the rest as first shown."""
        given = {k.replace("_", "-"): v for k, v in values.items()}
        out = []
        for i in dep["inputs"]:
            props = self._props.get(i, {})
            elem_id = props.get("elem_id") or ""
            out.append(given[elem_id] if elem_id in given else props.get("value"))
        return out

    async def call(
        self, dep: dict[str, Any], data: list[Any] | None = None, *, chained: bool = False, **values: Any
    ) -> CallResult:
        """Fire one event and wait for its completion (streamed updates are skipped).

        ``chained``: then, as the page does once it completed, fire the events chained after it (``.then``
        always, ``.success`` as it succeeded), with the same given values; the result is what the page
        received from all of them in order, addressed by this event's outputs (replay opens a turn in one
        event and streams its answers in the one chained after it)."""
        data = self.inputs(dep, **values) if data is None else data
        trigger = dep["targets"][0][0] if dep.get("targets") else None
        started = time.perf_counter()
        try:
            result = await self._call(dep, data, trigger, started)
            result.elem_ids = [self.elem_id(o) for o in dep["outputs"]]
        except httpx.HTTPError as exc:  # a timeout or a dropped connection: the outcome is unknown
            return CallResult(False, f"{type(exc).__name__}: {exc}", time.perf_counter() - started, 0)
        for after in self.config["dependencies"] if chained and result.ok else []:
            if after.get("trigger_after") != dep["id"] or after.get("trigger_only_on_failure"):
                continue
            later = await self.call(after, chained=True, **values)
            result = _followed(dep, result, after, later, time.perf_counter() - started)
            if not result.ok:
                break
        return result

    async def _call(self, dep: dict[str, Any], data: list[Any], trigger: int | None, started: float) -> CallResult:
        joined = await self.http.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": dep["id"],
                "session_hash": self.session_hash,
                "event_data": None,
                "trigger_id": trigger,
            },
        )
        if joined.status_code != 200:
            return CallResult(False, joined.text, time.perf_counter() - started, joined.status_code)
        event_id = joined.json()["event_id"]
        result: CallResult | None = None
        streamed: list[Any] = []
        sse_bytes = 0
        async with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as r:
            if r.status_code != 200:
                return CallResult(False, (await r.aread()).decode(), time.perf_counter() - started, r.status_code)
            # Read to close_stream: leaving earlier counts as a disconnect, which cancels the session's events.
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                msg = json.loads(line[6:])
                if msg.get("event_id") == event_id and msg.get("msg") in ("process_generating", "process_completed"):
                    sse_bytes += len(line.encode()) + 2  # the line and the blank line that ends the message
                if msg.get("msg") == "process_generating" and msg.get("event_id") == event_id:
                    data = msg["output"].get("data")
                    # The first update of a generator is whole; Gradio sends the later ones as diffs of it.
                    streamed.append(
                        [apply_diff(old, ops) for old, ops in zip(streamed[-1], data)] if streamed else data
                    )
                if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                    ok = bool(msg.get("success"))
                    output = msg["output"].get("data") if ok else msg.get("output")
                    result = CallResult(
                        ok, output, time.perf_counter() - started, streamed=streamed, sse_bytes=sse_bytes
                    )
                elif msg.get("msg") == "unexpected_error":
                    result = result or CallResult(False, msg, time.perf_counter() - started)
                if msg.get("msg") == "close_stream":
                    break
        return result or CallResult(False, "the event stream ended without a completion", time.perf_counter() - started)

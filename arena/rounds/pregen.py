"""Pre-generation for blind rounds: every model answers every turn of a round once, stored with timings
and GT metrics, so all annotators judge the same answers.

Work runs in parallel across models, each behind its own semaphore (an in-process model answers one
request at a time; a continuous-batching server such as vLLM wants many requests in flight). Each
answer is committed on its own as soon as it is done, so an interrupted run loses only the answers in
flight; a rerun skips every stored answer and retries the failed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arena.annotation.answers import prompt_hash, record_answer, register_model
from arena.annotation.rating import metrics_for
from arena.annotation.sidebyside import Side
from arena.core.answers import Context
from arena.core.dialogs import Dialog
from arena.core.metrics import Splitter, split_words
from arena.core.replay import ReplayStep, step
from arena.rounds.config import RoundError
from arena.rounds.workflow import load_config, load_items
from backends.base import Backend, Options

if TYPE_CHECKING:
    from arena.store import Store
    from backends.registry import Registry

# In-process models serialise on their own lock anyway; servers batch, so keep them busy.
DEFAULT_CONCURRENCY = {"local": 1, "openai": 8, "vllm": 32}


@dataclass(frozen=True)
class Task:
    """One answer to produce: a model and a replay turn."""

    model: str
    dialog: Dialog
    step: ReplayStep


@dataclass
class Report:
    """What a pre-generation run did."""

    total: int
    skipped: int = 0
    generated: int = 0
    failed: int = 0

    def text(self) -> str:
        return (
            f"{self.total} answers needed: {self.skipped} already stored, {self.generated} generated,"
            f" {self.failed} failed"
        )


def plan(store: Store, round_: int | str, dialogs: list[Dialog]) -> tuple[int, list[Task], int]:
    """(round id, answers still to generate, answers already stored) for a started round."""
    found, _ = load_config(store, round_)
    items = load_items(store, found.id)
    if not items:
        raise RoundError(
            f"round {found.name!r} has no items yet: start it first (`arena round start`)",
            code="pregen_not_started",
            name=found.name,
        )
    by_key = {(d.eval_set, d.id): d for d in dialogs}
    names = {m.id: m.name for m in store.list_models()}
    stored = {
        (g.eval_set, g.dialog_id, g.turn_index, names[g.model_id])
        for g in store.round_generations(found.id)
        if not g.failed
    }
    tasks: dict[tuple[str, str, int, str], Task] = {}
    skipped: set[tuple[str, str, int, str]] = set()
    for it in items:
        dialog = by_key.get((it.eval_set, it.dialog_id))
        if dialog is None:
            raise RoundError(f"dialog {it.eval_set}/{it.dialog_id} of round {found.name!r} is not in the eval sets")
        for model in (it.model_a, it.model_b):
            key = (*it.step_key, model)
            if key in stored:
                skipped.add(key)
            elif key not in tasks:
                tasks[key] = Task(model, dialog, step(dialog, it.turn_index))
    return found.id, list(tasks.values()), len(skipped)


async def generate(backend: Backend, s: ReplayStep, options: Options | None, timeout: float) -> Side:
    """One complete answer; failures (errors, exceptions, timeouts) end up in ``side.error``."""
    side = Side(model=backend.name)
    stream = backend.stream(s.messages, tools=s.tools or None, options=options)
    try:
        async with asyncio.timeout(timeout):
            async for event in stream:
                side.apply(event)
                if side.done:
                    break
    except TimeoutError:
        side.error = f"[timeout] no complete answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - one broken answer must not stop the run
        side.error = f"[{type(exc).__name__}] {exc}"
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
    if not side.done and side.error is None:
        side.error = "the backend ended its stream without a result"
    return side


def _record(store: Store, round_id: int, model_id: int, task: Task, side: Side, splitter: Splitter) -> int:
    # keep_success: a second pre-generation run at once leaves an answer that may already be judged.
    return record_answer(
        store,
        model_id=model_id,
        eval_set=task.dialog.eval_set,
        dialog_id=task.dialog.id,
        turn_index=task.step.turn_index,
        side=side,
        context=Context.round(round_id),
        metrics=metrics_for(task.dialog, task.step, side, splitter),
        prompt_hash=prompt_hash(task.step),
        round_id=round_id,
        keep_success=True,
    )


def concurrency_for(
    registry: Registry, models: list[str], overrides: Mapping[str, int] | None = None, default: int | None = None
) -> dict[str, int]:
    """Requests in flight per model: the override, else ``default``, else by backend kind."""
    overrides = overrides or {}
    out = {}
    for m in models:
        n = overrides.get(m) or default or DEFAULT_CONCURRENCY.get(registry.specs[m].kind, 4)
        if n < 1:
            raise RoundError(f"concurrency for {m} must be at least 1")
        out[m] = n
    return out


async def run(
    store: Store,
    round_: int | str,
    registry: Registry,
    dialogs: list[Dialog],
    *,
    concurrency: Mapping[str, int] | None = None,
    default_concurrency: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    splitter: Splitter = split_words,
    timeout: float = 600.0,
) -> Report:
    """Generate and store every missing answer of a started round; ``on_progress(done, total)`` after each."""
    round_id, tasks, skipped = plan(store, round_, dialogs)
    _, config = load_config(store, round_id)
    models = sorted({t.model for t in tasks})
    if missing := [m for m in models if m not in registry]:
        raise RoundError(
            f"model(s) of the round not in the models file: {', '.join(missing)}",
            code="pregen_models_missing",
            models=", ".join(missing),
        )
    limits = concurrency_for(registry, models, concurrency, default_concurrency)
    semaphores = {m: asyncio.Semaphore(n) for m, n in limits.items()}
    model_ids = {m: register_model(store, registry, m) for m in models}
    report = Report(total=len(tasks) + skipped, skipped=skipped)
    if on_progress:
        on_progress(skipped, report.total)

    async def one(task: Task) -> None:
        async with semaphores[task.model]:
            side = await generate(registry[task.model], task.step, config.options, timeout)
        # The store is synchronous; keep the event loop free for the streams still running.
        await asyncio.to_thread(_record, store, round_id, model_ids[task.model], task, side, splitter)
        if side.error:
            report.failed += 1
        else:
            report.generated += 1
        if on_progress:
            on_progress(report.skipped + report.generated + report.failed, report.total)

    # Every task starts at once; each model's semaphore alone decides how many of its requests are in flight.
    # A task group: if storing fails, the other requests are cancelled instead of left running.
    async with asyncio.TaskGroup() as group:
        for t in tasks:
            group.create_task(one(t))
    return report

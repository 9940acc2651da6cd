"""Storing answers: one path from a streamed ``Side`` to a stored generation, for replay, live and rounds.

Also the one cached model upsert (a registry entry's store id) and the one prompt hash of a replay step,
so that replay and pre-generation key the same prompt the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from arena.core.answers import Context
from arena.core.metrics import GenerationMetrics
from arena.core.replay import ReplayStep
from arena.store import stable_hash

if TYPE_CHECKING:
    from arena.annotation.sidebyside import Side
    from arena.store import Store
    from backends.registry import Registry


def register_model(store: Store, registry: Registry, name: str) -> int:
    """The store id of a models-file entry, registering (or refreshing) it."""
    spec = registry.specs[name]
    return store.upsert_model(
        name,
        backend=spec.kind,
        base_model=spec.path or spec.served_model_name or spec.name,
        adapter=spec.adapter,
        config=spec.model_dump(mode="json"),
    )


class ModelIds:
    """Store ids of registry entries, upserted once per process and name (models added at run time too)."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store, self.registry = store, registry
        self._ids: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        if name not in self._ids:
            self._ids[name] = register_model(self.store, self.registry, name)
        return self._ids[name]


def prompt_hash(step: ReplayStep) -> str:
    """The hash of what a model is asked at a replay step (messages and tools), stored beside its answer."""
    return stable_hash({"messages": step.messages, "tools": step.tools})


def record_answer(
    store: Store,
    *,
    model_id: int,
    eval_set: str,
    dialog_id: str,
    turn_index: int,
    side: Side,
    context: Context,
    metrics: GenerationMetrics | None = None,
    prompt_hash: str = "",
    round_id: int | None = None,
    keep_success: bool = False,
) -> int:
    """Store one side's answer with its timings and GT metrics; returns the generation id."""
    finish = side.finish
    timings = finish.timings if finish else None
    usage = finish.usage if finish else None
    fields: dict[str, Any] = {}
    if metrics is not None:
        fields = {
            "gt_diff": [list(op) for op in metrics.diff] or None,
            "similarity": metrics.similarity,
            "tool_name_match": metrics.tool_name_match,
            "tool_args_match": metrics.tool_args_match,
        }
    return store.record_generation(
        model_id=model_id,
        eval_set=eval_set,
        dialog_id=dialog_id,
        turn_index=turn_index,
        text=side.text,
        context=context,
        round_id=round_id,
        prompt_hash=prompt_hash,
        tool_calls=side.openai_tool_calls() or None,
        finish_reason=finish.finish_reason if finish else None,
        error=side.error,
        ttft_ms=timings.ttft_s * 1000 if timings and timings.ttft_s is not None else None,
        total_ms=timings.total_s * 1000 if timings else None,
        tokens=usage.completion_tokens if usage else None,
        tokens_per_s=timings.tokens_per_s if timings else None,
        keep_success=keep_success,
        **fields,
    )

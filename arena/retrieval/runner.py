"""Model search queries for retrieval recall, generated through the registry and cached in the store.

Shared by `arena recall` and the leaderboard's Recall section. A query is keyed by (model, eval set,
item, prompt hash); the hash covers the messages and tools the model sees, its effective sampling
options and the model entry (weights, adapter, template), so editing any of them regenerates, while a
rerun with nothing changed takes every answered item from ``recall_queries``. Failed requests are
stored too (status ``error``) and retried on the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from arena.core.dialogs import Dialog
from arena.retrieval.recall import GenerationReport, QueryResult, backend_generate, generate_queries, prompt_hash

if TYPE_CHECKING:
    from arena.store import Store
    from backends.base import Options, ToolCall
    from backends.registry import Registry

# Fields of a models-file entry that do not change what the model answers.
_NOT_THE_MODEL = ("description", "timeouts", "options", "api_key_env", "launch")


class StoreQueryCache:
    """``arena.retrieval.recall.QueryCache`` over the store's ``recall_queries`` rows of one model."""

    def __init__(self, store: Store, model_id: int, options: dict[str, Any], model: dict[str, Any]) -> None:
        self.store = store
        self.model_id = model_id
        self.options = options
        self.model = model
        self._rows: dict[str, dict[tuple[str, str], Any]] = {}  # eval set -> stored rows, read once per run

    def key(self, item: Dialog) -> str:
        """The prompt hash of an item for this model and these options."""
        return prompt_hash(item, self.options, self.model)

    def lookup(self, item: Dialog) -> QueryResult | None:
        if item.eval_set not in self._rows:
            self._rows[item.eval_set] = self.store.get_recall_queries(self.model_id, item.eval_set)
        row = self._rows[item.eval_set].get((item.id, self.key(item)))
        return None if row is None else QueryResult(row.query, row.status, row.error or "")

    def save(self, item: Dialog, result: QueryResult, tool_calls: list[ToolCall] | None) -> None:
        self.store.save_recall_query(
            model_id=self.model_id,
            eval_set=item.eval_set,
            item_id=item.id,
            prompt_hash=self.key(item),
            query=result.query,
            status=result.status,
            tool_calls=[c.to_openai() for c in tool_calls] if tool_calls else None,
            error=result.detail or None,
        )


def model_fingerprint(registry: Registry, name: str) -> dict[str, Any]:
    """What identifies a model's answers in its models-file entry (not its description or timeouts)."""
    spec = registry.specs[name].model_dump(mode="json")
    return {k: v for k, v in spec.items() if k not in _NOT_THE_MODEL}


def effective_options(registry: Registry, name: str, options: Options | None = None) -> dict[str, Any]:
    """The sampling options a request to this model runs with: ``options`` over the entry's defaults."""
    from backends.base import Options

    backend = registry[name]
    return (options or Options()).merged_over(backend.default_options).model_dump(exclude_none=True)


async def model_queries(
    store: Store,
    registry: Registry,
    name: str,
    items: Sequence[Dialog],
    *,
    concurrency: int = 4,
    options: Options | None = None,
    report: GenerationReport | None = None,
) -> dict[str, QueryResult]:
    """Model ``name``'s query for every item: cached rows reused, the rest generated and stored."""
    from arena.annotation.answers import register_model

    cache = StoreQueryCache(
        store,
        register_model(store, registry, name),
        effective_options(registry, name, options),
        model_fingerprint(registry, name),
    )
    generate = backend_generate(registry[name], options)
    return await generate_queries(items, generate, concurrency=concurrency, cache=cache, report=report)

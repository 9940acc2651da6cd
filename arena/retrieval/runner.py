"""Model search queries for retrieval recall, generated through the registry and cached in the store.

Shared by `arena recall` and the leaderboard's Recall section, as are the query sources every recall table
starts with (``reference_systems``: the baseline and the reference query) and ``RecallRunner`` (the
retrieval set and its index, opened once per app, then every system scored). A query is keyed by (model, eval set,
item, prompt hash); the hash covers the messages and tools the model sees, its effective sampling
options and the model entry (weights, adapter, template), so editing any of them regenerates, while a
rerun with nothing changed takes every answered item from ``recall_queries``. Failed requests are
stored too (status ``error``) and retried on the next run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena import PROJECT_ROOT
from arena.core.dialogs import Dialog, load_dialogs
from arena.retrieval.recall import (
    BASELINE,
    MRR_DEPTH,
    REFERENCE,
    GenerationReport,
    QueryResult,
    SystemResult,
    backend_generate,
    baseline_query,
    generate_queries,
    prompt_hash,
    reference_query,
    retrieval_items,
    score_system,
)

if TYPE_CHECKING:
    from arena.retrieval.retriever import Retriever
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


def reference_systems(
    items: list[Dialog], retriever: Retriever, depth: int, *, baseline: bool = True, reference: bool = True
) -> list[SystemResult]:
    """The query sources that need no model: the last user utterance, and each item's reference query
    (left out when no item has one; an item without one is a miss, said so)."""
    out = []
    if baseline:
        out.append(
            score_system(f"{BASELINE} + BM25", items, {i.id: baseline_query(i) for i in items}, retriever, depth)
        )
    references = {i.id: reference_query(i) for i in items}
    if reference and any(references.values()):
        queries = {k: v or QueryResult(None, "no_call", "item has no reference query") for k, v in references.items()}
        out.append(score_system(f"{REFERENCE} + BM25", items, queries, retriever, depth))
    return out


@dataclass(frozen=True)
class RecallConfig:
    """The shipped retrieval set and where its BM25 index is cached (model queries live in the store)."""

    items_path: Path = PROJECT_ROOT / "eval_sets" / "fashion_retrieval.jsonl"
    docs_path: Path = PROJECT_ROOT / "eval_sets" / "retrieval" / "fashion_docs.jsonl"
    tokenizer: str = "kiwi"
    index_cache: Path | None = PROJECT_ROOT / ".cache" / "bm25"
    n_boot: int = 1000
    seed: int = 0
    concurrency: int = 2


class RecallRunner:
    """Recall of the baseline, the reference query and chosen models; the index is opened once per app."""

    def __init__(self, config: RecallConfig) -> None:
        self.config = config
        self._lock = threading.Lock()  # two sessions clicking at once must not build the index twice
        self._loaded: tuple[list[Dialog], Retriever] | None = None

    def load(self) -> tuple[list[Dialog], Retriever]:
        """The retrieval items and the BM25 retriever (built or read from the index cache on first use)."""
        from arena.retrieval.retriever import open_retriever

        with self._lock:
            if self._loaded is None:
                c = self.config
                items = retrieval_items(load_dialogs([c.items_path]))
                retriever = open_retriever(c.docs_path, c.tokenizer, cache_dir=c.index_cache)
                self._loaded = (items, retriever)
            return self._loaded

    async def systems(self, registry: Registry, models: list[str], store: Store) -> list[SystemResult]:
        """Scored query sources: baseline, reference query, then each chosen model's tool-call queries.

        Model queries come from the store's ``recall_queries`` (the same rows `arena recall --db` uses);
        only missing or failed items are generated.
        """
        items, retriever = await asyncio.to_thread(self.load)
        out = reference_systems(items, retriever, MRR_DEPTH)
        for name in models:
            queries = await model_queries(store, registry, name, items, concurrency=self.config.concurrency)
            out.append(score_system(f"{name} + BM25", items, queries, retriever, MRR_DEPTH))
        return out

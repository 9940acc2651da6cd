"""Retrieval recall: search queries per retrieval item, BM25 top-k against its gold documents, recall@k.

A retrieval item is an eval-set dialog with ``gold`` (document ids or titles) whose turns end at the
user question. Query sources ("systems"): the baseline (the last user utterance), the item's reference
query (``meta.reference_query``, the GT tool call), and models (``text_query`` of their first call to
a retrieval tool; no call or a malformed one is a miss, counted apart as the "no query" rate).

Metrics over items, each with a seeded percentile-bootstrap CI:
  hit@k (shown as R@k)  1 if any gold document is in the top k; equals recall@k when there is one gold.
  recall@k              fraction of an item's gold entries found in the top k (JSON/CSV only).
  MRR@10                1 / rank of the first gold document within the top 10, else 0.
A gold entry matches a document whose id or title equals it (titles may repeat across documents).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from arena.core.dialogs import Dialog
from arena.stats.bootstrap import chunks, group_rng, percentile_ci
from backends.base import ToolCall

if TYPE_CHECKING:
    from arena.retrieval.retriever import Retriever
    from backends.base import Backend, Options

DEFAULT_KS = (1, 2, 4, 10)
MRR_DEPTH = 10
STATUSES = ("ok", "no_call", "wrong_tool", "malformed", "error")
BASELINE = "last utterance"
REFERENCE = "reference query"


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class QueryResult:
    """A search query for one item, or why there is none (status other than ``ok``)."""

    query: str | None
    status: str = "ok"
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "status": self.status, "detail": self.detail}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> QueryResult:
        return cls(raw.get("query"), raw.get("status", "ok"), raw.get("detail", ""))


def retrieval_items(dialogs: Iterable[Dialog]) -> list[Dialog]:
    """The dialogs that have gold documents."""
    return [d for d in dialogs if d.gold]


def retrieval_tool_names(dialog: Dialog) -> set[str]:
    """Names of the item's tools that take a ``text_query`` argument."""
    names = set()
    for tool in dialog.tools:  # validated on load: each is {"type": "function", "function": {"name", ...}}
        function = tool["function"]
        if "text_query" in ((function.get("parameters") or {}).get("properties") or {}):
            names.add(function.get("name"))
    return names


def baseline_query(dialog: Dialog) -> QueryResult:
    """The last user utterance: what a system without query rewriting would search for."""
    for turn in reversed(dialog.turns):
        if turn.role == "user" and turn.content and turn.content.strip():
            return QueryResult(turn.content)
    return QueryResult(None, "no_call", "no user turn")


def reference_query(dialog: Dialog) -> QueryResult | None:
    """The item's GT query (``meta.reference_query``), or None when the item has none."""
    query = dialog.meta.get("reference_query")
    return QueryResult(query) if isinstance(query, str) and query.strip() else None


def extract_query(tool_calls: Sequence[ToolCall], tool_names: set[str]) -> QueryResult:
    """``text_query`` of the first call to a retrieval tool."""
    if not tool_calls:
        return QueryResult(None, "no_call")
    for call in tool_calls:
        if call.name not in tool_names:
            continue
        try:
            arguments = call.parsed_arguments()
        except json.JSONDecodeError as exc:
            return QueryResult(None, "malformed", f"arguments are not JSON: {exc.msg}")
        if not isinstance(arguments, dict):
            return QueryResult(None, "malformed", "arguments are not a JSON object")
        query = arguments.get("text_query")
        if not isinstance(query, str) or not query.strip():
            return QueryResult(None, "malformed", "text_query missing or empty")
        return QueryResult(query.strip())
    called = ", ".join(sorted({c.name for c in tool_calls}))
    return QueryResult(None, "wrong_tool", f"called {called}")


def prompt_hash(
    dialog: Dialog, options: Mapping[str, Any] | None = None, model: Mapping[str, Any] | None = None
) -> str:
    """Cache key of a query generation: what the model sees (messages, tools), the sampling options and the model."""
    from arena.core.replay import build_messages

    seen = {
        "messages": build_messages(dialog, len(dialog.turns)),
        "tools": dialog.tools,
        "options": dict(options or {}),
        "model": dict(model or {}),
    }
    return hashlib.sha256(json.dumps(seen, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


class QueryCache(Protocol):
    """Where generated queries are kept between runs (``arena.retrieval.runner.StoreQueryCache`` is the store's)."""

    def lookup(self, item: Dialog) -> QueryResult | None:
        """The cached result for this item as the model would see it now; None (or an error) = generate."""

    def save(self, item: Dialog, result: QueryResult, tool_calls: list[ToolCall] | None) -> None:
        """Keep a result, failures included (they are retried, but show what went wrong)."""


@dataclass
class MemoryQueryCache:
    """A QueryCache in a dict, keyed by item id + prompt hash (for tests and one-off scripts)."""

    options: Mapping[str, Any] = field(default_factory=dict)
    rows: dict[tuple[str, str], tuple[QueryResult, list[ToolCall] | None]] = field(default_factory=dict)

    def lookup(self, item: Dialog) -> QueryResult | None:
        found = self.rows.get((item.id, prompt_hash(item, self.options)))
        return found[0] if found else None

    def save(self, item: Dialog, result: QueryResult, tool_calls: list[ToolCall] | None) -> None:
        self.rows[(item.id, prompt_hash(item, self.options))] = (result, tool_calls)


GenerateFn = Callable[[Dialog], Awaitable[list[ToolCall]]]


@dataclass
class GenerationReport:
    """How a generate_queries run went: items taken from the cache, generated now, failed now."""

    cached: int = 0
    generated: int = 0
    failed: int = 0


async def generate_queries(
    items: Sequence[Dialog],
    generate: GenerateFn,
    *,
    concurrency: int = 4,
    cache: QueryCache | None = None,
    report: GenerationReport | None = None,
) -> dict[str, QueryResult]:
    """Model queries for every item, ``concurrency`` requests at a time; cached results are reused (resumable).

    ``generate(dialog)`` returns the model's tool calls. A raising ``generate`` gives status ``error``:
    saved (so the failure is on record) but never reused, so the next run retries it.
    """
    results: dict[str, QueryResult] = {}
    semaphore = asyncio.Semaphore(max(1, concurrency))
    report = report if report is not None else GenerationReport()

    async def one(item: Dialog) -> None:
        found = cache.lookup(item) if cache is not None else None
        if found is not None and found.status != "error":
            results[item.id] = found
            report.cached += 1
            return
        calls: list[ToolCall] | None = None
        async with semaphore:
            try:
                calls = await generate(item)
            except Exception as exc:  # a failed request is a miss for this run, never fatal for the others
                result = QueryResult(None, "error", f"{type(exc).__name__}: {exc}")
            else:
                result = extract_query(calls, retrieval_tool_names(item))
        results[item.id] = result
        if result.status == "error":
            report.failed += 1
        else:
            report.generated += 1
        if cache is not None:
            # Off the event loop: a store write may wait for another writer's lock.
            await asyncio.to_thread(cache.save, item, result, calls)

    await asyncio.gather(*(one(item) for item in items))
    return {item.id: results[item.id] for item in items}


class BackendFailed(RuntimeError):
    """A backend stream ended in an ``Error`` event."""


def backend_generate(backend: Backend, options: Options | None = None) -> GenerateFn:
    """Adapt a ``backends.base.Backend`` to ``generate(dialog) -> tool calls``."""
    from arena.core.replay import build_messages
    from backends.base import Error

    async def generate(dialog: Dialog) -> list[ToolCall]:
        messages = build_messages(dialog, len(dialog.turns))
        final = await backend.complete(messages, tools=dialog.tools or None, options=options)
        if isinstance(final, Error):
            raise BackendFailed(f"{final.code}: {final.message}")
        return list(final.tool_calls)

    return generate


# --------------------------------------------------------------------------- scoring


@dataclass
class ItemOutcome:
    """One item under one system: its query and the 1-based rank of each gold entry (None = not in top depth)."""

    item_id: str
    query: str | None
    status: str
    gold_ranks: list[int | None]
    retrieved: list[str] = field(default_factory=list)

    @property
    def first_hit(self) -> int | None:
        ranks = [r for r in self.gold_ranks if r is not None]
        return min(ranks) if ranks else None


@dataclass
class SystemResult:
    """Every item's outcome for one query source."""

    name: str
    outcomes: list[ItemOutcome]
    depth: int

    def hits(self, ks: Sequence[int]) -> np.ndarray:
        """(items x ks) 0/1: any gold in the top k."""
        first = np.array([o.first_hit or np.inf for o in self.outcomes], dtype=float)
        return (first[:, None] <= np.asarray(ks)[None, :]).astype(float)

    def recalls(self, ks: Sequence[int]) -> np.ndarray:
        """(items x ks): fraction of gold entries found in the top k."""
        out = np.zeros((len(self.outcomes), len(ks)))
        for i, o in enumerate(self.outcomes):
            ranks = np.array([r or np.inf for r in o.gold_ranks], dtype=float)
            out[i] = (ranks[:, None] <= np.asarray(ks)[None, :]).mean(axis=0)
        return out

    def reciprocal_ranks(self, depth: int = MRR_DEPTH) -> np.ndarray:
        """1/rank of the first gold within ``depth``, else 0."""
        return np.array([1.0 / o.first_hit if o.first_hit and o.first_hit <= depth else 0.0 for o in self.outcomes])

    def status_counts(self) -> dict[str, int]:
        """Items per query status (``ok`` = a query was searched)."""
        counts = Counter(o.status for o in self.outcomes)
        return {s: counts.get(s, 0) for s in STATUSES if counts.get(s) or s == "ok"}

    def no_query_rate(self) -> float:
        """Share of items without a usable query (no call, wrong tool, malformed, error)."""
        return sum(o.status != "ok" for o in self.outcomes) / max(1, len(self.outcomes))


def gold_ranks(
    gold: Sequence[str], retrieved: Sequence[int], ids: Sequence[str], titles: Sequence[str]
) -> list[int | None]:
    """1-based rank of the first retrieved document matching each gold entry by id or title."""
    ranks: list[int | None] = []
    for g in gold:
        rank = next((r for r, doc in enumerate(retrieved, start=1) if ids[doc] == g or titles[doc] == g), None)
        ranks.append(rank)
    return ranks


def unreachable_gold(items: Sequence[Dialog], retriever: Retriever) -> dict[str, list[str]]:
    """Gold entries that match no document of the index, by item id (such items can never hit)."""
    known = set(retriever.corpus.ids) | set(retriever.corpus.titles)
    missing = {item.id: [g for g in item.gold or [] if g not in known] for item in items}
    return {k: v for k, v in missing.items() if v}


def score_system(
    name: str, items: Sequence[Dialog], queries: Mapping[str, QueryResult], retriever: Retriever, depth: int = MRR_DEPTH
) -> SystemResult:
    """Search every item's query and rank its gold documents; items without a query miss."""
    searched = [item for item in items if queries[item.id].status == "ok" and queries[item.id].query]
    hits = retriever.search_many([queries[i.id].query for i in searched], depth)
    by_id = dict(zip((i.id for i in searched), hits))
    ids, titles = retriever.corpus.ids, retriever.corpus.titles
    outcomes = []
    for item in items:
        q = queries[item.id]
        found = by_id.get(item.id)
        retrieved = [] if found is None else [int(i) for i in found.indices]
        status = q.status if q.status != "ok" or q.query else "malformed"
        outcomes.append(
            ItemOutcome(
                item.id,
                q.query,
                status,
                gold_ranks(item.gold or [], retrieved, ids, titles),
                [ids[i] for i in retrieved],
            )
        )
    return SystemResult(name, outcomes, depth)


# --------------------------------------------------------------------------- summary + tables


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of column means over rows (items). One key for every system: the same seed
    resamples the same items, so systems are compared on paired resamples."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    n = len(values)
    if n == 0 or n_boot <= 0:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan
    rng = group_rng(seed, "recall")
    means = [values[rng.integers(0, n, size=(size, n))].mean(axis=1) for size in chunks(n_boot, n * values.shape[1])]
    return percentile_ci(np.concatenate(means), level)


def summarize(
    result: SystemResult, ks: Sequence[int] = DEFAULT_KS, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Means and bootstrap CIs of hit@k, recall@k and MRR@10 for one system."""
    hit, rec, rr = result.hits(ks), result.recalls(ks), result.reciprocal_ranks()[:, None]
    columns = [f"R@{k}" for k in ks] + [f"recall@{k}" for k in ks] + [f"MRR@{MRR_DEPTH}"]
    values = np.hstack([hit, rec, rr]) if len(result.outcomes) else np.zeros((0, len(columns)))
    lo, hi = bootstrap_ci(values, n_boot, seed, level)
    means = values.mean(axis=0) if len(values) else np.full(len(columns), np.nan)
    return {
        "system": result.name,
        "n": len(result.outcomes),
        "no_query_rate": result.no_query_rate(),
        "status_counts": result.status_counts(),
        "metrics": {
            c: {"value": float(m), "lo": float(a), "hi": float(b)} for c, m, a, b in zip(columns, means, lo, hi)
        },
        "ci": {"level": level, "n_boot": n_boot, "seed": seed},
    }

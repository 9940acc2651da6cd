"""`arena recall --eval-set SET.jsonl [--models NAME ...]`: BM25 title recall@k of search queries.

Rows: the baseline (last user utterance; --baseline none drops it), the reference query (the item's
GT tool call, when the set has one) and, with --models, each model's first retrieval tool call. The
documents come from --index, or else from the items' "meta.index" hint (a path relative to the
eval-set file; the shipped fashion set points at eval_sets/retrieval/fashion_docs.jsonl). The BM25
index is built once and cached under --cache-dir; model queries are cached in the store (--db), so a
rerun only generates what is missing or failed, and edited dialogs or options regenerate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena.commands.common import UserError, add_db_argument
from arena.retrieval.recall import DEFAULT_KS, MRR_DEPTH

if TYPE_CHECKING:
    from arena.core.dialogs import Dialog
    from arena.retrieval.recall import QueryResult

FORMATS = ("md", "csv", "json")
BASELINES = ("last-utterance", "none")


class RecallError(Exception):
    """A problem the user can fix from the command line."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recall", help="BM25 retrieval recall@k of baseline and model search queries", description=__doc__
    )
    p.add_argument(
        "--eval-set",
        "--set",
        "--items",
        dest="sets",
        nargs="+",
        required=True,
        metavar="JSONL",
        help='eval set(s) with retrieval items ("gold"); --set and --items are the same option',
    )
    p.add_argument(
        "--index",
        metavar="JSONL",
        help='documents, one {"id", "title", "text"} per line (default: the items\' "meta.index" hint)',
    )
    p.add_argument(
        "--baseline",
        choices=BASELINES,
        default="last-utterance",
        help="baseline row: the last user utterance as the query (default), or none",
    )
    p.add_argument(
        "--tokenizer",
        choices=("kiwi", "whitespace"),
        default="kiwi",
        help="Kiwi morphemes (default) or whitespace words",
    )
    p.add_argument("--field", choices=("title", "title_text"), default="title", help="what is indexed (default: title)")
    p.add_argument(
        "--k",
        dest="ks",
        type=int,
        nargs="+",
        default=list(DEFAULT_KS),
        metavar="K",
        help="cut-offs (default: 1 2 4 10)",
    )
    p.add_argument("--format", choices=FORMATS, default="md", help="table format (default: md)")
    p.add_argument(
        "--models",
        nargs="+",
        default=[],
        metavar="NAME",
        help="models (from the registry) whose tool calls give queries",
    )
    p.add_argument(
        "--config", default="configs/demo.yaml", help="models YAML for --models (default: configs/demo.yaml)"
    )
    add_db_argument(p)  # the store holding cached model queries
    p.add_argument("--concurrency", type=int, default=4, help="parallel generations per model (default: 4)")
    p.add_argument("--no-reference", action="store_true", help="leave out the reference-query row")
    p.add_argument("--cache-dir", default=".cache/bm25", metavar="DIR", help="BM25 index cache (default: .cache/bm25)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the BM25 index even if the cache is valid")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for CIs; 0 = no CIs")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--plot", metavar="HTML", help="also write the recall@k curve as a standalone HTML file")
    p.add_argument("--items-out", metavar="JSONL", help="also write every item's query, status and retrieved ids")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except RecallError as exc:
        raise UserError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from arena.retrieval.recall import (
        score_system,
        summarize,
        unreachable_gold,
    )
    from arena.retrieval.retriever import open_retriever
    from arena.retrieval.runner import reference_systems
    from arena.retrieval.tables import format_table

    ks = sorted(set(args.ks))
    if ks[0] < 1:
        raise RecallError("--k values must be >= 1")
    items, index_path = _load_items(args.sets, args.index)
    registry = _load_registry(args.models, args.config) if args.models else None
    try:
        retriever = open_retriever(
            index_path, args.tokenizer, field=args.field, cache_dir=args.cache_dir or None, rebuild=args.rebuild
        )
    except ValueError as exc:
        raise RecallError(str(exc)) from None
    state = "built" if retriever.built else "loaded from cache"
    print(
        f"index: {index_path}: {len(retriever.corpus.ids)} documents, {args.tokenizer} tokens, {state}", file=sys.stderr
    )
    for item_id, golds in unreachable_gold(items, retriever).items():
        print(f"warning: {item_id}: gold {golds} matches no document of {index_path}", file=sys.stderr)

    depth = max(max(ks), MRR_DEPTH)
    systems = reference_systems(
        items, retriever, depth, baseline=args.baseline == "last-utterance", reference=not args.no_reference
    )
    if registry is not None:
        for name, queries in asyncio.run(_all_model_queries(registry, items, args)).items():
            systems.append(score_system(f"{name} + BM25", items, queries, retriever, depth))
    if not systems:
        raise RecallError("nothing to score: --baseline none, no reference queries and no --models")

    summaries = [summarize(s, ks, n_boot=args.bootstrap, seed=args.seed) for s in systems]
    print(format_table(summaries, ks, args.format, ci=args.bootstrap > 0))
    if args.plot:
        from arena.retrieval.plots import recall_curve_figure

        recall_curve_figure(systems, depth, n_boot=args.bootstrap, seed=args.seed).write_html(args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    if args.items_out:
        _write_items(args.items_out, systems)
    return 0


def _load_items(sets: list[str], index: str | None) -> tuple[list[Dialog], Path]:
    """The retrieval items of every set, and the index: --index, or the items' agreeing "meta.index" hints."""
    from arena.core.dialogs import EvalSetError, load_dialogs
    from arena.retrieval.recall import retrieval_items

    items: list[Dialog] = []
    hints: set[Path] = set()
    for path in sets:
        if not Path(path).is_file():
            raise RecallError(f"no such file: {path}")
        try:
            found = retrieval_items(load_dialogs([path]))
        except EvalSetError as exc:
            raise RecallError(f"invalid eval set:\n{exc}") from None
        items.extend(found)
        hints |= {
            (Path(path).parent / d.meta["index"]).resolve() for d in found if isinstance(d.meta.get("index"), str)
        }
    if not items:
        raise RecallError(f'no retrieval items (dialogs with "gold") in {" ".join(sets)}')
    if index is not None:
        chosen = Path(index)
    elif len(hints) == 1:
        chosen = hints.pop()
    elif hints:
        raise RecallError(f"the items name different indexes ({', '.join(sorted(map(str, hints)))}); pass --index")
    else:
        raise RecallError('no --index given and the items have no "meta.index" hint')
    if not chosen.is_file():
        raise RecallError(f"no such file: {chosen}")
    return items, chosen


async def _all_model_queries(registry: Any, items: list, args: argparse.Namespace) -> dict[str, dict[str, QueryResult]]:
    """Each --models model's queries, one model after another (each with --concurrency requests), via the store."""
    from arena.retrieval.recall import GenerationReport
    from arena.retrieval.runner import model_queries
    from arena.store import Store

    out = {}
    try:
        with Store.open(args.db) as store:
            for name in args.models:
                report = GenerationReport()
                print(f"{name}: queries for {len(items)} items (cached in {store.url})", file=sys.stderr)
                out[name] = await model_queries(
                    store, registry, name, items, concurrency=args.concurrency, report=report
                )
                print(
                    f"{name}: {report.cached} from the store, {report.generated} generated, {report.failed} failed "
                    "(failed requests are retried on the next run)",
                    file=sys.stderr,
                )
    finally:
        await registry.aclose()
    return out


def _load_registry(names: list[str], config: str) -> Any:
    """The model registry (backends/registry.py) holding every --models name; nothing is loaded yet."""
    from backends.registry import RegistryError, build_registry, default_config_path

    try:
        registry = build_registry(default_config_path(config))
    except RegistryError as exc:
        raise RecallError(str(exc)) from None
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise RecallError(f"unknown model(s) {', '.join(unknown)} in {config}; known: {', '.join(registry.names())}")
    return registry


def _write_items(path: str, systems: list) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for system in systems:
            for o in system.outcomes:
                row = {"system": system.name, "item": o.item_id, "query": o.query, "status": o.status}
                row.update({"first_hit": o.first_hit, "gold_ranks": o.gold_ranks, "retrieved": o.retrieved})
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")

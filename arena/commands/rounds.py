"""`arena round create|start|pregen|close|reopen|status|list`: blind A/B rounds from the command line.

  arena round create week-1 --eval-set selectstar_fashion --models polyglot-tiny,llama-tiny \\
      --annotators kim,lee --judgements 2 --seed 7
  arena round start week-1              # freezes the config and draws pairs and screen sides
  arena round pregen week-1 --concurrency llama-8b=32   # resumable: stored answers are skipped
  arena round status week-1
  arena round close week-1              # no more votes; `arena round reopen week-1` undoes it
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from arena import PROJECT_ROOT
from arena.commands.common import UserError, add_db_argument
from arena.core.errors import validation_problems


def _eval_sets_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--eval-sets",
        type=Path,
        default=PROJECT_ROOT / "eval_sets",
        metavar="DIR",
        help="directory of eval-set JSONL files (default: the project's eval_sets/)",
    )


def _models_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="configs/demo.yaml", help="models YAML (default: configs/demo.yaml)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "round",
        help="create, start, pre-generate and follow blind A/B rounds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="round_command", metavar="ACTION", required=True)

    c = actions.add_parser("create", help="create a draft round (validated against eval sets, models, annotators)")
    c.add_argument("name")
    c.add_argument("--file", type=Path, help="YAML with the round's fields (flags below override it)")
    c.add_argument(
        "--eval-set", dest="eval_sets_", action="append", metavar="SET", help="eval set to judge (repeatable)"
    )
    c.add_argument("--dialogs", help="comma-separated dialog-id patterns, e.g. 'fashion-coat-*' (default: all)")
    c.add_argument("--categories", help="comma-separated dialog categories to keep (default: all)")
    c.add_argument("--models", help="comma-separated model entries of --config (two or more; adapters are entries)")
    c.add_argument("--pairing", choices=["all", "sampled"], help="every pair per turn (default) or a weighted sample")
    c.add_argument("--pairs-per-turn", type=int, help="sampled: pairs drawn per turn")
    c.add_argument("--weights", help="sampled: MODEL=WEIGHT,... (default weight 1)")
    c.add_argument("--judgements", type=int, help="independent judgements per item (default 1)")
    c.add_argument(
        "--sampling",
        choices=["uniform", "active"],
        help="uniform: least-judged items first (default); active: the pair whose next vote most narrows the ranking",
    )
    c.add_argument("--min-pair-votes", type=int, help="active: votes every model pair gets first (default 2)")
    c.add_argument("--annotators", help="comma-separated annotator names who judge this round")
    c.add_argument("--seed", type=int, help="seed for pairs and screen sides (default 0)")
    c.add_argument("--max-tokens", type=int, help="pre-generation max_tokens (default: each model's own)")
    c.add_argument("--temperature", type=float, help="pre-generation temperature (default: each model's own)")
    c.add_argument("--start", action="store_true", help="start the round right away")
    _models_arg(c)
    _eval_sets_arg(c)
    add_db_argument(c)
    c.set_defaults(func=run_create)

    s = actions.add_parser("start", help="freeze a draft round and write its items")
    s.add_argument("name")
    _eval_sets_arg(s)
    add_db_argument(s)
    s.set_defaults(func=run_start)

    g = actions.add_parser("pregen", help="generate every model's answer to every turn of a round (resumable)")
    g.add_argument("name")
    g.add_argument(
        "--concurrency",
        action="append",
        default=[],
        metavar="N|MODEL=N",
        help="requests in flight per model: N for all, MODEL=N for one (repeatable; "
        "default: 1 for in-process models, 8 for OpenAI-compatible servers, 32 for vLLM)",
    )
    g.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for one answer (default 600)")
    _models_arg(g)
    _eval_sets_arg(g)
    add_db_argument(g)
    g.set_defaults(func=run_pregen)

    cl = actions.add_parser("close", help="stop judging a round (votes are kept; `reopen` undoes it)")
    cl.add_argument("name")
    add_db_argument(cl)
    cl.set_defaults(func=run_close)

    ro = actions.add_parser("reopen", help="open a closed round again, its items and votes as they were")
    ro.add_argument("name")
    add_db_argument(ro)
    ro.set_defaults(func=run_reopen)

    st = actions.add_parser("status", help="items done / total, votes per annotator and per model pair")
    st.add_argument("name")
    add_db_argument(st)
    st.set_defaults(func=run_status)

    ls = actions.add_parser("list", help="list rounds")
    add_db_argument(ls)
    ls.set_defaults(func=run_list)


def _fail(message: str) -> int:
    raise UserError(message)


def _config_fields(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from arena.rounds.config import parse_weights, split_list

    fields: dict[str, Any] = {}
    if args.file:
        loaded = yaml.safe_load(args.file.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.file}: expected a mapping of round fields")
        fields.update(loaded)
    flags = {
        "eval_sets": args.eval_sets_,
        "dialogs": split_list(args.dialogs) if args.dialogs else None,
        "categories": split_list(args.categories) if args.categories else None,
        "models": split_list(args.models) if args.models else None,
        "pairing": args.pairing,
        "pairs_per_turn": args.pairs_per_turn,
        "weights": parse_weights(args.weights) if args.weights else None,
        "judgements": args.judgements,
        "sampling": args.sampling,
        "min_pair_votes": args.min_pair_votes,
        "annotators": split_list(args.annotators) if args.annotators else None,
        "seed": args.seed,
    }
    fields.update({k: v for k, v in flags.items() if v is not None})
    options = dict(fields.get("options") or {})
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if options:
        fields["options"] = options
    return fields


def _dialogs(directory: Path):
    from arena.core.dialogs import eval_set_files, load_dialogs

    return load_dialogs(eval_set_files(directory))


def run_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from arena import rounds
    from arena.store import Store, StoreError
    from backends.registry import RegistryError, build_registry, default_config_path

    try:
        config = rounds.RoundConfig.model_validate(_config_fields(args))
        registry = build_registry(default_config_path(args.config))
        dialogs = _dialogs(args.eval_sets)
    except ValidationError as exc:
        return _fail("invalid round:\n" + "\n".join(f"  {line}" for line in validation_problems(exc, "round")))
    except (RegistryError, ValueError, OSError) as exc:
        return _fail(str(exc))
    with Store.open(args.db) as store:
        try:
            rid = rounds.create_round(store, args.name, config, dialogs=dialogs, registry=registry)
            n = rounds.count_items(config, dialogs)
            print(
                f"created round {args.name!r} (id {rid}, draft): {n} items, "
                f"{config.judgements} judgement(s) each, annotators: {', '.join(config.annotators)}"
            )
            if args.start:
                rounds.start_round(store, rid, dialogs=dialogs)
                print(f"started round {args.name!r}: config frozen; next: arena round pregen {args.name}")
        except StoreError as exc:
            return _fail(str(exc))
    return 0


def run_start(args: argparse.Namespace) -> int:
    from arena import rounds
    from arena.store import Store, StoreError

    with Store.open(args.db) as store:
        try:
            n = rounds.start_round(store, args.name, dialogs=_dialogs(args.eval_sets))
        except StoreError as exc:
            return _fail(str(exc))
    print(f"round {args.name!r} is running with {n} items; next: arena round pregen {args.name}")
    return 0


def run_close(args: argparse.Namespace) -> int:
    from arena import rounds
    from arena.store import Store, StoreError

    with Store.open(args.db) as store:
        try:
            rounds.close_round(store, args.name)
        except StoreError as exc:
            return _fail(str(exc))
    print(f"round {args.name!r} is closed: no more votes; undo with arena round reopen {args.name}")
    return 0


def run_reopen(args: argparse.Namespace) -> int:
    from arena import rounds
    from arena.store import Store, StoreError

    with Store.open(args.db) as store:
        try:
            status = rounds.reopen_round(store, args.name)
        except StoreError as exc:
            return _fail(str(exc))
    print(f"round {args.name!r} is {status} again; its items and votes are as they were")
    return 0


def _concurrency(values: list[str]) -> tuple[int | None, dict[str, int]]:
    default, per_model = None, {}
    for value in values:
        name, sep, n = value.rpartition("=")
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--concurrency {value!r}: expected N or MODEL=N with N >= 1")
        if sep:
            per_model[name] = int(n)
        else:
            default = int(n)
    return default, per_model


def run_pregen(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from arena.core.metrics import default_splitter
    from arena.rounds import pregen
    from arena.store import Store, StoreError
    from backends.registry import RegistryError, build_registry, default_config_path

    try:
        default, per_model = _concurrency(args.concurrency)
        registry = build_registry(default_config_path(args.config))
        dialogs = _dialogs(args.eval_sets)
    except (RegistryError, ValueError, OSError) as exc:
        return _fail(str(exc))
    with Store.open(args.db) as store, tqdm(desc=f"pregen {args.name}", unit="answer", dynamic_ncols=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        async def main() -> pregen.Report:
            try:
                return await pregen.run(
                    store,
                    args.name,
                    registry,
                    dialogs,
                    concurrency=per_model,
                    default_concurrency=default,
                    on_progress=progress,
                    splitter=default_splitter(),
                    timeout=args.timeout,
                )
            finally:
                await registry.aclose()

        try:
            report = asyncio.run(main())
        except StoreError as exc:
            return _fail(str(exc))
    print(report.text())
    return 1 if report.failed else 0


def run_status(args: argparse.Namespace) -> int:
    from arena import rounds
    from arena.store import Store, StoreError

    with Store.open(args.db) as store:
        try:
            print(rounds.round_status(store, args.name).text())
        except StoreError as exc:
            return _fail(str(exc))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from arena.store import Store

    with Store.open(args.db) as store:
        found = store.list_rounds()
    if not found:
        print("no rounds yet: `arena round create NAME ...`")
    for r in found:
        cfg = r.config or {}
        print(f"{r.name}\t{r.status}\t{', '.join(cfg.get('models', []))}\t{', '.join(cfg.get('eval_sets', []))}")
    return 0

"""`arena models ...`: build the tiny default models, list models, and run the vLLM servers of a models file.

`up` starts every entry with a `launch:` section (detached; logs and pid files in --run-dir), `down` stops
them, `status` shows each vLLM server's health, adapters and load, launched here or elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arena.commands.common import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `models` group; each action is a nested subcommand with its own ``func``."""
    p = sub.add_parser("models", help="build, list and launch models", description=__doc__)
    actions = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    b = actions.add_parser(
        "build",
        help="train the tiny default models from the eval sets (cached; seconds when up to date)",
        description="Train polyglot-tiny and llama-tiny locally (tokenizer + weights) from eval_sets/*.jsonl. "
        "Nothing is downloaded. Skipped when the cache already matches the profile, corpus and code.",
    )
    b.add_argument("--profile", choices=["demo", "test"], default="demo", help="size/time budget (default: demo)")
    b.add_argument(
        "--out", type=Path, default=None, help="cache dir (default: models/ for demo, .cache/tiny-test for test)"
    )
    b.add_argument("--force", action="store_true", help="rebuild even when the cache is up to date")
    b.add_argument(
        "--corpus", type=Path, nargs="+", default=None, help="eval-set JSONL files (default: eval_sets/*.jsonl)"
    )
    b.set_defaults(func=run_build)

    ls = actions.add_parser(
        "list",
        help="list the models of a models YAML file with a health check each",
        description="Show name, kind, target and health of every model declared in a models YAML file.",
    )
    ls.add_argument("--config", default="configs/demo.yaml", help="models YAML (default: configs/demo.yaml)")
    ls.set_defaults(func=run_list)

    def server_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text, description=help_text)
        a.add_argument(
            "--config", default="configs/gpu-example.yaml", help="models YAML (default: configs/gpu-example.yaml)"
        )
        a.add_argument("--run-dir", type=Path, default=None, help="server logs and pid files (default: logs/vllm)")
        return a

    up = server_parser("up", "start the vLLM servers of entries with a `launch:` section and wait until healthy")
    up.add_argument("names", nargs="*", help="entries to start (default: all with `launch:`)")
    up.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait for /health (default: launch.startup_timeout)"
    )
    up.add_argument("--dry-run", action="store_true", help="print the commands, start nothing")
    up.add_argument(
        "--parallel",
        action="store_true",
        help="start all servers at once (servers on separate GPUs); by default each waits for the one "
        "before it, because vLLM's memory profiling miscounts a neighbour that is loading on the same GPU",
    )
    up.set_defaults(func=run_up)

    down = server_parser("down", "stop the vLLM servers that `arena models up` started")
    down.add_argument("names", nargs="*", help="entries to stop (default: all with `launch:`)")
    down.set_defaults(func=run_down)

    st = server_parser("status", "health, loaded adapters and load (/metrics) of every vLLM server in a models file")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=run_status)


def run_build(args: argparse.Namespace) -> int:
    """Build (or find cached) tiny models and print one line per model."""
    from training.tiny import ensure_tiny_models, read_manifest

    try:
        dirs = ensure_tiny_models(args.out, args.profile, corpus_files=args.corpus, force=args.force)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    for name, path in dirs.items():
        m = read_manifest(path) or {}
        print(
            f"{name}: {path}  ({m.get('architecture')}, {m.get('params', 0):,} params, {m.get('steps')} steps, "
            f"loss {m.get('initial_loss')} -> {m.get('final_loss')}, built {m.get('built_at')} in {m.get('seconds')} s)"
        )
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the models table; exit 1 if the file is invalid or a model is unhealthy."""
    from backends.registry import RegistryError, default_config_path, list_models

    try:
        table, healthy = list_models(default_config_path(args.config))
    except RegistryError as exc:
        raise UserError(str(exc)) from None
    print(table)
    return 0 if healthy else 1


def _plans(args: argparse.Namespace):
    """(config, launch plans for the chosen names); RegistryError/KeyError for bad files or names."""
    from backends.launcher import DEFAULT_RUN_DIR, plans
    from backends.registry import default_config_path, load_config

    config, base = load_config(default_config_path(args.config))
    names = getattr(args, "names", None) or None
    return config, plans(config, base, args.run_dir or DEFAULT_RUN_DIR, names)


def run_up(args: argparse.Namespace) -> int:
    """Start the servers (those already up are left alone), wait for each, print one line per server."""
    import asyncio

    from backends.launcher import LaunchError, probe, running_pid, start, stop, wait_healthy
    from backends.registry import RegistryError

    try:
        _, chosen = _plans(args)
    except (RegistryError, KeyError) as exc:
        raise UserError(f"{exc.args[0] if isinstance(exc, KeyError) else exc}") from None
    if not chosen:
        raise UserError("no entry of the models file has a `launch:` section")
    if args.dry_run:
        for plan in chosen:
            print(f"# {plan.name} -> {plan.base_url}\n{plan.shell()}")
        return 0
    started = []
    failed = 0

    def wait(plan, pid: int) -> None:
        nonlocal failed
        try:
            seconds = wait_healthy(plan, pid, args.timeout)
        except LaunchError as exc:
            failed += 1
            print(f"arena models: {exc}", file=sys.stderr)  # the others go on; exit 1 at the end
            stop(plan)
            return
        print(f"{plan.name}: up at {plan.base_url} (pid {pid}) after {seconds:.0f} s", flush=True)

    for plan in chosen:
        pid = running_pid(plan)
        if pid is not None:
            print(f"{plan.name}: already running (pid {pid}) at {plan.base_url}")
            continue
        if asyncio.run(probe(plan.base_url, timeout=5)).healthy:
            print(f"{plan.name}: a server already answers at {plan.base_url}; not starting another")
            continue
        pid = start(plan)
        print(f"{plan.name}: starting (pid {pid}), log {plan.log}", flush=True)
        # One at a time by default: two vLLMs loading on one GPU count each other's memory as their own
        # (vllm-project/vllm#55827), which shrinks the KV cache or fails the start.
        if args.parallel:
            started.append((plan, pid))
        else:
            wait(plan, pid)
    for plan, pid in started:
        wait(plan, pid)
    return 1 if failed else 0


def run_down(args: argparse.Namespace) -> int:
    """Stop the servers started by `up` (SIGTERM, then SIGKILL); print one line per entry."""
    from backends.launcher import LaunchError, stop
    from backends.registry import RegistryError

    try:
        _, chosen = _plans(args)
    except (RegistryError, KeyError) as exc:
        raise UserError(f"{exc.args[0] if isinstance(exc, KeyError) else exc}") from None
    failed = 0
    for plan in chosen:
        try:
            pid = stop(plan)
        except LaunchError as exc:
            failed += 1
            print(f"arena models: {exc}", file=sys.stderr)  # the others go on; exit 1 at the end
            continue
        print(f"{plan.name}: " + (f"stopped (pid {pid})" if pid else "not running (started here)"))
    return 1 if failed else 0


def run_status(args: argparse.Namespace) -> int:
    """One row per vLLM server of the file: who launched it, health, models/adapters, load; exit 1 if any is down."""
    import json

    from backends.registry import RegistryError, format_table

    try:
        rows = status_rows(args)
    except RegistryError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        # The JSON keeps `healthy` for scripts; the table says it in the health column.
        table = [{k: _cell(v) for k, v in r.items() if k != "healthy"} for r in rows]
        print(format_table(table) if rows else "(no vLLM servers)")
    return 0 if all(r["healthy"] for r in rows) else 1


def status_rows(args: argparse.Namespace) -> list[dict]:
    """Status of each distinct vLLM server URL in the file (entries sharing a server share a row)."""
    import asyncio

    from backends.launcher import probe_all, running_pid
    from backends.openai import normalize_base_url

    config, chosen = _plans(argparse.Namespace(**{**vars(args), "names": None}))
    launched = {p.base_url: p for p in chosen}
    entries: dict[str, list[str]] = {}
    for spec in config.models:
        if spec.kind == "vllm" and spec.base_url:
            entries.setdefault(normalize_base_url(spec.base_url), []).append(spec.name)
    statuses = asyncio.run(probe_all(list(entries)))
    rows = []
    for url, names in entries.items():
        s = statuses[url]
        plan = launched.get(url)
        rows.append(
            {
                "server": url,
                "launched_by": plan.name if plan else "external",
                "pid": running_pid(plan) if plan else None,
                "healthy": s.healthy,
                "health": s.detail,
                "models": s.bases,
                "adapters": [f"{m['id']} (parent {m['parent']})" for m in s.models if m.get("parent")],
                "running": s.running,
                "waiting": s.waiting,
                "kv_cache_pct": None if s.kv_cache_usage is None else round(100 * s.kv_cache_usage, 1),
                "arena_models": names,
            }
        )
    return rows


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)

"""`arena adapters list | add | merge`: trained LoRA adapters on disk and in the running arena."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from arena.commands.common import OperationFailed, UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `adapters` group with its three actions."""
    from training.adapters import DEFAULT_ADAPTERS_DIR

    p = sub.add_parser(
        "adapters", help="list trained adapters, add one to the running arena, merge one", description=__doc__
    )
    actions = p.add_subparsers(dest="adapters_command", metavar="ACTION", required=True)

    ls = actions.add_parser("list", help="adapters under the adapters directory, with their manifests")
    ls.add_argument("--dir", type=Path, default=DEFAULT_ADAPTERS_DIR, help="adapters directory (default: adapters/)")
    ls.set_defaults(func=run_list)

    add = actions.add_parser(
        "add",
        help="add an adapter to the RUNNING arena as model <base>:<name> (no restart)",
        description="Ask a running arena (`arena serve`/`arena demo`) to load PATH over its model BASE and offer it "
        "as <BASE>:<NAME>. Needs a researcher account; the password is read from $ARENA_PASSWORD or asked for. "
        "The model lasts until the arena stops; add an entry to the models YAML to keep it.",
    )
    add.add_argument("name", help="adapter name; the arena model becomes <base>:<name>")
    add.add_argument("path", type=Path, help="adapter directory (as the arena's machine sees it)")
    add.add_argument("--base", required=True, help="arena model the adapter goes over, e.g. llama-tiny")
    add.add_argument("--url", default="http://127.0.0.1:7860", help="the running arena (default: %(default)s)")
    add.add_argument(
        "--user", default=os.environ.get("ARENA_USER", "demo"), help="researcher account (default: $ARENA_USER or demo)"
    )
    add.set_defaults(func=run_add)

    merge = actions.add_parser(
        "merge",
        help="merge an adapter into its base: a new full model directory",
        description="peft merge_and_unload: base + adapter saved as a new model directory "
        "(default models/<adapter>-merged). Existing directories are never overwritten.",
    )
    merge.add_argument("path", type=Path, help="adapter directory")
    merge.add_argument("--out", type=Path, default=None, help="new model directory (default: models/<adapter>-merged)")
    merge.add_argument(
        "--base", default=None, help="base model directory (default: from manifest.json / adapter_config.json)"
    )
    merge.set_defaults(func=run_merge)


def run_list(args: argparse.Namespace) -> int:
    """Print one row per adapter."""
    from backends.registry import format_table
    from training.adapters import find_adapters

    infos = find_adapters(args.dir)
    if not infos:
        print(f"no adapters in {args.dir} (train one with `arena train --config configs/train-....yaml`)")
        return 0
    rows = []
    for info in infos:
        row = info.summary()
        row["base"] = Path(row["base"]).name if row["base"] != "?" else "?"
        rows.append({k: str(v) for k, v in row.items()} | {"path": str(info.path)})
    print(format_table(rows))
    return 0


def run_add(args: argparse.Namespace) -> int:
    """POST the adapter to the running arena's /api/adapters."""
    import getpass

    import httpx

    password = os.environ.get("ARENA_PASSWORD") or getpass.getpass(f"password for {args.user}: ")
    body = {"name": args.name, "path": str(args.path.resolve()), "base": args.base}
    try:
        resp = httpx.post(args.url.rstrip("/") + "/api/adapters", json=body, auth=(args.user, password), timeout=600)
    except httpx.HTTPError as exc:
        raise OperationFailed(f"cannot reach the arena at {args.url}: {exc}") from None
    if resp.status_code != 200:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise UserError(f"{resp.status_code}: {detail}") from None
    print(f"added {resp.json()['model']} (reload the arena page to pick it)")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Merge and print the new model directory."""
    from training.adapters import merge_adapter

    try:
        out = merge_adapter(args.path, args.out, base=args.base)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"merged model: {out}")
    return 0

"""`arena demo` and `arena serve`: run the web app."""

from __future__ import annotations

import argparse
from pathlib import Path

from arena import PROJECT_ROOT
from arena.commands.common import UserError, add_db_argument


def _common(p: argparse.ArgumentParser) -> None:
    add_db_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--eval-sets", type=Path, default=PROJECT_ROOT / "eval_sets", help="directory of eval-set JSONL files"
    )
    p.add_argument(
        "--session-idle-minutes",
        type=_positive_minutes,
        default=12 * 60,
        metavar="MINUTES",
        help="log a browser out after this long without a request (default: 720, 12 hours)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        type=_origin,
        metavar="ORIGIN",
        help="another origin allowed to call the arena from a browser, e.g. https://proxy.example.org "
        "(repeatable; default: only the arena's own)",
    )


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of minutes above 0, not {text!r}")
    return value


def _origin(text: str) -> str:
    from arena.web.security import normalize_origin

    try:
        return normalize_origin(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--allow-origin {text!r}: ")) from None


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo",
        help="build the tiny models if needed and serve the arena with them",
        description="Build the embedded tiny models (first run only, a few minutes), create "
        "a 'demo' login with a fresh password, and serve the arena on http://127.0.0.1:7860.",
    )
    _common(demo)
    demo.set_defaults(func=run_demo)
    serve = sub.add_parser(
        "serve",
        help="serve the arena for a models config",
        description="Serve the arena. Annotators log in with accounts made by `arena annotators add NAME`.",
    )
    serve.add_argument(
        "--config",
        type=Path,
        default=PROJECT_ROOT / "configs" / "demo.yaml",
        help="models YAML (default: configs/demo.yaml)",
    )
    _common(serve)
    serve.set_defaults(func=run_serve)


def _startup_problem(args: argparse.Namespace) -> str | None:
    """What stops the server before anything is loaded: no eval-set directory, or no eval sets in it."""
    from arena.core.dialogs import eval_set_files

    if not args.eval_sets.is_dir():
        return f"--eval-sets: no directory {args.eval_sets}"
    if not eval_set_files(args.eval_sets):
        return f"--eval-sets: no eval-set files (*.jsonl) in {args.eval_sets}"
    return None


def _note_new_database(db: str) -> None:
    """Say so when the SQLite file does not exist yet: a typo in --db would otherwise look like an empty arena."""
    from arena.store import to_url

    url = to_url(db)
    if (
        url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
        and not Path(url.database).exists()
    ):
        print(f"arena: no database at {url.database} yet: creating a new, empty one")


def _serve(config, banner: str = "") -> int:
    """Run the server; bad models, eval-set or database files end it with their message and exit 2."""
    from arena.core.dialogs import EvalSetError
    from arena.store import StoreError
    from arena.web.server import run
    from backends.registry import RegistryError

    try:
        run(config, banner=banner)
    except EvalSetError as exc:
        problems = "\n".join(f"  {problem}" for problem in exc.problems)
        raise UserError(f"{len(exc.problems)} problem(s) in the eval sets; nothing was served:\n{problems}") from None
    except (RegistryError, StoreError) as exc:
        raise UserError(str(exc)) from None
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from arena.store import Store
    from arena.web.server import ServeConfig, ensure_demo_account
    from training.tiny import ensure_tiny_models

    if problem := _startup_problem(args):
        raise UserError(f"{problem}") from None
    print("arena: preparing the tiny demo models (built once, then cached in models/) ...")
    ensure_tiny_models(PROJECT_ROOT / "models", "demo")
    _note_new_database(args.db)
    with Store.open(args.db) as store:
        password = ensure_demo_account(store)
    config = ServeConfig(
        models_config=PROJECT_ROOT / "configs" / "demo.yaml",
        db=args.db,
        eval_sets_dir=args.eval_sets,
        host=args.host,
        port=args.port,
        session_idle_minutes=args.session_idle_minutes,
        allow_origins=tuple(args.allow_origin),
    )
    return _serve(config, banner=f"arena: log in as  user: demo   password: {password}")


def run_serve(args: argparse.Namespace) -> int:
    from arena.web.server import ServeConfig

    if problem := _startup_problem(args):
        raise UserError(f"{problem}") from None
    _note_new_database(args.db)
    return _serve(
        ServeConfig(
            models_config=args.config,
            db=args.db,
            eval_sets_dir=args.eval_sets,
            host=args.host,
            port=args.port,
            session_idle_minutes=args.session_idle_minutes,
            allow_origins=tuple(args.allow_origin),
        )
    )

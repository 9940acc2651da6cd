"""Shared setup for the blind-round tests: models files, rounds with stored answers, the shipped dialogs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from arena import rounds
from arena.core.dialogs import Dialog, eval_set_files, load_dialogs
from arena.store import Store
from backends.registry import Registry, build_registry
from tests.browser import ROOT, free_port


@lru_cache(maxsize=1)
def _shipped() -> tuple[Dialog, ...]:
    return tuple(load_dialogs(eval_set_files(ROOT / "eval_sets")))


def shipped_dialogs() -> list[Dialog]:
    """The project's eval sets (read once per test session)."""
    return list(_shipped())


def server_models_yaml(path: Path, names: list[str], base_url: str | None = None) -> Path:
    """A models file of OpenAI-compatible entries; by default at a port nobody listens on (every request fails)."""
    url = base_url or f"http://127.0.0.1:{free_port()}/v1"
    lines = ["models:"]
    for name in names:
        lines.append(
            f"  - {{name: {name}, kind: openai, base_url: '{url}', timeouts: {{connect: 2, first_token: 10}}}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_models_yaml(
    path: Path, tiny: dict[str, Path], names: dict[str, str], max_tokens: int = 8, extra: str = ""
) -> Path:
    """A models file of the tiny local models under the given names ({name: "polyglot-tiny" | "llama-tiny"})."""
    lines = ["models:"]
    for name, which in names.items():
        template = ", template: koalpaca" if which == "polyglot-tiny" else ""
        lines.append(
            f"  - {{name: {name}, kind: local, path: '{tiny[which]}'{template},"
            f" options: {{max_tokens: {max_tokens}, temperature: 0}}}}"
        )
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def make_round(
    store: Store, registry: Registry, name: str = "r1", *, start: bool = True, **fields
) -> tuple[int, rounds.RoundConfig]:
    """Create (and start) a round over the shipped dialogs; fields override a small default config."""
    defaults = {"eval_sets": ["emotion"], "models": registry.names()[:2], "annotators": ["kim", "lee"]}
    config = rounds.RoundConfig.model_validate({**defaults, **fields})
    rid = rounds.create_round(store, name, config, dialogs=shipped_dialogs(), registry=registry)
    if start:
        rounds.start_round(store, rid, dialogs=shipped_dialogs())
    return rid, config


def store_answers(store: Store, round_id: int, *, failing: set[str] = frozenset(), text: str = "답변") -> None:
    """Store one answer per model and turn of a round, as pre-generation would (failing models get an error)."""
    ids = {m.name: m.id for m in store.list_models()}
    for item in rounds.load_items(store, round_id):
        for model in (item.model_a, item.model_b):
            failed = model in failing
            store.record_generation(
                model_id=ids[model],
                eval_set=item.eval_set,
                dialog_id=item.dialog_id,
                turn_index=item.turn_index,
                round_id=round_id,
                text="" if failed else f"{text} {item.dialog_id} {item.turn_index}",
                error="[connection] refused" if failed else None,
            )


def with_annotators(store: Store, *names: str) -> Store:
    for name in names:
        if store.get_annotator(name) is None:
            store.add_annotator(name, "pw-1234")
    return store


def registry_of(path: Path) -> Registry:
    return build_registry(path)

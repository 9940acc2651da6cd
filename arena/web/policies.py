"""Who may do what: the arena's access rules in one place (the web layer asks; it never decides).

Blind rounds and named modes. Both shipped configs decode greedily, and pre-generation prompts a
round's models exactly as Replay does, so replaying a blind item's turn with both models gave
byte-identical answers under their names (6 of 6 items identified on a live server). Live can build
the same prompt too. So while a round is open (draft or running), the accounts that judge it cannot
use its models in Replay or Live at all; the pickers never list them and the handlers refuse them.
Withholding whole models, not just the round's turns, is deliberate: a turn-level rule is defeated
by a prompt that differs by one space. After the round is closed the models are usable again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arena.store import Store
    from backends.registry import Registry

OPEN_ROUND_STATUSES = ("draft", "running")


def is_researcher(store: Store, username: str | None) -> bool:
    """Whether ``username`` is a researcher account."""
    annotator = store.get_annotator(username) if username else None
    return bool(annotator and annotator.role == "researcher")


def blind_models(store: Store, username: str | None) -> set[str]:
    """Models of the open rounds ``username`` judges: withheld from their named modes."""
    if not username:
        return set()
    out: set[str] = set()
    for found in store.list_rounds():
        config: dict[str, Any] = found.config or {}
        if found.status in OPEN_ROUND_STATUSES and username in config.get("annotators", ()):
            out.update(config.get("models", ()))
    return out


def named_models(registry: Registry, store: Store, username: str | None) -> list[str]:
    """The models ``username`` may pick in Replay and Live, in the registry's order."""
    hidden = blind_models(store, username)
    return [m for m in registry.names() if m not in hidden]

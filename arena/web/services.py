"""What the UI is given: shared services, passed in (never module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arena.annotation.answers import ModelIds
from arena.core.dialogs import Dialog
from arena.core.metrics import Splitter, split_words
from arena.rounds.queue import RoundCache

if TYPE_CHECKING:
    from arena.store import Store
    from backends.registry import Registry


@dataclass
class Services:
    """The store, the model registry, the loaded eval sets and the diff splitter."""

    store: Store
    registry: Registry
    dialogs: list[Dialog]
    splitter: Splitter = split_words
    stall_timeout: float = 60.0
    rounds: RoundCache = field(default_factory=RoundCache)  # blind rounds' items and answers, once final
    by_id: dict[str, Dialog] = field(init=False)
    model_id: ModelIds = field(init=False)  # services.model_id(name): the store id, upserted on first use

    def __post_init__(self) -> None:
        self.by_id = {d.id: d for d in self.dialogs}
        self.model_id = ModelIds(self.store, self.registry)

    def eval_sets(self) -> list[str]:
        """Eval-set names in sorted order."""
        return sorted({d.eval_set for d in self.dialogs})

    def dialogs_of(self, eval_set: str) -> list[Dialog]:
        """The dialogs of one eval set, in file order."""
        return [d for d in self.dialogs if d.eval_set == eval_set]

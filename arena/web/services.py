"""What the UI is given: shared services, passed in (never module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
    _model_ids: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {d.id: d for d in self.dialogs}

    def model_id(self, name: str) -> int:
        """The store id of a configured model, registering it on first use."""
        if name not in self._model_ids:
            spec = self.registry.specs[name]
            self._model_ids[name] = self.store.upsert_model(
                name,
                backend=spec.kind,
                base_model=spec.path or spec.served_model_name or spec.name,
                adapter=spec.adapter,
                config=spec.model_dump(mode="json"),
            )
        return self._model_ids[name]

    def eval_sets(self) -> list[str]:
        """Eval-set names in sorted order."""
        return sorted({d.eval_set for d in self.dialogs})

    def dialogs_of(self, eval_set: str) -> list[Dialog]:
        """The dialogs of one eval set, in file order."""
        return [d for d in self.dialogs if d.eval_set == eval_set]

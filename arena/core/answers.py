"""Where a stored answer was made: one ``Context`` value instead of strings built and parsed in many places.

The store keys answers by their context's text (``replay:<annotator>``, ``live:<annotator>``,
``round:<id>``): replay answers are kept per annotator, so one annotator's regeneration never rewrites
what another has rated; each round keeps its own answers; live answers never count as replay metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["replay", "live", "round"]
KINDS: tuple[Kind, ...] = ("replay", "live", "round")


@dataclass(frozen=True)
class Context:
    """The mode an answer was made in and whose (an annotator's name, or a round's id)."""

    kind: Kind
    owner: str

    @classmethod
    def replay(cls, annotator: str | None) -> Context:
        return cls("replay", annotator or "anonymous")

    @classmethod
    def live(cls, annotator: str | None) -> Context:
        return cls("live", annotator or "anonymous")

    @classmethod
    def round(cls, round_id: int) -> Context:
        return cls("round", str(round_id))

    @classmethod
    def parse(cls, text: str) -> Context:
        """The context stored as ``text``; ValueError for anything else (a bare ``replay`` is the old default)."""
        kind, _, owner = str(text).partition(":")
        if kind not in KINDS:
            raise ValueError(f"not an answer context: {text!r} (expected replay:<name>, live:<name> or round:<id>)")
        return cls(kind, owner)  # type: ignore[arg-type]

    @staticmethod
    def kind_of(text: object) -> str | None:
        """The kind of a stored context text, None when it is none of the three (never raises)."""
        kind = str(text).partition(":")[0]
        return kind if kind in KINDS else None

    def __str__(self) -> str:
        return f"{self.kind}:{self.owner}"

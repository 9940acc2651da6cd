"""A blind round's configuration (the round YAML, validated) and the small parsers the CLI and the Rounds tab share."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arena.store import StoreError
from backends.base import Options

if TYPE_CHECKING:
    pass

SCREEN_CHOICES: tuple[str, ...] = ("left", "right", "tie", "both_bad")


class RoundError(StoreError, ValueError):
    """A round request that cannot be honoured; the message says why, for people."""


class RoundConfig(BaseModel):
    """What a round judges, who judges it and how pairs are drawn; frozen once the round starts."""

    model_config = ConfigDict(extra="forbid")
    eval_sets: list[str] = Field(min_length=1, description="eval-set names whose replay turns are judged")
    dialogs: list[str] = Field(default_factory=list, description="dialog-id patterns (fnmatch); empty = all")
    categories: list[str] = Field(default_factory=list, description="dialog categories to keep; empty = all")
    models: list[str] = Field(min_length=2, description="model entries of the models file (adapters included)")
    pairing: Literal["all", "sampled"] = "all"
    pairs_per_turn: int | None = Field(None, ge=1, description="sampled: pairs drawn for each turn")
    weights: dict[str, float] = Field(default_factory=dict, description="sampled: model weights (default 1)")
    judgements: int = Field(1, ge=1, le=1000, description="independent judgements wanted per item")
    sampling: Literal["uniform", "active"] = Field(
        "uniform",
        description="uniform: least-judged items first; active: the pair whose next vote most narrows the ranking",
    )
    min_pair_votes: int = Field(2, ge=0, le=1000, description="active: votes every model pair gets first")
    annotators: list[str] = Field(min_length=1, description="who may judge this round")
    seed: int = 0
    options: Options = Field(default_factory=Options, description="sampling options for pre-generation")

    @model_validator(mode="after")
    def _consistent(self) -> RoundConfig:
        for what, names in (("model", self.models), ("annotator", self.annotators), ("eval set", self.eval_sets)):
            if dupes := sorted(n for n, c in Counter(names).items() if c > 1):
                raise ValueError(f"{what} listed twice: {', '.join(dupes)}")
        if unknown := sorted(set(self.weights) - set(self.models)):
            raise ValueError(f"weights for models not in the round: {', '.join(unknown)}")
        if any(w <= 0 for w in self.weights.values()):
            raise ValueError("weights must be positive")
        n_pairs = len(self.models) * (len(self.models) - 1) // 2
        if self.pairing == "sampled":
            if self.pairs_per_turn is None:
                raise ValueError("pairing 'sampled' needs pairs_per_turn")
            if self.pairs_per_turn > n_pairs:
                raise ValueError(f"pairs_per_turn {self.pairs_per_turn} exceeds the {n_pairs} possible pairs")
        elif self.pairs_per_turn is not None or self.weights:
            raise ValueError("pairs_per_turn and weights apply to pairing 'sampled' only")
        return self

    def stored(self) -> dict[str, Any]:
        """The JSON form kept in the store (unset sampling options left out)."""
        return {
            **self.model_dump(mode="json", exclude={"options"}),
            "options": self.options.model_dump(exclude_none=True),
        }


def parse_weights(text: str) -> dict[str, float]:
    """``"model-a=2, model-b=0.5"`` -> {"model-a": 2.0, "model-b": 0.5} (CLI and UI input)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.replace("\n", ",").split(","))):
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip():
            raise RoundError(f"weight {part!r} is not MODEL=NUMBER")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise RoundError(f"weight {part!r}: {value!r} is not a number") from None
    return out


def split_list(text: str) -> list[str]:
    """Comma- or newline-separated names, blanks dropped."""
    return [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]

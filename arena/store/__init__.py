"""The ratings store: SQLAlchemy models, engine, migrations and the Store, the only writer of ratings.db."""

from arena.store.engine import DEFAULT_URL, create_engine, to_url
from arena.store.models import WINNER_OF_CHOICE
from arena.store.store import (
    AlreadyExists,
    ItemClosed,
    Judgement,
    NotFound,
    RatingInput,
    RoundGeneration,
    RoundItemInput,
    RoundLocked,
    Store,
    StoreError,
    round_state_error,
    stable_hash,
)

__all__ = [
    "DEFAULT_URL",
    "WINNER_OF_CHOICE",
    "AlreadyExists",
    "ItemClosed",
    "NotFound",
    "Judgement",
    "RatingInput",
    "RoundGeneration",
    "RoundItemInput",
    "RoundLocked",
    "round_state_error",
    "Store",
    "StoreError",
    "create_engine",
    "stable_hash",
    "to_url",
]

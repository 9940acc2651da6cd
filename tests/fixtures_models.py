"""Session fixture: the tiny test-profile models, built once into .cache/tiny-test and reused across runs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_TEST_CACHE = REPO / ".cache" / "tiny-test"


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """{"polyglot-tiny": dir, "llama-tiny": dir}: real transformers models, trained for seconds, offline."""
    from training.tiny import ensure_tiny_models

    return ensure_tiny_models(TINY_TEST_CACHE, "test", progress=False)

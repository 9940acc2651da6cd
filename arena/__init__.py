"""The arena: side-by-side evaluation and human rating of Korean LLMs."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root when running from a checkout (`pip install -e .`); shipped eval sets and configs live there.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

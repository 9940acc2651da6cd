"""Per-answer style counts for style-controlled ratings: length, markdown headers, list items, bold spans.

Length is counted in **characters without whitespace**, not in the answering model's tokens nor in Kiwi
morphemes. Tokens depend on the tokenizer: the same Korean sentence is about 1 token per syllable for a
byte-level English-first vocabulary and 2-3 syllables per token for Polyglot-ko's, so two models giving
the same answer would differ in "length" by their vocabulary alone. Morphemes are tokenizer-free too,
but need Kiwi on every write path (and in the migration that backfills stored answers), and on Korean
text they track characters closely: a Hangul syllable block is one character, and a morpheme is one or
two of them. Whitespace is left out because models differ in spacing (Korean spacing is loose), not in
content. Style control divides differences by sums, so the unit cancels anyway.

Markdown is counted as FastChat's ``count_markdown_elements`` does, after removing fenced code blocks:
ATX headers (``#`` to ``######`` then a space), ordered (``1.``) and unordered (``-``, ``*``, ``+``)
list items at the start of a line, and ``**bold**`` / ``__bold__`` spans on one line.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_CODE_BLOCK = re.compile(r"```[^`]*```")
_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_ORDERED = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
_UNORDERED = re.compile(r"^\s*[-*+]\s", re.MULTILINE)
_BOLD = (re.compile(r"\*\*[^*\n]+\*\*"), re.compile(r"__[^_\n]+__"))
_SPACE = re.compile(r"\s+")

# The feature names of style control, in the order of the stored columns.
STYLE_FEATURES = ("length", "headers", "lists", "bold")


class StyleCounts(NamedTuple):
    """What style control compares between two answers."""

    length: int  # characters, whitespace excluded
    headers: int
    lists: int
    bold: int


def style_counts(text: str | None) -> StyleCounts:
    """Style counts of one answer's text (tool calls are not text and do not count)."""
    text = text or ""
    prose = _CODE_BLOCK.sub("", text)
    return StyleCounts(
        length=len(_SPACE.sub("", text)),
        headers=len(_HEADER.findall(prose)),
        lists=len(_ORDERED.findall(prose)) + len(_UNORDERED.findall(prose)),
        bold=sum(len(p.findall(prose)) for p in _BOLD),
    )

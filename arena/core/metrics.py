"""Automatic per-response metrics: GT diff on words/morphemes, similarity, tool-call match, repetition.

Korean is agglutinative: "코트는" and "코트가" share the noun and differ in the particle, so the
diff works on morphemes (Kiwi) when available and on whitespace words otherwise, never on bytes.
"""

from __future__ import annotations

import difflib
import functools
import html
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from backends.base import ToolCall

_WORD_RE = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)

# An answer this similar to an earlier assistant turn counts as restating it (the seed's topic-transition failure).
REPETITION_THRESHOLD = 0.6


class Splitter(Protocol):
    """Splits text into segments whose concatenation is the original text."""

    def __call__(self, text: str) -> list[str]: ...


def split_words(text: str) -> list[str]:
    """Whitespace words, punctuation and the whitespace itself, so ``"".join`` restores the text."""
    return _WORD_RE.findall(text)


class MorphemeSplitter:
    """Kiwi morpheme segmentation that keeps the original characters (particles split off stems)."""

    def __init__(self) -> None:
        from kiwipiepy import Kiwi  # heavy: loaded once per app, not at import

        self._kiwi = Kiwi()
        # The same texts come back all the time: a GT turn, its references and the earlier turns are split
        # for every annotator's answer to that turn, and one answer is split for its diff, its similarity
        # and its repetition check. Kiwi was the largest single cost of a replay turn under load.
        self._cached = functools.lru_cache(maxsize=2048)(self._segments)  # a few MB: texts are short

    def __call__(self, text: str) -> list[str]:
        return list(self._cached(text))

    def _segments(self, text: str) -> tuple[str, ...]:
        if not text:
            return ()
        cuts = {0, len(text)}
        for token in self._kiwi.tokenize(text):
            cuts.add(token.start)
            cuts.add(token.start + token.len)
        # Whitespace between morphemes becomes its own segment, so join() is lossless.
        for match in re.finditer(r"\s+", text):
            cuts.add(match.start())
            cuts.add(match.end())
        points = sorted(c for c in cuts if 0 <= c <= len(text))
        return tuple(text[a:b] for a, b in zip(points, points[1:]) if b > a)


def default_splitter() -> Splitter:
    """Morphemes when Kiwi is installed, whitespace words otherwise."""
    try:
        return MorphemeSplitter()
    except ImportError:
        return split_words


DiffOp = tuple[Literal["equal", "insert", "delete"], str]


def diff_tokens(gt: str, answer: str, splitter: Splitter = split_words) -> list[DiffOp]:
    """Diff from GT to answer: ``delete`` = in GT only, ``insert`` = in the answer only."""
    a, b = splitter(gt or ""), splitter(answer or "")
    ops: list[DiffOp] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("equal", "".join(a[i1:i2])))
            continue
        if tag in ("delete", "replace"):
            ops.append(("delete", "".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            ops.append(("insert", "".join(b[j1:j2])))
    return ops


def diff_html(ops: list[DiffOp]) -> str:
    """Inline HTML: deletions struck through in red, insertions underlined in green."""
    parts = []
    for tag, text in ops:
        safe = html.escape(text).replace("\n", "<br>")
        if tag == "delete":
            parts.append(f'<del class="arena-del">{safe}</del>')
        elif tag == "insert":
            parts.append(f'<ins class="arena-ins">{safe}</ins>')
        else:
            parts.append(safe)
    return "".join(parts)


def similarity(answer: str, references: list[str], splitter: Splitter = split_words) -> float | None:
    """Best token-level match ratio (0..1) of the answer against any reference; None without references."""
    refs = [r for r in references if r]
    if not refs:
        return None
    b = [t for t in splitter(answer or "") if not t.isspace()]
    best = 0.0
    for ref in refs:
        a = [t for t in splitter(ref) if not t.isspace()]
        best = max(best, difflib.SequenceMatcher(a=a, b=b, autojunk=False).ratio())
    return best


def _normalise_call(call: ToolCall) -> tuple[str, Any]:
    try:
        args = call.parsed_arguments()
    except json.JSONDecodeError:
        args = {"__unparsable__": call.arguments}
    return call.name, args


def tool_call_match(answer_calls: list[ToolCall], gt_calls: list[ToolCall]) -> tuple[bool, bool]:
    """(names match, names and arguments match), ignoring call order; arguments compared as parsed JSON."""
    got = sorted((_normalise_call(c) for c in answer_calls), key=lambda x: (x[0], json.dumps(x[1], sort_keys=True)))
    want = sorted((_normalise_call(c) for c in gt_calls), key=lambda x: (x[0], json.dumps(x[1], sort_keys=True)))
    names_ok = [n for n, _ in got] == [n for n, _ in want]
    return names_ok, names_ok and [a for _, a in got] == [a for _, a in want]


def repetition(answer: str, earlier_assistant_texts: list[str], splitter: Splitter = split_words) -> float:
    """Highest similarity of the answer to any earlier assistant turn (0 when there is none)."""
    if not answer or not earlier_assistant_texts:
        return 0.0
    return similarity(answer, earlier_assistant_texts, splitter) or 0.0


@dataclass
class GenerationMetrics:
    """What is stored with a generation and shown under it."""

    diff: list[DiffOp] = field(default_factory=list)
    similarity: float | None = None
    tool_name_match: bool | None = None
    tool_args_match: bool | None = None
    repetition: float = 0.0
    repeats_earlier_turn: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_answer(
    answer: str,
    answer_calls: list[ToolCall],
    gt_text: str | None,
    gt_calls: list[ToolCall],
    references: list[str],
    earlier_assistant_texts: list[str],
    splitter: Splitter = split_words,
) -> GenerationMetrics:
    """All metrics for one answer against its GT turn."""
    metrics = GenerationMetrics()
    if gt_text:
        metrics.diff = diff_tokens(gt_text, answer, splitter)
    metrics.similarity = similarity(answer, ([gt_text] if gt_text else []) + references, splitter)
    if gt_calls:
        metrics.tool_name_match, metrics.tool_args_match = tool_call_match(answer_calls, gt_calls)
    metrics.repetition = repetition(answer, earlier_assistant_texts, splitter)
    metrics.repeats_earlier_turn = metrics.repetition >= REPETITION_THRESHOLD
    return metrics


def score_step(
    dialog: Any, turn_index: int, answer: str, answer_calls: list[ToolCall], splitter: Splitter = split_words
) -> GenerationMetrics:
    """Metrics for a replay answer to assistant turn ``turn_index`` of ``dialog`` (an arena Dialog)."""
    gt = dialog.turns[turn_index]
    gt_calls = gt.calls()
    earlier = [t.content for t in dialog.turns[:turn_index] if t.role == "assistant" and t.content]
    return score_answer(
        answer, answer_calls, gt.content, gt_calls, dialog.references.get(str(turn_index), []), earlier, splitter
    )

"""Shared helpers for the seed converters: seed loading, markdown clean-up, tolerant parsing, dialog building.

The seeds are exported documents (PDF/Notion to Markdown): hard-wrapped lines, markdown escapes, JSON split
across code blocks. Helpers here undo those export artefacts; anything that needs judgement lives in the
per-seed modules as an explicit, commented table keyed by seed line or snippet.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.core.dialogs import Dialog


@dataclass(frozen=True)
class Seed:
    """One seed document, addressed by 1-based line numbers as an editor shows them."""

    path: Path
    lines: tuple[str, ...]

    @property
    def name(self) -> str:
        """The file name recorded as provenance in ``meta.source``."""
        return self.path.name

    def line(self, number: int) -> str:
        """The text of line ``number`` (1-based)."""
        return self.lines[number - 1]

    def find(self, pattern: str, start: int = 1, end: int | None = None) -> int:
        """The number of the first line at or after ``start`` matching ``pattern`` (a regex); raises if absent."""
        rx = re.compile(pattern)
        stop = len(self.lines) if end is None else end
        for number in range(start, stop + 1):
            if rx.search(self.lines[number - 1]):
                return number
        raise SeedFormatError(f"{self.name}: no line matching {pattern!r} in lines {start}..{stop}")

    def span(self, start: int, end: int) -> list[tuple[int, str]]:
        """Numbered lines ``start``..``end`` inclusive."""
        return [(n, self.lines[n - 1]) for n in range(start, end + 1)]


class SeedFormatError(ValueError):
    """The seed no longer looks the way a converter expects (so its repair tables may be stale)."""


def load_seed(seeds_dir: str | Path, prefix: str) -> Seed:
    """Load the single seed whose file name starts with ``prefix`` (e.g. ``"000_"``)."""
    matches = sorted(Path(seeds_dir).glob(f"{prefix}*.txt"))
    if len(matches) != 1:
        raise SeedFormatError(f"expected one seed {prefix}*.txt in {seeds_dir}, found {len(matches)}")
    text = matches[0].read_text(encoding="utf-8")
    return Seed(matches[0], tuple(text.split("\n")))


# --- markdown export artefacts -------------------------------------------------------------------------

_AUTOLINK = re.compile(r"\[(https?://[^\]\s]*)\]\((https?://[^)\s]*)\)")


def fix_autolinks(text: str) -> str:
    """Turn ``[URL](URL)`` (the exporter's rendering of a bare URL) back into the URL."""

    def repl(m: re.Match[str]) -> str:
        label = m.group(1).replace("\\", "")
        return m.group(2) if label == m.group(2) else m.group(0)

    return _AUTOLINK.sub(repl, text)


def md_unescape(text: str) -> str:
    """Undo the exporter's markdown escapes (``\\_``, ``\\*``) and auto-linked URLs."""
    text = fix_autolinks(text)
    return re.sub(r"\\+([_*])", r"\1", text)


def is_wrapped(line: str) -> bool:
    """A line the exporter hard-wrapped: markdown's two-space line break at the end."""
    return line.endswith("  ") and bool(line.strip())


def unwrap(lines: Iterable[tuple[int, str]], spaced: Iterable[int] = ()) -> str:
    """Join hard-wrapped lines. The wrap fell mid-word unless the line's number is in ``spaced``.

    Korean text gives no reliable cue whether a wrap ate a space, so callers list the word-boundary wraps.
    Lines that are not hard-wrapped keep their newline.
    """
    spaced = set(spaced)
    out = ""
    pending: str | None = None  # joiner owed to the next line
    for number, text in lines:
        if pending is not None:
            out += pending + text.lstrip()
        else:
            out += ("\n" if out else "") + text
        if is_wrapped(text):
            out = out.rstrip(" ")
            pending = " " if number in spaced else ""
        else:
            pending = None
            out = out.rstrip(" ")
    return out


# --- tolerant literal parsing --------------------------------------------------------------------------


def loads_lenient(text: str) -> Any:
    """Parse JSON, then a Python literal (the seeds mix both); raise ValueError if neither works."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"not JSON or a Python literal: {text[:60]!r}") from exc


def scan_json_objects(text: str) -> list[Any]:
    """Every top-level JSON object that decodes cleanly in ``text``, skipping junk between them."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    i = 0
    while (i := text.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        found.append(obj)
        i = end
    return found


@dataclass(frozen=True)
class Lit:
    """A string value read from a possibly cut JSON line; ``closed`` is False when the seed cut it off."""

    text: str
    closed: bool


def read_string(raw: str) -> Lit:
    """Read the JSON string literal that starts ``raw`` (after a key's colon), tolerating a cut-off end."""
    raw = raw.strip()
    if not raw.startswith('"'):
        raise ValueError(f"not a string literal: {raw[:40]!r}")
    try:
        value, _ = json.JSONDecoder().raw_decode(raw)
        return Lit(value, True)
    except json.JSONDecodeError:
        pass
    body = raw[1:].rstrip().rstrip(",").rstrip()
    # A cut line may end inside an escape; drop the dangling backslash before decoding what is there.
    for candidate in (body, body.rstrip("\\"), body.rstrip('\\"')):
        try:
            return Lit(json.loads(f'"{candidate}"'), False)
        except json.JSONDecodeError:
            continue
    return Lit(body.replace('\\"', '"'), False)


_QUERY = re.compile(r"""text_query\\*["']?\s*:\s*\\*["']((?:[^"'\\]|\\[^"'])*)(\\*["'])?""")


def text_query_of(raw: str) -> Lit:
    """The ``text_query`` value in a (possibly cut or double-escaped) arguments string."""
    m = _QUERY.search(raw)
    if not m:
        raise ValueError(f"no text_query in {raw[:60]!r}")
    value = m.group(1)
    closed = m.group(2) is not None
    if not closed:
        value = re.sub(r"\s*\.+$", "", value)  # the seed marks a cut with a dangling " ." or "..."
    return Lit(value.strip() if not closed else value, closed)


def resolve_name(name: str, known: Iterable[str]) -> str:
    """The one known tool name that ``name`` (possibly cut off by the seed) is a prefix of."""
    candidates = [k for k in known if k.startswith(name)]
    if len(candidates) != 1:
        raise SeedFormatError(f"tool name {name!r} matches {candidates}")
    return candidates[0]


def dump_args(args: dict[str, Any]) -> str:
    """Tool-call arguments in the OpenAI wire form (a JSON string), Korean kept readable."""
    return json.dumps(args, ensure_ascii=False)


def function_tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An OpenAI ``tools`` entry."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


# --- building dialogs ----------------------------------------------------------------------------------


@dataclass
class DialogBuilder:
    """Accumulates one dialog's turns and provenance; ``build()`` validates it against the schema."""

    id: str
    eval_set: str
    category: str | None
    source: str
    line: int
    system: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    turn_lines: list[int] = field(default_factory=list)
    references: dict[str, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    truncated_turns: list[int] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    def add(self, turn: dict[str, Any], line: int, truncated: bool = False) -> int:
        """Append a turn read from seed line ``line``; returns its index."""
        self.turns.append(turn)
        self.turn_lines.append(line)
        index = len(self.turns) - 1
        if truncated:
            self.truncated_turns.append(index)
        return index

    def user(self, text: str, line: int, truncated: bool = False) -> int:
        """Append a user turn."""
        return self.add({"role": "user", "content": text}, line, truncated)

    def assistant(self, text: str, line: int, truncated: bool = False) -> int:
        """Append a GT assistant text turn."""
        return self.add({"role": "assistant", "content": text}, line, truncated)

    def calls(self, calls: list[tuple[str, str, str | None]], line: int, truncated: bool = False) -> int:
        """Append a GT assistant tool-call turn from ``(name, arguments_json, call_id)`` triples."""
        index = len(self.turns)
        tool_calls = []
        for k, (name, arguments, call_id) in enumerate(calls):
            # The narrative seeds give no call ids; OpenAI-compatible servers need them to pair tool results.
            tool_calls.append(
                {
                    "id": call_id or f"call_{index}_{k}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        return self.add({"role": "assistant", "tool_calls": tool_calls}, line, truncated)

    def tool(self, content: str, line: int, truncated: bool = False) -> int:
        """Append the scripted tool result for the next unanswered call of the last tool-call turn."""
        owner = next(t for t in reversed(self.turns) if t.get("tool_calls"))
        answered = 0
        for t in reversed(self.turns):
            if t is owner:
                break
            answered += t["role"] == "tool"
        call = owner["tool_calls"][answered]
        turn = {"role": "tool", "tool_call_id": call["id"], "name": call["function"]["name"], "content": content}
        return self.add(turn, line, truncated)

    def model_answer(self, index: int, label: str, answer: Any) -> None:
        """Record what a tested model answered at turn ``index`` (not GT; kept for comparison)."""
        self.meta.setdefault("model_answers", {}).setdefault(str(index), {})[label] = answer

    def build(self) -> dict[str, Any]:
        """The dialog as a JSON-ready dict (stable key order), validated against :class:`Dialog`."""
        out: dict[str, Any] = {"id": self.id, "eval_set": self.eval_set}
        if self.category:
            out["category"] = self.category
        if self.system:
            out["system"] = self.system
        if self.tools:
            out["tools"] = self.tools
        out["turns"] = self.turns
        if self.references:
            out["references"] = self.references
        meta: dict[str, Any] = {"source": self.source, "line": self.line, "turn_lines": self.turn_lines}
        if self.truncated_turns:
            meta["truncated"] = True
            meta["truncated_turns"] = sorted(set(self.truncated_turns))
        if self.turns and self.turns[-1]["role"] != "assistant":
            # No GT for the last prompt in the seed: replay has nothing to diff; raters judge it.
            meta["open_final_turn"] = True
        if self.repairs:
            meta["repairs"] = self.repairs
        meta.update(self.meta)
        out["meta"] = meta
        Dialog.model_validate(out)
        return out


def write_jsonl(path: Path, dialogs: list[dict[str, Any]]) -> None:
    """Write one dialog per line, UTF-8, Korean unescaped, ``\\n`` line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for dialog in dialogs:
            # U+2028/2029 are line breaks to some JSONL readers (str.splitlines); keep them escaped.
            line = json.dumps(dialog, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
            fh.write(line + "\n")

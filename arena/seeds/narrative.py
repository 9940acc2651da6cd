"""Reading the unlabelled chat transcripts of seed 000: turns separated by blank lines, no role markers.

The export puts three blank lines between turns and one between the parts of a turn (a tool call and its
result, a model answer and its ``GT)`` line). A markdown answer whose rendering the exporter broke apart
shows up as paragraphs that begin with a literal ``\\n`` or a ``:``; those continue the previous turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from arena.seeds.common import (
    DialogBuilder,
    Lit,
    Seed,
    SeedFormatError,
    dump_args,
    loads_lenient,
    md_unescape,
    resolve_name,
    text_query_of,
    unwrap,
)

Kind = Literal["text", "call", "response", "gt"]

DOC_KEYS = ("title", "text", "image_url", "image_tag")
_GT_LINE = re.compile(r"^GT[):]\s*")


@dataclass
class Para:
    """A run of non-blank lines (or one fenced code block) and the blank lines before it."""

    lines: list[tuple[int, str]]
    gap: int
    fenced: bool

    @property
    def first(self) -> int:
        """The seed line the paragraph starts on."""
        return self.lines[0][0]

    @property
    def raw(self) -> str:
        """The paragraph's lines as printed."""
        return "\n".join(text for _, text in self.lines)


@dataclass
class Unit:
    """One turn's worth of paragraphs, classified."""

    kind: Kind
    paras: list[Para] = field(default_factory=list)
    fragmented: bool = False

    @property
    def first(self) -> int:
        """The seed line the turn starts on."""
        return self.paras[0].first

    def raw(self, spaced: Iterable[int] = ()) -> str:
        """The turn's lines with hard wraps undone, escapes left alone (for parsers)."""
        spaced = set(spaced)
        return "\n".join(unwrap(p.lines, spaced) for p in self.paras)

    def text(self, spaced: Iterable[int] = ()) -> str:
        """The turn's text with hard wraps undone and export escapes removed."""
        spaced = set(spaced)
        parts = [unwrap(p.lines, spaced) for p in self.paras]
        if self.kind == "gt":
            parts = [_GT_LINE.sub("", parts[0])] + parts[1:]
        # A broken-apart markdown answer carries its real line breaks as literal "\n" escapes.
        joined = ("" if self.fragmented else "\n\n").join(parts)
        return md_unescape(joined).replace("\\n", "\n").strip()


def paragraphs(seed: Seed, start: int, end: int) -> list[Para]:
    """Paragraphs of lines ``start``..``end``; headings separate, fences group, GT lines split off."""
    out: list[Para] = []
    gap = 0
    current: list[tuple[int, str]] = []
    fence: list[tuple[int, str]] | None = None

    def flush() -> None:
        nonlocal current, gap
        if current:
            out.append(Para(current, gap, False))
            gap = 0
        current = []

    for number, text in seed.span(start, end):
        stripped = text.strip()
        if fence is not None:
            if stripped.startswith("```"):
                if any(t.strip() for _, t in fence):
                    out.append(Para([(n, t) for n, t in fence if t.strip()], gap, True))
                    gap = 0
                fence = None
            else:
                fence.append((number, text))
            continue
        if stripped.startswith("```"):
            flush()
            fence = []
        elif not stripped:
            flush()
            gap += 1
        elif stripped.startswith("#"):
            flush()
            gap = 3  # a heading always ends a turn
        elif _GT_LINE.match(stripped):
            flush()
            current = [(number, stripped)]
        else:
            current.append((number, text))
    flush()
    return out


def classify(para: Para) -> Kind:
    """What a paragraph holds, from its text alone."""
    raw = para.raw.strip()
    if _GT_LINE.match(raw):
        return "gt"
    if raw[:1] in ("←", "↩"):
        return "response"
    if "arguments" in raw:
        return "call"
    if "returns" in raw or re.search(r"""["'](title|image\\?_url)\\?["']\s*:""", raw):
        return "response"
    return "text"


def units(paras: list[Para]) -> list[Unit]:
    """Group paragraphs into turns."""
    out: list[Unit] = []
    for para in paras:
        if all(text.lstrip().startswith("- ") for _, text in para.lines):
            continue  # the author's notes (model settings, findings), not a turn
        kind = classify(para)
        prev = out[-1] if out else None
        if kind == "text" and prev is not None and prev.kind in ("text", "gt"):
            head = para.raw.lstrip()
            if head.startswith("\\n") or head.startswith(":"):
                prev.paras.append(para)
                prev.fragmented = True
                continue
            if para.gap < 3:
                prev.paras.append(para)
                continue
        out.append(Unit(kind, [para]))
    return out


def _doc_list(obj: Any) -> list[dict[str, Any]]:
    items = obj if isinstance(obj, list) else [obj]
    docs: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, list):
            docs.extend(_doc_list(item))
        elif isinstance(item, dict) and "returns" in item:
            docs.extend(_doc_list(item["returns"]))
        elif isinstance(item, dict):
            docs.append({k: item[k] for k in DOC_KEYS if k in item})
    return [d for d in docs if d]


_DOC_FIELD = re.compile(r"""["'](title|text|image_url|image_tag)["']\s*:\s*["']((?:[^"'\\]|\\.)*)["']""")


def parse_response(raw: str) -> tuple[list[dict[str, Any]], bool]:
    """The retrieved documents in a tool-result block, and whether it had to be read leniently."""
    text = md_unescape(raw).strip().lstrip("←↩").strip()
    if text.startswith("{\\n") or text.startswith('{\\"'):
        # Printed from a JSON string: the escapes are literal characters here.
        text = text.replace("\\n", "\n").replace('\\"', '"')
    try:
        return _doc_list(loads_lenient(text)), False
    except ValueError:
        pass
    try:
        obj, _ = json.JSONDecoder().raw_decode(text)  # a valid head with stray closers after it
        return _doc_list(obj), True
    except json.JSONDecodeError:
        pass
    docs: list[dict[str, Any]] = []
    for key, value in _DOC_FIELD.findall(text):
        if not docs or key in docs[-1]:
            docs.append({})
        docs[-1][key] = value
    if not docs:
        raise ValueError(f"no documents in tool result {raw[:60]!r}")
    return docs, True


def _arguments(value: Any) -> tuple[dict[str, Any], bool]:
    if isinstance(value, dict):
        return value, False
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0], True  # exported as a one-element list
    if isinstance(value, str):
        for candidate in (value, value.replace('\\"', '"')):
            try:
                parsed = json.loads(candidate)
            except json.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                return parsed, candidate is not value
        q = text_query_of(value)
        return {"text_query": q.text}, True
    raise ValueError(f"unreadable arguments {value!r}")


_CALL_NAME = re.compile(r"\b(retrieve_fashion_\w+|get_[a-z_]+|google_image_search)\b")


def parse_call(raw: str) -> tuple[list[tuple[str, dict[str, Any], bool]], bool]:
    """``[(name, arguments, closed)]`` from a tool-call block, and whether it was read leniently."""
    text = md_unescape(raw).strip()
    try:
        obj = loads_lenient(text)
    except ValueError:
        obj = None
    if obj is not None:
        calls = []
        lenient = False
        for item in obj if isinstance(obj, list) else [obj]:
            args, loose = _arguments(item["arguments"])
            lenient |= loose
            calls.append((item["name"], args, True))
        return calls, lenient
    # Broken beyond a parser (missing braces or a cut-off head): take the name and the one query it carries.
    name = _CALL_NAME.search(text)
    if not name:
        raise ValueError(f"no tool name in {raw[:60]!r}")
    q: Lit = text_query_of(text)
    return [(name.group(1), {"text_query": q.text}, q.closed)], True


# Export damage to markdown answers that the exporter rendered and broke apart (seed 000, lines 243-284 and
# 406-445): the image line between intro and list was dropped, leaving a run of blank lines, and a list
# dash lost the space before its bold label.
_MARKDOWN_REPAIRS = [
    (re.compile(r"\n{3,}"), "\n\n", "collapsed the blank run left where the export dropped an image line"),
    (re.compile(r"(^|\n)-\*\*"), r"\1- **", "restored the space after a list dash ('-**' -> '- **')"),
    (re.compile(r"(^|\n)- \*([^*\n]+)\*:"), r"\1- **\2**:", "restored a bold list label the export unbolded"),
]


def repair_markdown(text: str, line: int, repairs: list[str]) -> str:
    """Apply the markdown repairs above to one broken-apart answer, noting each that changed something."""
    for rx, replacement, note in _MARKDOWN_REPAIRS:
        fixed = rx.sub(replacement, text)
        if fixed != text:
            repairs.append(f"line {line}: {note}")
            text = fixed
    return text


def build_turns(
    builder: DialogBuilder, found: list[Unit], label: str, tools: list[str], spaced: Iterable[int] = ()
) -> None:
    """Turn transcript units into turns; a ``GT)`` line replaces the model answer before it (kept in meta)."""
    spaced = set(spaced)
    for unit in found:
        if unit.kind == "text":
            after_assistant = not builder.turns or builder.turns[-1]["role"] == "assistant"
            text = unit.text(spaced)
            if unit.fragmented:
                text = repair_markdown(text, unit.first, builder.repairs)
            if after_assistant:
                builder.user(text, unit.first)
            else:
                builder.assistant(text, unit.first)
        elif unit.kind == "call":
            calls, lenient = parse_call(unit.raw(spaced))
            if lenient:
                builder.repairs.append(f"line {unit.first}: malformed tool call read leniently")
            resolved = [(resolve_name(name, tools), dump_args(args), None) for name, args, _ in calls]
            builder.calls(resolved, unit.first, truncated=not all(closed for *_, closed in calls))
        elif unit.kind == "response":
            docs, lenient = parse_response(unit.raw(spaced))
            if lenient:
                builder.repairs.append(f"line {unit.first}: malformed tool result read leniently")
            builder.tool(json.dumps(docs, ensure_ascii=False), unit.first)
        else:  # a GT line: the reference the model's answer above it should have matched
            index = len(builder.turns) - 1
            replaced = builder.turns[index]
            if replaced["role"] != "assistant":
                raise SeedFormatError(f"{builder.source}:{unit.first}: GT line does not follow a model answer")
            builder.model_answer(index, label, model_answer_of(replaced))
            builder.turns[index] = {"role": "assistant", "content": unit.text(spaced)}
            builder.turn_lines[index] = unit.first


def model_answer_of(turn: dict[str, Any]) -> Any:
    """A compact record of an assistant turn for ``meta.model_answers``."""
    if turn.get("tool_calls"):
        return {
            "tool_calls": [
                {"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in turn["tool_calls"]
            ]
        }
    return turn["content"]

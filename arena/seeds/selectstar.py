"""The "▼ SelectStar data" dumps of seed 000 (v0.56 and v0.58 test runs): GT turns plus each model's answer.

Each dump is a JSON list of ``{prev_utter, gt, cur_utter}`` items, but the export split it across code blocks,
cut long lines (strings lose their closing quote), doubled some backslashes and escaped one stretch of
quotes. It cannot be parsed as JSON, so it is read line by line: a key starts a field, and each string value
is read as far as the seed shows it (:class:`~arena.seeds.common.Lit` says whether it was cut).

Both runs replay the same two SelectStar dialogs, so the dumps are aligned item by item and merged: for each
field the most complete reading wins, and each model's answer goes to ``meta.model_answers``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from arena.seeds.common import (
    DialogBuilder,
    Lit,
    Seed,
    SeedFormatError,
    dump_args,
    read_string,
    resolve_name,
    text_query_of,
)
from arena.seeds.narrative import parse_response

_KEY = re.compile(r'^\s*"(\w+)"\s*:\s*(.*)$')
_FIELDS = {"role", "content", "name", "arguments", "id", "tool_call_id"}

# Values the seed's author shortened while keeping them well-formed, so nothing marks them as cut.
CUT_IN_SEED = (
    "코트(Coat)는 옛 유럽식 정장인 프록 코트에서 유래된 의복",  # GT ends mid-sentence (no predicate)
    '"옛 유럽식 정장"',  # tool result: the 코트 document's text, first words only
    "겨울이라 그런지 아침 저녁으로 날이 쌀쌀해서, 따뜻한 아우",  # user turn ends mid-word (아우터)
    "! [브라운",  # GT ends inside an image's markdown
    '"https://storage.googleapis.com/"',  # tool results: image URLs cut after the host
    '"https://storage.googleapis.com"',
)

# Cut user turns whose full text the seed shows elsewhere (same dialog, narrative transcript): prefix -> line.
COMPLETE_FROM_LINE = {
    "그렇구나. 알려줘서 고마워. 겨울에 입을 만한 코트가 필요": 201,
}

DIALOG_IDS = ("fashion-selectstar-coat", "fashion-selectstar-acne")


@dataclass
class Item:
    """One ``{prev_utter, gt, cur_utter}`` entry: per section, each field's values in seed order."""

    line: int
    gt_line: int = 0
    sections: dict[str, dict[str, list[Lit | None]]] = field(default_factory=dict)
    prompt_tokens: int | None = None

    def get(self, section: str, key: str) -> list[Lit | None]:
        """Every value of ``key`` read in ``section``."""
        return self.sections.get(section, {}).get(key, [])

    def first(self, section: str, key: str) -> Lit | None:
        """The first value of ``key`` in ``section`` (None when absent or null)."""
        return self.nth(section, key, 0)

    def nth(self, section: str, key: str, k: int) -> Lit | None:
        """The ``k``-th value of ``key`` in ``section`` (None when absent or null)."""
        values = self.get(section, key)
        return values[k] if len(values) > k else None


def _normalize(line: str) -> str:
    if line.lstrip().startswith('\\"'):
        # One stretch of the v0.58 dump was exported as an escaped string: undo one level of escaping.
        return line.replace("\\\\", "\\").replace('\\"', '"')
    # Elsewhere the exporter doubled the backslash of escaped quotes inside values.
    return line.replace('\\\\"', '\\"')


def read_dump(seed: Seed, start: int, end: int) -> list[Item]:
    """The items of the dump between lines ``start`` and ``end``."""
    items: list[Item] = []
    section = ""
    for number, raw in seed.span(start, end):
        m = _KEY.match(_normalize(raw))
        if not m:
            continue
        key, rest = m.group(1), m.group(2).strip()
        if key == "prev_utter":
            items.append(Item(number))
            section = "prev"
        elif key in ("gt", "cur_utter") and items:
            section = "gt" if key == "gt" else "cur"
            if key == "gt":
                items[-1].gt_line = number
        elif not items:
            continue
        elif key == "prompt_tokens":
            items[-1].prompt_tokens = int(re.match(r"\d+", rest).group())
        elif key in _FIELDS:
            value = None if rest.startswith("null") else read_string(rest)
            items[-1].sections.setdefault(section, {}).setdefault(key, []).append(value)
    return items


def best(variants: list[Lit | None]) -> Lit | None:
    """The most complete reading: a longer text extending a shorter one wins, then a closed string."""
    found = [v for v in variants if v is not None]
    if not found:
        return None
    choice = found[0]
    for v in found[1:]:
        if v.text.startswith(choice.text) and (len(v.text) > len(choice.text) or (v.closed and not choice.closed)):
            choice = v
        elif not choice.text.startswith(v.text) and v.closed and not choice.closed:
            choice = v
    return choice


def best_arguments(variants: list[Lit | None]) -> tuple[dict[str, Any], bool]:
    """The arguments object and whether it is complete; a cut query keeps what the seed shows."""
    queries: list[Lit | None] = []
    for v in variants:
        if v is None:
            continue
        if v.closed:
            try:
                parsed = json.loads(v.text)
                if isinstance(parsed, dict):
                    return parsed, True
            except json.JSONDecodeError:
                pass
        queries.append(text_query_of(v.text))
    q = best(queries)
    if q is None:
        raise SeedFormatError("tool call without arguments")
    return {"text_query": q.text}, q.closed


def _json_or_none(lit: Lit | None) -> Any:
    try:
        return json.loads(lit.text) if lit is not None and lit.closed else None
    except json.JSONDecodeError:
        return None


def _cut(text: str) -> bool:
    return any(snippet in text for snippet in CUT_IN_SEED)


def _model_answer(item: Item) -> Any:
    names = [v.text for v in item.get("cur", "name") if v is not None]
    if names:
        args = [v.text if v else None for v in item.get("cur", "arguments")]
        return {"tool_calls": [{"name": n, "arguments": a} for n, a in zip(names, args)]}
    contents = [v for v in item.get("cur", "content") if v is not None]
    return contents[0].text if contents else None


def _user_text(seed: Seed, lit: Lit, builder: DialogBuilder) -> tuple[str, bool]:
    for prefix, line in COMPLETE_FROM_LINE.items():
        if lit.text == prefix:
            full = seed.line(line).strip()
            if not full.startswith(prefix):
                raise SeedFormatError(f"{seed.name}:{line} no longer completes {prefix!r}")
            builder.repairs.append(f"cut user turn {prefix!r} completed from line {line}")
            return full, False
    return lit.text, (not lit.closed) or _cut(lit.text)


def _add_item(seed: Seed, b: DialogBuilder, runs: list[tuple[str, Item]], tools: list[str]) -> None:
    items = [item for _, item in runs]
    line = items[0].line
    role = best([i.first("prev", "role") for i in items])
    content = best([i.first("prev", "content") for i in items])
    if role is None or content is None:
        raise SeedFormatError(f"{seed.name}:{line}: item without prev_utter role/content")
    if role.text == "user":
        text, cut = _user_text(seed, content, b)
        b.user(text, line, truncated=cut)
    elif role.text == "tool":
        docs, lenient = parse_response(content.text)
        if lenient:
            b.repairs.append(f"line {line}: cut tool result JSON closed")
        index = b.tool(json.dumps(docs, ensure_ascii=False), line, truncated=(not content.closed) or _cut(content.text))
        seed_id = best([i.first("prev", "tool_call_id") for i in items])
        if seed_id is not None and seed_id.text != b.turns[index]["tool_call_id"]:
            b.repairs.append(
                f"line {line}: tool_call_id {seed_id.text!r} linked to its call {b.turns[index]['tool_call_id']!r}"
            )
    else:
        raise SeedFormatError(f"{seed.name}:{line}: unexpected prev_utter role {role.text!r}")

    gt_line = items[0].gt_line
    n_calls = max(len(i.get("gt", "name")) for i in items)
    if n_calls:
        calls = []
        cut = False
        for k in range(n_calls):
            name = best([i.nth("gt", "name", k) for i in items])
            variants = [i.nth("gt", "arguments", k) for i in items]
            args, complete = best_arguments(variants)
            if dump_args(args) not in [json.dumps(_json_or_none(v), ensure_ascii=False) for v in variants]:
                b.repairs.append(f"line {gt_line}: cut tool-call arguments rebuilt as {dump_args(args)}")
            call_id = best([i.nth("gt", "id", k) for i in items])
            if name is None:
                raise SeedFormatError(f"{seed.name}:{gt_line}: GT tool call without a name")
            cut |= not complete
            calls.append((resolve_name(name.text, tools), dump_args(args), call_id.text if call_id else None))
        index = b.calls(calls, gt_line, truncated=cut)
    else:
        gt = best([i.first("gt", "content") for i in items])
        if gt is None:
            raise SeedFormatError(f"{seed.name}:{line}: item without a GT answer")
        index = b.assistant(gt.text, gt_line, truncated=(not gt.closed) or _cut(gt.text))
    for label, item in runs:
        answer = _model_answer(item)
        if answer is not None:
            b.model_answer(index, label, answer)


def split_dialogs(items: list[Item]) -> list[list[int]]:
    """Item indices per dialog: a new dialog starts where the prompt shrinks (``prompt_tokens`` drops)."""
    groups: list[list[int]] = [[]]
    last = 0
    for k, item in enumerate(items):
        if item.prompt_tokens is not None and item.prompt_tokens < last and groups[-1]:
            groups.append([])
        groups[-1].append(k)
        last = item.prompt_tokens if item.prompt_tokens is not None else last
    return groups


def selectstar_dialogs(seed: Seed, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SelectStar GT dialogs, merged from the v0.56 and v0.58 dumps."""
    v56_start = seed.find(r"^### ▼ SelectStar [Dd]ata")
    v56_end = seed.find(r"^## Parallel call test", v56_start)
    v58_start = seed.find(r"^### ▼ SelectStar [Dd]ata", v56_end)
    v58_end = seed.find(r"^## Single call query", v58_start)
    runs = {
        "llama3.1-8b-v0.56": read_dump(seed, v56_start, v56_end),
        "llama3.1-8b-v0.58": read_dump(seed, v58_start, v58_end),
    }
    counts = {label: len(items) for label, items in runs.items()}
    if len(set(counts.values())) != 1:
        raise SeedFormatError(f"{seed.name}: the SelectStar dumps no longer align: {counts}")
    first = next(iter(runs.values()))
    for k, item in enumerate(first):
        for label, items in runs.items():
            a, b = item.first("prev", "content"), items[k].first("prev", "content")
            if a and b and not (a.text[:8] == b.text[:8]):
                raise SeedFormatError(
                    f"{seed.name}:{items[k].line}: {label} item {k} is not item {k} of the other dump"
                )
    # prompt_tokens is cut from some items of one dump; either dump's value marks the dialog boundary.
    for k, item in enumerate(first):
        if item.prompt_tokens is None:
            item.prompt_tokens = next(
                (items[k].prompt_tokens for items in runs.values() if items[k].prompt_tokens), None
            )
    groups = split_dialogs(first)
    if len(groups) != len(DIALOG_IDS):
        raise SeedFormatError(f"{seed.name}: expected {len(DIALOG_IDS)} SelectStar dialogs, found {len(groups)}")
    names = [t["function"]["name"] for t in tools]
    out = []
    for dialog_id, group in zip(DIALOG_IDS, groups):
        b = DialogBuilder(dialog_id, "selectstar_fashion", "tool_use", seed.name, first[group[0]].line, tools=tools)
        for k in group:
            _add_item(seed, b, [(label, items[k]) for label, items in runs.items()], names)
        b.meta["gt_source"] = "the gt field of the SelectStar dumps (v0.56 and v0.58 runs, merged)"
        b.meta["dump_lines"] = {label: items[group[0]].line for label, items in runs.items()}
        out.append(b.build())
    return out

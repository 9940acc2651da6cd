"""``tool_calls``: the tool-selection tests of seed 000.

* the weather single/parallel call tests of the v0.56 and v0.58 runs (GT = the tool calls the seed shows
  the model making, which it reports as correct); a test run in both versions becomes one dialog;
* the v0.41 no-tool checks (Dialog 1/2: no tools are offered, so no call is the right answer);
* the v0.51 ``google_image_search`` failure case (the answer after the tool result is the open turn).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from arena.seeds.common import (
    DialogBuilder,
    Lit,
    Seed,
    SeedFormatError,
    dump_args,
    function_tool,
    loads_lenient,
    read_string,
    resolve_name,
    scan_json_objects,
)
from arena.seeds.narrative import build_turns, model_answer_of, paragraphs, units
from arena.seeds.selectstar import best

EVAL_SET = "tool_calls"

# The system prompt is cut to "You are a weather bot. Use the provi" in five of the six tests; the v0.56
# single-call test (this line) shows it whole.
WEATHER_SYSTEM_LINE = 1574

# Parallel calls are printed by pprint and then cut at the page edge, leaving only each piece's first
# characters. Rebuilt arguments, keyed by the seed line of the "'arguments':" piece; each is checked
# against the surviving fragments (in order) before use.
CUT_ARGUMENTS = {
    1621: '{"location": "New York, NY", "unit": "Fahrenheit"}',  # '{"l '"Ne 'Yor 'NY" '"un '"Fa
    1630: '{"location": "New York, NY"}',  # '{"l '"Ne 'Yor 'NY"
    1663: '{"location": "New York, NY"}',  # '{ "l '"Ne 'Yor 'NY"
    1670: '{"location": "Seoul, South Korea"}',  # '{ "l '"Se 'Sou 'Kor
    2631: '{"location": "New York, NY"}',
    2667: '{"location": "New York, NY", "unit": "Fahrenheit"}',  # '{\"1 (OCR: l) \"Ne \"Yor \"NY\" \"un \"Fa
    2676: '{"location": "New York, NY"}',
    2707: '{"location": "New York, NY"}',
    2714: '{"location": "Seoul, South Korea"}',
}

# The v0.51 failure case (lines 548-568) is a Python list cut at the page edge without wrap marks.
# Lines after which the cut fell on a space; every other cut fell inside a token (ids, URLs, words).
KARINA_SPACED = {548, 549, 550, 551, 552, 554, 558, 567}
# The tool message's content string lost its closing quote (a "}" stands in its place) and the list its "]".
KARINA_REPAIR = ("TikTok\"}]}, 'name': 'google_image_search'}", "TikTok\"}]', 'name': 'google_image_search'}]")

GOOGLE_IMAGE_SEARCH = function_tool(
    "google_image_search",
    "Search Google Images; returns the top k results (title, link, snippet).",
    {
        "query": {"type": "string", "description": "The search query"},
        "k": {"type": "integer", "description": "How many results"},
    },
    ["query"],
)


@dataclass
class WeatherTest:
    """One weather test as the seed shows it."""

    heading_line: int
    run: str
    system: Lit
    user: Lit
    user_line: int
    response_line: int
    calls: list[tuple[str, str]]


def _fragments_match(fragments: list[str], rebuilt: str) -> bool:
    """Whether the surviving pieces of a cut pprint appear, in order, in the rebuilt string."""
    target = re.sub(r"[\s\\\"']", "", rebuilt)
    pos = 0
    for frag in fragments:
        piece = re.sub(r"[\s\\\"']", "", frag)  # quoting differs between the two runs' printouts
        piece = re.sub(r"^\{1", "{l", piece)  # OCR read the "l" of "location" as "1"
        found = target.find(piece, pos)
        if not piece or found < 0:
            return False
        pos = found + len(piece)
    return True


def _response_calls(seed: Seed, start: int, end: int, names: list[str]) -> list[tuple[str, str]]:
    lines = seed.span(start, end)
    text = "\n".join(t for _, t in lines)
    offsets = [sum(len(t) + 1 for _, t in lines[:k]) for k in range(len(lines))]
    calls = []
    for m in re.finditer(r"'arguments':\s*'(.*?)'name':\s*'(\w+)", text, re.S):
        line = lines[max(k for k, off in enumerate(offsets) if off <= m.start())][0]
        raw = m.group(1).strip().rstrip(",").rstrip().rstrip("'")
        try:
            args = json.loads(raw)
        except json.JSONDecodeError:
            if line not in CUT_ARGUMENTS:
                raise SeedFormatError(f"{seed.name}:{line}: cut tool-call arguments without a repair") from None
            fragments = [f for f in re.split(r"\n\s*", m.group(1).strip()) if f.strip()]
            if not _fragments_match(fragments, CUT_ARGUMENTS[line]):
                raise SeedFormatError(
                    f"{seed.name}:{line}: repair {CUT_ARGUMENTS[line]!r} no longer fits {fragments}"
                ) from None
            args = json.loads(CUT_ARGUMENTS[line])
        calls.append((resolve_name(m.group(2), names), dump_args(args)))
    return calls


def _message(seed: Seed, start: int, end: int, role: str) -> tuple[Lit, int]:
    for number, text in seed.span(start, end):
        m = re.search(r'"role":\s*"' + role + r'",\s*"content":\s*(.*)$', text)
        if m:
            # The export dropped the backslash of an escaped leading quote: ""What's -> "\"What's
            return read_string(re.sub(r'^"{2,}', '"\\\\"', m.group(1).rstrip("}] "))), number
    raise SeedFormatError(f"{seed.name}: no {role} message in lines {start}..{end}")


def weather_tests(seed: Seed, names: list[str]) -> list[WeatherTest]:
    """Every single/parallel weather test in seed order."""
    tests = []
    for number, text in enumerate(seed.lines, start=1):
        if not re.match(r"^## (Single|Parallel) call query", text):
            continue
        end = seed.find(r"^## ", number + 1) - 1
        run_line = max(n for n in range(1, number) if re.match(r"^## [Vv]0\.5\d 모델 테스트", seed.line(n)))
        run = "llama3.1-8b-" + seed.line(run_line).split()[1].lower()
        response = seed.find(r"^- Response", number, end)
        system, _ = _message(seed, number, response, "system")
        user, user_line = _message(seed, number, end, "user")
        calls = _response_calls(seed, response, end, names)
        tests.append(
            WeatherTest(number, run, system, user, user_line, seed.find(r"'tool_calls'", response, end), calls)
        )
    return tests


def _slug(calls: list[tuple[str, str]]) -> str:
    short = {"get_current_temperature": "temp", "get_rain_probability": "rain"}
    parts = []
    for name, arguments in calls:
        place = json.loads(arguments)["location"].split(",")[0]
        parts.append(f"{short[name]}-{re.sub(r'[^a-z]', '', place.lower())}")
    return "-".join(parts)


def weather_dialogs(seed: Seed) -> list[dict[str, Any]]:
    """The weather tests, one dialog per distinct test (same calls, compatible prompt)."""
    block_start = seed.find(r"^## Parallel call test")
    tools = [
        o
        for o in scan_json_objects("\n".join(seed.lines[block_start : seed.find(r"^## Single call query")]))
        if o.get("type") == "function"
    ]
    names = [t["function"]["name"] for t in tools]
    full_system = read_string(seed.line(WEATHER_SYSTEM_LINE).split('"content":', 1)[1].rstrip(" },"))
    groups: list[list[WeatherTest]] = []
    for test in weather_tests(seed, names):
        for group in groups:
            other = group[0]
            if other.calls == test.calls and (
                other.user.text.startswith(test.user.text) or test.user.text.startswith(other.user.text)
            ):
                group.append(test)
                break
        else:
            groups.append([test])
    out = []
    for group in groups:
        calls = group[0].calls
        b = DialogBuilder(
            f"tools-weather-{_slug(calls)}",
            EVAL_SET,
            "single_call" if len(calls) == 1 else "parallel_call",
            seed.name,
            group[0].heading_line,
            tools=tools,
        )
        system = best([t.system for t in group])
        if system.text != full_system.text:
            if not full_system.text.startswith(system.text):
                raise SeedFormatError(f"{seed.name}:{group[0].heading_line}: unexpected system prompt {system.text!r}")
            b.repairs.append(f"cut system prompt completed from line {WEATHER_SYSTEM_LINE}")
        b.system = full_system.text
        user = best([t.user for t in group])
        source = next(t for t in group if t.user is user)
        if source is not group[0]:
            b.repairs.append(
                f"cut user prompt completed from the same test's {source.run} run (line {source.user_line})"
            )
        b.user(user.text, source.user_line, truncated=not user.closed)
        b.calls([(name, args, None) for name, args in calls], group[0].response_line)
        b.meta["runs"] = {t.run: t.heading_line for t in group}
        b.meta["gt_source"] = "the tool calls the tested model made, which the seed reports as correct"
        out.append(b.build())
    return out


def no_tool_dialogs(seed: Seed) -> list[dict[str, Any]]:
    """v0.41 Dialog 1 (English, answered in text) and Dialog 2 (Korean, wrongly answered with a tool call)."""
    model = "Llama-8B-Instruct-tool_selection-v0.41"
    out = []
    for dialog_id, head, nxt in (
        ("tools-none-planets-en", r"^#### Dialog 1", r"^#### Dialog 2"),
        ("tools-none-planets-ko", r"^#### Dialog 2", r"^### Dialog 3"),
    ):
        start = seed.find(head)
        found = units(paragraphs(seed, start + 1, seed.find(nxt, start + 1) - 1))
        b = DialogBuilder(dialog_id, EVAL_SET, "no_tool", seed.name, found[0].first)
        build_turns(b, found, model, ["retrieve_fashion_text_knowledges_with_text_query"])
        last = b.turns[-1]
        if last.get("tool_calls"):
            # The seed's verdict: a tool call with no tools offered is wrong, so it is no reference.
            b.turns.pop()
            b.turn_lines.pop()
            b.model_answer(len(b.turns), model, model_answer_of(last))
            b.meta["seed_note"] = (
                "사용할 수 있는 툴이 주어지지 않았는데, 대답을 함. (no tool was offered, yet the model called one)"
            )
        else:
            b.meta["gt_source"] = f"{model}'s answer (no tool offered, none called)"
        out.append(b.build())
    return out


def karina_dialog(seed: Seed) -> dict[str, Any]:
    """The v0.51 google_image_search case: a full message list whose final answer failed."""
    start = seed.find(r"^\[\{'role': 'user', 'content': '안녕하세요\?'")
    end = seed.find(r"^```", start) - 1
    text = ""
    for number, line in seed.span(start, end):
        text += line + (" " if number in KARINA_SPACED else "")
    if KARINA_REPAIR[0] not in text:
        raise SeedFormatError(f"{seed.name}:{start}: the cut tool message no longer matches its repair")
    messages = loads_lenient(text.replace(*KARINA_REPAIR))
    b = DialogBuilder(
        "tools-google-image-karina", EVAL_SET, "tool_response", seed.name, start, tools=[GOOGLE_IMAGE_SEARCH]
    )
    b.repairs.append(f"lines {start}-{end}: page-edge cuts joined; tool message's lost closing quote and ']' restored")

    def line_of(snippet: str) -> int:
        return next((n for n, t in seed.span(start, end) if snippet in t), start)

    for m in messages:
        if m["role"] == "user":
            b.user(m["content"], line_of(m["content"][:12]))
        elif m["role"] == "assistant" and m.get("tool_calls"):
            b.calls(
                [(c["function"]["name"], c["function"]["arguments"], c["id"]) for c in m["tool_calls"]],
                line_of("'tool_calls'"),
            )
        elif m["role"] == "assistant":
            b.assistant(m["content"], line_of(m["content"][:5]))
        else:
            b.tool(m["content"], line_of("'role': 'tool'"))
    answer_line = seed.find(r"\S", end + 2)
    b.model_answer(len(b.turns), "llama3.1-8b-v0.51", seed.line(answer_line).strip())
    b.meta["seed_note"] = "실패한 경우: the model did not use the tool result (its whole answer is in model_answers)"
    return b.build()


def convert(seed: Seed) -> list[dict[str, Any]]:
    """All ``tool_calls`` dialogs of seed 000, in seed order."""
    return no_tool_dialogs(seed) + [karina_dialog(seed)] + weather_dialogs(seed)

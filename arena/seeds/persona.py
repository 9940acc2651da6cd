"""``persona``: persona-following dialogs from seeds 000 (김지혜) and 003 (Polaris LLM personas).

Seed 000 tests whether a model keeps to the 김지혜 persona and follows a topic change (school → 세종대왕);
the seed's verdict is that every tested answer to the topic change failed (it repeats the school topic),
so those prompts are left open (``meta.open_final_turn``) with the failed answers in ``meta.model_answers``.
Seed 003 compares gemma/llama/mistral prompts; each distinct prompt is one dialog whose few-shot examples
are GT turns and whose final question is open.
"""

from __future__ import annotations

import re
from typing import Any

from arena.seeds.common import DialogBuilder, Seed, SeedFormatError, loads_lenient
from arena.seeds.narrative import build_turns, paragraphs, units

EVAL_SET = "persona"
CATEGORY = "persona"

# Seed 000 hard wraps in the V0.58/V0.59 transcripts that fell on a space (all others fell mid-word).
SPACED_WRAPS = {2975, 2976, 2987, 2998, 3009, 3029}
# The chat export's first answer stops mid-clause exactly at a code-block break: the export cut it.
CUT_IN_SEED = ("힘들고 느끼는 건지",)


def persona_system(seed: Seed) -> tuple[str, int, int]:
    """The 김지혜 persona prompt of seed 000 and its line span."""
    section = seed.find(r"^## V0\.58 모델과 V0\.59 모델의 비교")
    start = seed.find(r"^너는 지금부터 다음에 주어지는 페르소나 역할에", section)
    end = seed.find(r"^## V0\.58$", start) - 1
    text = "\n".join(line.rstrip() for _, line in seed.span(start, end))
    return re.sub(r"\n{3,}", "\n\n", text).strip(), start, end


def chat_export_dialog(seed: Seed, system: str, span: tuple[int, int]) -> dict[str, Any]:
    """The v0.58 chat-UI export (JSON split over two code blocks)."""
    start = seed.find(r"^## 대화 테스트")
    end = seed.find(r"^- 특징", start)
    body = [p for p in paragraphs(seed, start, end) if p.fenced]
    export = loads_lenient("\n".join(p.raw for p in body))
    chat = export["history"][0]
    b = DialogBuilder("persona-kimjihye-chat-v058", EVAL_SET, CATEGORY, seed.name, body[0].first, system=system)
    messages = chat["messages"]
    # The last answer is the failure the seed describes (it repeats the school topic): not a reference.
    failed = messages[-1] if messages[-1]["role"] == "assistant" else None
    lines = [n for p in body for n, _ in p.lines]
    for m in messages[:-1] if failed else messages:
        cut = any(snippet in m["content"] for snippet in CUT_IN_SEED)
        line = next((n for n in lines if m["content"][:20] in seed.line(n)), body[0].first)
        b.add({"role": m["role"], "content": m["content"]}, line, truncated=cut)
    if failed:
        b.model_answer(len(b.turns), chat["model"]["id"], failed["content"])
    b.repairs.append(
        f"the export's prompt announces a persona it does not carry (its answers address 민서 from it); "
        f"the persona text of lines {span[0]}-{span[1]} is the system prompt"
    )
    b.meta["export_prompt"] = chat["prompt"]
    b.meta["temperature"] = chat["temperature"]
    b.meta["gt_source"] = (
        "the tested model's own earlier answers (context); the seed judges only the last one, a failure"
    )
    b.meta["seed_note"] = "기존 대화 내용에 대한 대답을 반복하는 경향이 존재함"
    return b.build()


def transcript_dialog(
    seed: Seed, system: str, dialog_id: str, heading: str, next_heading: str, model: str
) -> dict[str, Any]:
    """A V0.58/V0.59 transcript: answers up to the topic change are context, the topic change is open."""
    start = seed.find(heading)
    found = units(paragraphs(seed, start + 1, seed.find(next_heading, start + 1) - 1))
    topic = next(k for k, u in enumerate(found) if "세종대왕" in u.text())
    b = DialogBuilder(dialog_id, EVAL_SET, CATEGORY, seed.name, found[0].first, system=system)
    build_turns(b, found[: topic + 1], model, [], SPACED_WRAPS)
    rest = found[topic + 1 :]
    if rest:
        b.model_answer(len(b.turns), model, rest[0].text(SPACED_WRAPS))
        # Later turns continue past the failed answer; roles there are ambiguous (two answers in a row).
        b.meta["seed_continuation"] = [{"line": u.first, "text": u.text(SPACED_WRAPS)} for u in rest[1:]]
    b.meta["gt_source"] = "the tested model's own earlier answers (context); the topic change has no reference"
    b.meta["seed_note"] = (
        "v0.58: 토픽이 바뀌어도 지난 질문에 대하여 반복하여 진술하는 문제점; v0.59: 이전 발화를 반복하는 문제가 아직도 존재함"
    )
    return b.build()


# --- seed 003: prompts in three chat templates --------------------------------------------------------


def parse_prompt(model: str, prompt: str) -> tuple[str | None, list[tuple[str, str]]]:
    """``(system, [(role, text)])`` from a prompt written in gemma, llama-3 or mistral chat format."""
    if model == "gemma":
        # One end marker lost its "<" in the seed ("지긋지긋해end_of_turn>").
        turns = [(r, t.strip()) for r, t in re.findall(r"<start_of_turn>(user|model)(.*?)<?end_of_turn>", prompt, re.S)]
        turns = [("assistant" if r == "model" else r, t) for r, t in turns]
        # Gemma has no system role: a leading user turn followed by another user turn is the system prompt.
        if len(turns) > 1 and turns[0][0] == turns[1][0] == "user":
            return turns[0][1], turns[1:]
        return None, turns
    if model == "llama":
        found = re.findall(
            r"<\|start_header_id\|>(system|user|assistant)<\|end_header_id\|>(.*?)<\|eot_id\|>", prompt, re.S
        )
        system = next((t.strip() for r, t in found if r == "system"), None)
        return system, [(r, t.strip()) for r, t in found if r != "system"]
    if model == "mistral":
        inside, _, after = prompt.partition("[/INST]")
        parts = re.split(r"(user :|model :)", inside.replace("[INST]", "", 1))
        turns = [
            ("user" if parts[k] == "user :" else "assistant", parts[k + 1].strip()) for k in range(1, len(parts), 2)
        ]
        tail = re.split(r"user :", after)
        turns += [("user", t.strip()) for t in tail[1:]]
        return parts[0].strip() or None, turns
    raise SeedFormatError(f"unknown prompt format {model!r}")


def split_examples(system: str) -> tuple[str, list[tuple[str, str]]]:
    """Move ``#### 예시 N 사용자: "..." model: "..."`` few-shot examples out of a persona prompt."""
    pieces = re.split(r"#### 예시 \d+", system)
    if len(pieces) == 1:
        return system, []
    examples = []
    closing = ""
    for piece in pieces[1:]:
        m = re.match(r'\s*사용자:\s*"(.*?)"\s*model:\s*"(.*?)"(.*)$', piece, re.S)
        if not m:
            raise SeedFormatError(f"unreadable few-shot example {piece[:40]!r}")
        examples.append((m.group(1), m.group(2)))
        closing = m.group(3).strip() or closing
    return f"{pieces[0].strip()}\n\n{closing}".strip(), examples


def table_rows(seed: Seed, heading: str) -> list[tuple[int, list[str]]]:
    """The body rows of the markdown table under ``heading``: (line, [model, question, answer, verdict])."""
    start = seed.find(heading)
    rows = []
    for number in range(start + 1, len(seed.lines) + 1):
        text = seed.line(number)
        if text.startswith("#"):
            break
        if text.startswith("| ") and not text.startswith("| ---"):
            cells = [c.strip() for c in text.strip().strip("|").split(" | ")]
            if len(cells) != 4:
                raise SeedFormatError(f"{seed.name}:{number}: expected 4 table cells, found {len(cells)}")
            rows.append((number, cells))
    return rows[1:]  # the header row


POLARIS = (
    # (heading, dialog id, what the persona is)
    (
        r"^#### \*\*4-1-1\. 단순 질문 시",
        "persona-baseline-startup",
        "no persona: the baseline the seed compares against",
    ),
    (
        r"^#### \*\*4-1-2\. 모델 template 적용 시",
        "persona-naysayer",
        "calms the user and argues the plan is unrealistic",
    ),
    (
        r"^#### \*\*4-1-3\. 페르소나 제공 및 퓨샷을 5개 추가 적용 시",
        "persona-retired-dev",
        "은퇴한 60세 개발자 with five few-shot examples",
    ),
)


def polaris_dialogs(seed: Seed) -> list[dict[str, Any]]:
    """One dialog per distinct prompt in the 4-1 tables of seed 003; the tested answers go to meta."""
    out = []
    for heading, base_id, about in POLARIS:
        groups: list[tuple[tuple[Any, ...], int, list[tuple[str, str, str]]]] = []
        questions: dict[int, list[tuple[str, str]]] = {}  # group line -> (model, raw prompt)
        for line, (model, question, answer, verdict) in table_rows(seed, heading):
            if question.startswith("'"):
                system, turns = None, [("user", question.strip("' "))]
            else:
                system, turns = parse_prompt(model, question)
            key = (system, tuple(turns))
            for k_key, k_line, answers in groups:
                if k_key == key:
                    answers.append((model, answer, verdict))
                    questions[k_line].append((model, question))
                    break
            else:
                groups.append((key, line, [(model, answer, verdict)]))
                questions[line] = [(model, question)]
        for n, ((system, turns), line, answers) in enumerate(groups):
            dialog_id = base_id if n == 0 else f"{base_id}-{answers[0][0]}-prompt"
            b = DialogBuilder(dialog_id, EVAL_SET, CATEGORY, seed.name, line)
            examples: list[tuple[str, str]] = []
            if system:
                b.system, examples = split_examples(system)
            if examples:
                b.repairs.append(
                    f"the prompt's {len(examples)} few-shot examples became GT turns 0-{2 * len(examples) - 1}"
                )
            for user, reply in examples:
                b.user(user, line)
                b.assistant(reply, line)
            for role, text in turns:
                b.add({"role": role, "content": text}, line)
            for model, answer, verdict in answers:
                b.model_answer(len(b.turns), model, answer)
                b.meta.setdefault("seed_verdicts", {})[model] = verdict
            if any(m == "gemma" and re.search(r"[^<]end_of_turn>", q) for m, q in questions[line]):
                b.repairs.append("gemma prompt: an end-of-turn marker missing its '<' read as one")
            if n > 0:
                b.meta["seed_note"] = (
                    f"the {answers[0][0]} prompt differs from the {groups[0][2][0][0]} one in the seed; kept as given"
                )
            b.meta["persona"] = about
            b.meta["prompt_formats"] = [m for m, _, _ in answers]
            out.append(b.build())
    return out


def convert(seed_000: Seed, seed_003: Seed) -> list[dict[str, Any]]:
    """All ``persona`` dialogs, seed 000 first."""
    system, start, end = persona_system(seed_000)
    return [
        chat_export_dialog(seed_000, system, (start, end)),
        transcript_dialog(seed_000, system, "persona-kimjihye-v058", r"^## V0\.58$", r"^## V0\.59$", "V0.58"),
        transcript_dialog(seed_000, system, "persona-kimjihye-v059", r"^## V0\.59$", r"^## Text Retrieval", "V0.59"),
    ] + polaris_dialogs(seed_003)

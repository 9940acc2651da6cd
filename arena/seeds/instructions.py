"""``instructions``: Dolly/KoAlpaca-style instruction items from seeds 001 and 004.

Seed 001 shows one sample of each corpus it converted to Dolly format (``instruction/context/response/
category``): KoVicuna, Alpaca, KorQuAD 2.0 and 1.0. Seed 004 shows a KoAlpaca text-only sample. A Dolly
item becomes one user turn (the instruction, then the context after a blank line) and one GT answer; the
Dolly fields are kept in ``meta.dolly`` so a KoAlpaca template can re-render them. The KoVicuna sample is a
five-exchange conversation whose later questions lean on the earlier ones ("이러한 전략과 전술", a question
that starts mid-sentence), so it stays one multi-turn dialog instead of five cut-off items.
"""

from __future__ import annotations

import json
import re
from typing import Any

from arena.seeds.common import DialogBuilder, Seed, SeedFormatError, loads_lenient

EVAL_SET = "instructions"
CATEGORY = "open_qa"  # the category seed 001 assigns to every converted corpus


def _locate(seed: Seed, snippet: str, start: int, end: int) -> int:
    """The line in ``start..end`` holding ``snippet`` (falls back to ``start``)."""
    head = snippet[:30]
    return next((n for n, t in seed.span(start, end) if head in t), start)


def dolly_dialog(
    seed: Seed, dialog_id: str, line: int, instruction: str, context: str, response: str, corpus: str
) -> DialogBuilder:
    """A builder holding one Dolly item as a single exchange."""
    b = DialogBuilder(dialog_id, EVAL_SET, CATEGORY, seed.name, line)
    b.user(f"{instruction}\n\n{context}" if context else instruction, line)
    b.assistant(response, line)
    b.meta["dolly"] = {"instruction": instruction, "context": context, "response": response, "category": CATEGORY}
    b.meta["corpus"] = corpus
    return b


def kovicuna(seed: Seed) -> dict[str, Any]:
    """The KoVicuna sample (ShareGPT-style ``conversations``)."""
    start = seed.find(r"\{'id': 'QWJhYvA_0'")
    end = seed.find(r"^\s*</pre>", start) - 1
    sample = loads_lenient("\n".join(t.strip() for _, t in seed.span(start, end)))
    b = DialogBuilder(f"inst-kovicuna-{sample['id']}", EVAL_SET, CATEGORY, seed.name, start)
    for turn in sample["conversations"]:
        text = turn["value"].replace("\r\n", "\n")  # the corpus stores Windows line ends
        role = {"human": "user", "gpt": "assistant"}[turn["from"]]
        b.add({"role": role, "content": text}, _locate(seed, turn["value"], start, end))
    b.meta["corpus"] = "KoVicuna (ko_dataset_chatgpt / ko_alpaca_style_dataset)"
    b.meta["seed_note"] = "turn 6 begins mid-sentence ('에서 희소성과…') as in the corpus"
    return b.build()


def alpaca(seed: Seed) -> dict[str, Any]:
    """The Alpaca sample (``instruction/input/output``, exported with ``<br>`` line breaks)."""
    start = seed.find(r"^\s*\{'instruction': '다음 국가와")
    end = seed.find(r"'output':", start)
    sample = loads_lenient(" ".join(t.strip().replace("<br>", "") for _, t in seed.span(start, end)))
    b = dolly_dialog(
        seed,
        "inst-alpaca-canada-01",
        start,
        sample["instruction"],
        sample["input"],
        sample["output"],
        "Alpaca (Korean)",
    )
    b.meta["seed_note"] = "the sample's output is kept as the corpus has it, though it answers the instruction poorly"
    return b.build()


def korquad2(seed: Seed) -> dict[str, Any]:
    """The KorQuAD 2.0 sample: question and answer; its HTML context is cut in the seed, so it is omitted."""
    start = seed.find(r"'version': 'KorQuAD_2\.0_train'")
    end = seed.find(r"'id': '\d+'\}\]\}\}", start)
    text = "\n".join(t for _, t in seed.span(start, end))
    answer = re.search(r"'answer': \{'text': '(.*?)'", text)
    question = re.search(r"'question': '(.*?)'", text)
    qid = re.search(r"'id': '(\d+)'", seed.line(end))
    if not (answer and question and qid):
        raise SeedFormatError(f"{seed.name}:{start}: KorQuAD 2.0 sample no longer readable")
    b = dolly_dialog(
        seed,
        f"inst-korquad2-{qid.group(1)}",
        _locate(seed, "'question':", start, end),
        question.group(1),
        "",
        answer.group(1),
        "KorQuAD 2.0",
    )
    b.meta["context_omitted"] = "the seed cuts the HTML context ('...') before the answer's position; asked closed-book"
    return b.build()


def korquad1(seed: Seed) -> dict[str, Any]:
    """The KorQuAD 1.0 sample: question, answer and its paragraph."""
    start = seed.find(r"^\s*\{'qas': \[\{'question':")
    end = seed.find(r"'context': ", start)
    sample = loads_lenient(" ".join(t.strip() for _, t in seed.span(start, end)))
    qa = sample["qas"][0]
    b = dolly_dialog(
        seed,
        f"inst-korquad1-{qa['id']}",
        start,
        qa["question"],
        sample["context"],
        qa["answers"][0]["text"],
        "KorQuAD 1.0",
    )
    return b.build()


def koalpaca(seed: Seed) -> dict[str, Any]:
    """Seed 004's KoAlpaca text-only sample; the answer text runs on into invented '### 질문:' turns."""
    line = seed.find(r'^\[\{"text": "### 질문: ')
    texts = [json.loads(f'"{t}"') for t in re.findall(r'"text": "((?:[^"\\]|\\.)*)"', seed.line(line))]
    if len(texts) != 2 or not texts[0].startswith("### 질문: ") or not texts[1].startswith("### 답변: "):
        raise SeedFormatError(f"{seed.name}:{line}: KoAlpaca sample no longer readable")
    question = texts[0].removeprefix("### 질문: ").strip()
    raw_answer = texts[1].removeprefix("### 답변: ")
    # The text goes on with further "### 질문:" paragraphs that are no questions (generation run-on);
    # the reference is the answer to the question asked, i.e. up to the first of them.
    answer = raw_answer.split("\n\n### 질문:")[0].strip()
    b = DialogBuilder("inst-koalpaca-onion-01", EVAL_SET, CATEGORY, seed.name, line)
    b.user(question, line)
    b.assistant(answer, line)
    b.repairs.append("answer cut at its first run-on '### 질문:' paragraph; full text in meta.raw_answer")
    b.meta["raw_answer"] = raw_answer
    b.meta["corpus"] = "KoAlpaca v1.1a (text-only)"
    return b.build()


def convert(seed_001: Seed, seed_004: Seed) -> list[dict[str, Any]]:
    """All ``instructions`` dialogs, seed 001 first."""
    return [kovicuna(seed_001), alpaca(seed_001), korquad2(seed_001), korquad1(seed_001), koalpaca(seed_004)]

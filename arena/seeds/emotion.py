"""``emotion``: the emotional-support examples of seed 004 (KoAlpaca-Polyglot tuned on AIHub 감성 대화).

Two items: the training-format sample (``질문: ... ### 답변: ...<|endoftext|>``) and the three-turn
inference example (입력/출력 pairs), which follows the corpus's shape of up to three exchanges
(감정 상태 → 진전된 대화 → 마무리). Its answers are the tuned model's outputs that the seed shows as the
intended behaviour.
"""

from __future__ import annotations

import re
from typing import Any

from arena.seeds.common import DialogBuilder, Seed, SeedFormatError

EVAL_SET = "emotion"
CATEGORY = "emotional_support"


def training_sample(seed: Seed) -> dict[str, Any]:
    """The single-exchange sample in KoAlpaca training format."""
    line = seed.find(r"^(### )?질문: .*### 답변: ")
    m = re.match(r"^(?:### )?질문: (.*?)\\n\\n### 답변: (.*?)(?:<\|endoftext\|>)?$", seed.line(line).strip())
    if not m:
        raise SeedFormatError(f"{seed.name}:{line}: unreadable KoAlpaca sample")
    b = DialogBuilder("emotion-koalpaca-sample-01", EVAL_SET, CATEGORY, seed.name, line)
    b.user(m.group(1), line)
    b.assistant(m.group(2), line)
    b.meta["gt_source"] = "the training-data sample the seed shows (KoAlpaca '### 질문/### 답변' format)"
    return b.build()


def inference_example(seed: Seed) -> dict[str, Any]:
    """The 입력/출력 example: three user turns, each answered by the tuned model."""
    start = seed.find(r"^예시$")
    pairs: list[tuple[int, str, str]] = []
    for number, text in seed.span(start + 1, len(seed.lines)):
        if text.startswith("입력:"):
            pairs.append((number, "user", text.removeprefix("입력:").strip()))
        elif text.startswith("출력:"):
            pairs.append((number, "assistant", text.removeprefix("출력:").strip()))
    if not pairs or [r for _, r, _ in pairs] != ["user", "assistant"] * (len(pairs) // 2):
        raise SeedFormatError(f"{seed.name}:{start}: 입력/출력 lines no longer alternate")
    b = DialogBuilder("emotion-exam-anxiety-01", EVAL_SET, CATEGORY, seed.name, pairs[0][0])
    for number, role, text in pairs:
        b.add({"role": role, "content": text}, number)
    b.meta["gt_source"] = "the tuned model's outputs (polyglot-5.8b-koalpaca-emotion) shown as the example in the seed"
    return b.build()


def convert(seed: Seed) -> list[dict[str, Any]]:
    """All ``emotion`` dialogs of seed 004, in seed order."""
    return [training_sample(seed), inference_example(seed)]

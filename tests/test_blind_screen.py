"""The blind tab's screens as pure functions (arena.web.ui.blind_screen): no model identity before the
vote, the names after it. The HTTP tests (test_blindness.py, test_blind_ui.py) check the same against a
served round; this one pins the presenter itself, on every shipped dialog with a tool-call turn."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from arena import PROJECT_ROOT, rounds
from arena.core.dialogs import eval_set_files, load_dialogs
from arena.core.replay import steps
from arena.web.ui.blind_screen import item_screen, reveal_screen

# Names chosen so that no Korean or English UI word contains them.
MODEL_A, MODEL_B = "zq-secret-solar-v7", "zq-hidden-llama-lora"


def _answer(text: str, calls: list[dict] | None = None) -> SimpleNamespace:
    # The fields of a stored generation the screens read; what get_generation returns has them all.
    return SimpleNamespace(text=text, tool_calls=calls, ttft_ms=120.0, tokens_per_s=55.5, tokens=42, similarity=0.71)


def _cases():
    dialogs = load_dialogs(eval_set_files(PROJECT_ROOT / "eval_sets"))
    tool_turns = [(d, s) for d in dialogs for s in steps(d) if s.gt is not None and s.gt.tool_calls]
    plain_turns = [(d, s) for d in dialogs for s in steps(d) if s.gt is not None and not s.gt.tool_calls]
    return tool_turns[:3] + plain_turns[:3]


@pytest.mark.parametrize("a_position", ["left", "right"])
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_item_screen_carries_no_model_identity_and_the_reveal_does(a_position: str, lang: str) -> None:
    cases = _cases()
    assert len(cases) == 6
    for dialog, s in cases:
        item = rounds.Item(
            key="k", eval_set=dialog.eval_set, dialog_id=dialog.id, turn_index=s.turn_index,
            model_a=MODEL_A, model_b=MODEL_B, a_position=a_position,
        )  # fmt: skip
        assignment = rounds.Assignment(round_id=1, item=item, left_generation=11, right_generation=12)
        call = {"type": "function", "function": {"name": "search", "arguments": '{"q": "코트"}'}}
        left, right = _answer("왼쪽 답변입니다."), _answer("오른쪽 답변입니다.", [call])

        screen = item_screen(assignment, dialog, left, right, lang)
        shown = json.dumps(dataclasses.asdict(screen), ensure_ascii=False)
        for secret in (MODEL_A, MODEL_B, "zq-", "120", "55.5", "0.71"):  # names, and timings come after the vote
            assert secret not in shown, (dialog.id, secret)
        assert "왼쪽 답변입니다." in screen.answers_html[0] and "오른쪽 답변입니다." in screen.answers_html[1]
        assert "search" in screen.answers_html[1]  # tool calls are part of the answer being judged

        reveal = reveal_screen(assignment, left, right, lang)
        assert reveal.headers == (f"**A** · {item.left_model}", f"**B** · {item.right_model}")
        assert {item.left_model, item.right_model} == {MODEL_A, MODEL_B}
        assert all("0.71" in line for line in reveal.timings)

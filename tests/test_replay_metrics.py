"""Replay prompt construction and the per-answer metrics (diff, similarity, tool match, repetition)."""

import json

import pytest

from arena.core.dialogs import Dialog
from arena.core.metrics import (
    MorphemeSplitter,
    diff_html,
    diff_tokens,
    score_step,
    similarity,
    split_words,
    tool_call_match,
)
from arena.core.replay import build_messages, live_messages, step, steps
from backends.base import ToolCall

TOOL = {
    "type": "function",
    "function": {
        "name": "retrieve_fashion_text_knowledges_with_text_query",
        "parameters": {"type": "object", "properties": {"text_query": {"type": "string"}}},
    },
}


def coat_dialog() -> Dialog:
    return Dialog.model_validate(
        {
            "id": "coat",
            "eval_set": "t",
            "system": "너는 패션 도우미야.",
            "tools": [TOOL],
            "turns": [
                {"role": "user", "content": "안녕."},
                {"role": "assistant", "content": "안녕하세요. 무엇을 도와드릴까요?"},
                {"role": "user", "content": "코트가 정확히 어떤 건지 알려줘."},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "type": "function",
                            "function": {
                                "name": "retrieve_fashion_text_knowledges_with_text_query",
                                "arguments": '{"text_query": "코트"}',
                            },
                        }
                    ],
                },
                {
                    "role": "tool",
                    "name": "retrieve_fashion_text_knowledges_with_text_query",
                    "content": '[{"title": "코트", "text": "옛 유럽식 정장"}]',
                },
                {"role": "assistant", "content": "코트는 옛 유럽식 정장인 프록 코트에서 유래된 의복입니다."},
            ],
            "references": {"5": ["코트는 프록 코트에서 유래했습니다."]},
        }
    )


def test_replay_prompt_is_system_plus_reference_history():
    d = coat_dialog()
    msgs = build_messages(d, 5)
    assert msgs[0] == {"role": "system", "content": "너는 패션 도우미야."}
    assert [m["role"] for m in msgs[1:]] == ["user", "assistant", "user", "assistant", "tool"]
    # The model sees the reference tool call, not its own earlier answer.
    assert json.loads(msgs[4]["tool_calls"][0]["function"]["arguments"]) == {"text_query": "코트"}
    s = step(d, 5)
    assert (
        s.tools == [TOOL]
        and s.gt.content.startswith("코트는")
        and s.references == ["코트는 프록 코트에서 유래했습니다."]
    )
    assert [x.turn_index for x in steps(d)] == [1, 3, 5]
    assert build_messages(d, 1)[-1] == {"role": "user", "content": "안녕."}


def test_dialog_ending_on_user_turn_gets_an_open_final_step():
    d = coat_dialog()
    d.turns.append(d.turns[0].model_copy(update={"content": "세종대왕 알아?"}))
    last = steps(d)[-1]
    assert last.turn_index == 7 and last.gt is None and last.messages[-1]["content"] == "세종대왕 알아?"


def test_replay_refuses_non_assistant_turns():
    with pytest.raises(ValueError, match="user turn"):
        step(coat_dialog(), 2)


def test_live_messages_keep_persona_and_history():
    msgs = live_messages(coat_dialog(), [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "c")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"] and msgs[-1]["content"] == "c"


def test_word_diff_on_korean_keeps_text_and_marks_changes():
    ops = diff_tokens("코트는 옛 유럽식 정장입니다.", "코트는 현대식 정장입니다.")
    assert "".join(t for k, t in ops if k != "insert") == "코트는 옛 유럽식 정장입니다."
    assert "".join(t for k, t in ops if k != "delete") == "코트는 현대식 정장입니다."
    assert ("insert", "현대식") in ops
    html = diff_html(ops)
    assert "<ins" in html and "<del" in html and "현대식" in html


def test_morpheme_diff_isolates_the_particle():
    splitter = MorphemeSplitter()
    ops = diff_tokens("코트는 따뜻하다", "코트가 따뜻하다", splitter)
    changed = [t for k, t in ops if k != "equal"]
    assert "코트" not in "".join(changed)  # the noun is shared, only the particle differs
    assert ("equal", "코트") in ops
    assert "".join(splitter("안녕하세요, 코트는요?")) == "안녕하세요, 코트는요?"


def test_similarity_takes_best_reference():
    assert similarity("a b c", ["x y z", "a b c"]) == 1.0
    assert similarity("a b c", []) is None
    assert 0 < similarity("코트는 좋다", ["코트는 나쁘다"]) < 1


def test_tool_call_match_ignores_order_and_json_formatting():
    gt = [
        {"function": {"name": "f", "arguments": '{"a": 1, "b": "서울"}'}},
        {"function": {"name": "g", "arguments": "{}"}},
    ]
    same = [
        {"function": {"name": "g", "arguments": {}}},
        {"function": {"name": "f", "arguments": '{"b":"서울","a":1}'}},
    ]
    wrong_args = [
        {"function": {"name": "f", "arguments": '{"a": 2, "b": "서울"}'}},
        {"function": {"name": "g", "arguments": "{}"}},
    ]
    calls = ToolCall.list_from_openai
    assert tool_call_match(calls(same), calls(gt)) == (True, True)
    assert tool_call_match(calls(wrong_args), calls(gt)) == (True, False)
    assert tool_call_match([], calls(gt)) == (False, False)
    # Arguments given as an object are the same call as their JSON text.
    assert same[0]["function"]["arguments"] == {} and calls(same)[0].arguments == "{}"


def test_score_step_flags_repetition_of_earlier_turn():
    d = coat_dialog()
    m = score_step(d, 5, "안녕하세요. 무엇을 도와드릴까요?", [], split_words)
    assert m.repeats_earlier_turn and m.repetition == 1.0
    assert m.similarity < 0.5
    tool = score_step(
        d,
        3,
        "",
        [ToolCall(name="retrieve_fashion_text_knowledges_with_text_query", arguments='{"text_query": "코트"}')],
    )
    assert tool.tool_name_match and tool.tool_args_match and tool.diff == []

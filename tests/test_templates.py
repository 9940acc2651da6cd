"""Chat templates render the seed documents' prompt formats exactly (expected strings written out)."""

from __future__ import annotations

import json

import pytest

from backends import templates
from backends.templates import render

FASHION_TOOL = {
    "type": "function",
    "function": {
        "name": "retrieve_fashion_text_knowledges_with_text_query",
        "parameters": {
            "type": "object",
            "properties": {"text_query": {"type": "string"}},
            "required": ["text_query"],
        },
    },
}


def test_koalpaca_training_text_matches_seed():
    # Seed 004: "### 질문: ...\n\n### 답변: 실수하시다니 정말 미안한 마음이 크겠어요<|endoftext|>"
    dialog = [
        {
            "role": "user",
            "content": "이번 프로젝트에서 발표를 하는데 내가 실수하는 바람에 우리 팀이 감점을 받았어. 너무 미안해.",
        },
        {"role": "assistant", "content": "실수하시다니 정말 미안한 마음이 크겠어요"},
    ]
    got = render("koalpaca", dialog, add_generation_prompt=False, eos_token="<|endoftext|>")
    assert got == (
        "### 질문: 이번 프로젝트에서 발표를 하는데 내가 실수하는 바람에 우리 팀이 감점을 받았어. 너무 미안해."
        "\n\n### 답변: 실수하시다니 정말 미안한 마음이 크겠어요<|endoftext|>"
    )


def test_koalpaca_generation_prompt_single_and_multi_turn():
    single = [{"role": "user", "content": "양파는 어떤 식물 뿌리인가요? 그리고 고구마는 뿌리인가요?"}]
    assert render("koalpaca", single, eos_token="<|endoftext|>") == (
        "### 질문: 양파는 어떤 식물 뿌리인가요? 그리고 고구마는 뿌리인가요?\n\n### 답변:"
    )
    # Seed 004's emotion chatbot, second turn: earlier answers are separated by a blank line, no EOS.
    multi = [
        {"role": "user", "content": "오늘 시험 망쳐서 우울해"},
        {"role": "assistant", "content": "우울하셔서 정말 슬프시겠어요."},
        {"role": "user", "content": "엄마한테 혼날 거 같아서 불안해"},
    ]
    assert render("koalpaca", multi, eos_token="<|endoftext|>") == (
        "### 질문: 오늘 시험 망쳐서 우울해\n\n"
        "### 답변: 우울하셔서 정말 슬프시겠어요.\n\n"
        "### 질문: 엄마한테 혼날 거 같아서 불안해\n\n"
        "### 답변:"
    )


def test_solar_instruct_seed_dialog():
    # Seed 002 (LDCC-SOLAR-10.7B, 도배 QA): the follow-up question after the first answer.
    dialog = [
        {"role": "system", "content": "당신은 도배 하자 상담원입니다."},
        {"role": "user", "content": "도배하는 법 알려줘"},
        {"role": "assistant", "content": "벽지를 붙일 때는 벽의 상태를 잘 점검하여 균일한 벽면을 만들어야 합니다."},
        {"role": "user", "content": "좀 더 자세히 알려줘"},
    ]
    assert render("solar", dialog, bos_token="<s>", eos_token="</s>") == (
        "<s>### System:\n당신은 도배 하자 상담원입니다.\n\n"
        "### User:\n도배하는 법 알려줘\n\n"
        "### Assistant:\n벽지를 붙일 때는 벽의 상태를 잘 점검하여 균일한 벽면을 만들어야 합니다.\n\n"
        "### User:\n좀 더 자세히 알려줘\n\n"
        "### Assistant:\n"
    )


def test_gemma_knock_knock_matches_seed_block():
    # Seed 003 shows this exact block (Gemma's formatting page).
    dialog = [
        {"role": "user", "content": "knock knock"},
        {"role": "assistant", "content": "who is there"},
        {"role": "user", "content": "Gemma"},
        {"role": "assistant", "content": "Gemma who?"},
    ]
    seed_block = (
        "<start_of_turn>user\nknock knock<end_of_turn>\n"
        "<start_of_turn>model\nwho is there<end_of_turn>\n"
        "<start_of_turn>user\nGemma<end_of_turn>\n"
        "<start_of_turn>model\nGemma who?<end_of_turn>\n"
    )
    assert render("gemma", dialog, add_generation_prompt=False) == seed_block
    assert render("gemma", dialog[:3], bos_token="<bos>") == (
        "<bos><start_of_turn>user\nknock knock<end_of_turn>\n"
        "<start_of_turn>model\nwho is there<end_of_turn>\n"
        "<start_of_turn>user\nGemma<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_system_text_opens_first_user_turn():
    dialog = [
        {"role": "system", "content": "당신은 은퇴한 60세 개발자입니다."},
        {"role": "user", "content": "나 이번주에 퇴직서 내려고 해."},
    ]
    assert render("gemma", dialog) == (
        "<start_of_turn>user\n당신은 은퇴한 60세 개발자입니다.\n\n나 이번주에 퇴직서 내려고 해.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_llama31_persona_dialog_from_seed():
    # Seed 003's Llama row (its table drops the newlines after each header; Llama 3.1 has "\n\n" there).
    dialog = [
        {"role": "system", "content": "당신은 유저의 대답을 듣고 그를 진정시킨 후 대답해주는 모델입니다."},
        {"role": "user", "content": "나 이번주에 퇴직서 내려고 해."},
        {"role": "assistant", "content": "그렇게 충동적으로 결정 내리는 건 좋지않아. 다시 생각해봐"},
        {"role": "user", "content": "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."},
    ]
    assert render("llama31", dialog, bos_token="<|begin_of_text|>") == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        "당신은 유저의 대답을 듣고 그를 진정시킨 후 대답해주는 모델입니다.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n나 이번주에 퇴직서 내려고 해.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n그렇게 충동적으로 결정 내리는 건 좋지않아. 다시 생각해봐<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n더이상 회사에 못있겠어. 나만의 회사를 차릴거야.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama31_tools_tool_call_and_result():
    # Seed 000's Select Star fashion dialog: a tool call, the scripted tool result, then the answer turn.
    dialog = [
        {"role": "user", "content": "궁금한 게 있는데, 코트가 정확히 어떤 건지 알려줘."},
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
    ]
    tool_json = (
        "{\n"
        '    "type": "function",\n'
        '    "function": {\n'
        '        "name": "retrieve_fashion_text_knowledges_with_text_query",\n'
        '        "parameters": {\n'
        '            "type": "object",\n'
        '            "properties": {\n'
        '                "text_query": {\n'
        '                    "type": "string"\n'
        "                }\n"
        "            },\n"
        '            "required": [\n'
        '                "text_query"\n'
        "            ]\n"
        "        }\n"
        "    }\n"
        "}"
    )
    assert render("llama31", dialog, tools=[FASHION_TOOL], bos_token="<|begin_of_text|>") == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
        "Given the following functions, please respond with a JSON for a function call with its proper "
        "arguments that best answers the given prompt.\n\n"
        'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. '
        "Do not use variables.\n\n" + tool_json + "\n\n"
        "궁금한 게 있는데, 코트가 정확히 어떤 건지 알려줘.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "retrieve_fashion_text_knowledges_with_text_query", "parameters": {"text_query": "코트"}}<|eot_id|>'
        "<|start_header_id|>ipython<|end_header_id|>\n\n"
        '[{"title": "코트", "text": "옛 유럽식 정장"}]<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    # Arguments given as an object (vLLM parses them before templating) render the same.
    as_object = json.loads(json.dumps(dialog))
    as_object[1]["tool_calls"][0]["function"]["arguments"] = {"text_query": "코트"}
    assert render("llama31", as_object, tools=[FASHION_TOOL]) == render("llama31", dialog, tools=[FASHION_TOOL])


@pytest.mark.parametrize("name", sorted(templates.TEMPLATES))
def test_transformers_renders_the_same_text(name):
    """apply_chat_template / vLLM use transformers' renderer: the prompt must not depend on who renders."""
    from transformers.utils.chat_template_utils import render_jinja_template

    dialog = [
        {"role": "system", "content": "시스템"},
        {"role": "user", "content": "안녕."},
        {"role": "assistant", "content": "안녕하세요. 무엇을 도와드릴까요?"},
        {"role": "user", "content": "코트가 뭐야?"},
    ]
    tools = [FASHION_TOOL] if name == "llama31" else None
    ours = render(name, dialog, tools=tools, bos_token="<s>", eos_token="</s>")
    rendered, _ = render_jinja_template(
        [dialog],
        tools=tools,
        chat_template=templates.TEMPLATES[name],
        add_generation_prompt=True,
        bos_token="<s>",
        eos_token="</s>",
    )
    assert rendered[0] == ours


def test_template_files_for_vllm_are_current(tmp_path):
    # backends/chat_templates/*.jinja are what `vllm serve --chat-template` reads: same text as the strings.
    for name, source in templates.TEMPLATES.items():
        shipped = templates.TEMPLATE_DIR / f"{name}.jinja"
        assert shipped.read_text(encoding="utf-8") == source, f"regenerate {shipped} with write_template_files()"
        assert render(str(shipped), [{"role": "user", "content": "x"}]) == render(
            name, [{"role": "user", "content": "x"}]
        )
    assert {p.name for p in templates.write_template_files(tmp_path)} == {f"{n}.jinja" for n in templates.TEMPLATES}


def test_unknown_template_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown chat template 'alpaca'"):
        templates.get_template("alpaca")

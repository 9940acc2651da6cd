"""The tiny default models: built locally, load offline, generate, carry the right templates, cache."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from training import tiny

KOREAN = "코트는 옛 유럽식 정장인 프록 코트에서 유래된 의복입니다."
TOOL = "retrieve_fashion_text_knowledges_with_text_query"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL,
            "description": "패션 지식을 검색합니다.",
            "parameters": {
                "type": "object",
                "properties": {"text_query": {"type": "string"}},
                "required": ["text_query"],
            },
        },
    }
]
TOOL_DIALOG = [
    {"role": "system", "content": "당신은 패션 도우미입니다."},
    {"role": "user", "content": "궁금한 게 있는데, 코트가 정확히 어떤 건지 알려줘."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": TOOL, "arguments": '{"text_query": "코트"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": TOOL, "content": '[{"title": "코트", "text": "겉옷의 하나."}]'},
]


def _load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # local_files_only: a hub lookup here would be a bug, not a fallback.
    return AutoTokenizer.from_pretrained(path, local_files_only=True), AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True
    )


def test_models_load_offline_and_generate(tiny_models):
    import torch

    assert set(tiny_models) == {"polyglot-tiny", "llama-tiny"}
    expected = {"polyglot-tiny": "GPTNeoXForCausalLM", "llama-tiny": "LlamaForCausalLM"}
    for name, path in tiny_models.items():
        assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
        tok, model = _load(path)
        assert type(model).__name__ == expected[name]
        assert model.config.hidden_size // model.config.num_attention_heads == 64  # vLLM CPU needs head_dim 64
        ids = tok("### 질문: 코트가 뭐야?\n\n### 답변:", return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        assert out.shape[1] == ids.shape[1] + 8
        assert isinstance(tok.decode(out[0, ids.shape[1] :]), str)
        assert model.generation_config.pad_token_id == tok.pad_token_id


@pytest.mark.parametrize("text", [KOREAN, "줄바꿈\n\n  공백과 English, 숫자 123, 이모지 🙂 까지!"])
def test_tokenizer_round_trips_korean(tiny_models, text):
    for path in tiny_models.values():
        tok, _ = _load(path)
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
        assert tok.decode(tok.encode(text), skip_special_tokens=True) == text


def test_llama_chat_template_renders_tool_dialog(tiny_models):
    tok, _ = _load(tiny_models["llama-tiny"])
    text = tok.apply_chat_template(TOOL_DIALOG, tools=TOOLS, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert TOOL in text and "당신은 패션 도우미입니다." in text
    call = f'{{"name": "{TOOL}", "parameters": {{"text_query": "코트"}}}}'
    assert call in text and json.loads(call)["parameters"] == {"text_query": "코트"}
    assert (
        '<|start_header_id|>ipython<|end_header_id|>\n\n[{"title": "코트", "text": "겉옷의 하나."}]<|eot_id|>' in text
    )
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    # Arguments given as an object render the same as the JSON-string wire form.
    as_object = json.loads(json.dumps(TOOL_DIALOG))
    as_object[2]["tool_calls"][0]["function"]["arguments"] = {"text_query": "코트"}
    assert call in tok.apply_chat_template(as_object, tools=TOOLS, add_generation_prompt=True, tokenize=False)
    ids = tok.apply_chat_template(TOOL_DIALOG, tools=TOOLS, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_llama_chat_template_without_tools(tiny_models):
    tok, _ = _load(tiny_models["llama-tiny"])
    text = tok.apply_chat_template([{"role": "user", "content": "안녕"}], add_generation_prompt=True, tokenize=False)
    assert (
        text
        == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n안녕<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert "Environment: ipython" not in text


def test_polyglot_has_no_chat_template(tiny_models):
    tok, _ = _load(tiny_models["polyglot-tiny"])
    assert tok.chat_template is None
    assert not (tiny_models["polyglot-tiny"] / "chat_template.jinja").exists()
    assert tok.eos_token == "<|endoftext|>"


def test_training_reduced_loss(tiny_models):
    for path in tiny_models.values():
        manifest = tiny.read_manifest(path)
        assert manifest["profile"] == "test" and manifest["steps"] == tiny.PROFILES["test"].max_steps
        assert manifest["final_loss"] < manifest["initial_loss"]


def test_second_call_is_a_cache_hit(tiny_models):
    before = {name: (path / tiny.MANIFEST).stat().st_mtime_ns for name, path in tiny_models.items()}
    again = tiny.ensure_tiny_models(next(iter(tiny_models.values())).parent, "test", progress=False)
    assert again == tiny_models
    assert {name: (path / tiny.MANIFEST).stat().st_mtime_ns for name, path in again.items()} == before


def test_cli_build_reports_cached_models(tiny_models, capsys):
    from arena.commands import models

    parser = argparse.ArgumentParser(prog="arena")
    models.register(parser.add_subparsers(dest="command", required=True))
    cache = next(iter(tiny_models.values())).parent
    args = parser.parse_args(["models", "build", "--profile", "test", "--out", str(cache)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "polyglot-tiny" in out and "llama-tiny" in out


@pytest.mark.slow
def test_changed_corpus_rebuilds_atomically(tmp_path):
    corpus = tmp_path / "mini.jsonl"
    dialog = {
        "id": "d1",
        "eval_set": "mini",
        "turns": [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": KOREAN}],
    }
    corpus.write_text(json.dumps(dialog, ensure_ascii=False) + "\n", encoding="utf-8")
    cache = tmp_path / "cache"
    first = tiny.ensure_tiny_models(cache, "test", corpus_files=[corpus], progress=False)
    hash_before = tiny.read_manifest(first["llama-tiny"])["corpus_hash"]
    (cache / ".llama-tiny.tmp-12345").mkdir()  # what an interrupted build leaves behind
    dialog["turns"][1]["content"] = "크록스는 미국의 신발 브랜드입니다."
    corpus.write_text(json.dumps(dialog, ensure_ascii=False) + "\n", encoding="utf-8")
    second = tiny.ensure_tiny_models(cache, "test", corpus_files=[corpus], progress=False)
    assert tiny.read_manifest(second["llama-tiny"])["corpus_hash"] != hash_before
    assert sorted(p.name for p in cache.iterdir() if p.name != ".lock") == ["llama-tiny", "polyglot-tiny"]

"""Local transformers backend on the tiny models: streaming, LoRA adapters over a shared base,
tool calls parsed from generated text, cancellation, and an event loop that stays responsive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import pytest

from backends.base import CancelToken, Error, Finish, Options, TextDelta, ToolCall
from backends.local import LocalBackend, LocalModel
from backends.textstream import StopMatcher, parse_tool_calls

HELLO = [{"role": "user", "content": "안녕."}]
GREEDY = Options(temperature=0, max_tokens=24)
SEARCH_TOOL = {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
TOOL_PROMPT = [{"role": "user", "content": "크록스는 어느 나라 브랜드야?"}]
TOOL_ANSWER = '{"name": "search", "parameters": {"q": "크록스"}}'


async def collect(backend, messages=HELLO, **kwargs) -> list:
    return [event async for event in backend.stream(messages, **kwargs)]


async def text_of(backend, messages=HELLO, options=GREEDY) -> str:
    finish = await backend.complete(messages, options=options)
    assert isinstance(finish, Finish), finish
    return finish.text


def worker_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"arena-local-{name}"]


@contextlib.contextmanager
def one_torch_thread():
    """Training in a test on 2 shared cores: oversubscribed threads make it ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_random_lora(base_dir, out_dir, seed: int) -> None:
    """A LoRA whose B matrices are random (non-zero), so it changes the base model's output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert b and all(float(p.detach().abs().sum()) > 0 for p in b)
    peft_model.save_pretrained(out_dir)


def train_tool_lora(base_dir, out_dir) -> None:
    """Overfit a LoRA so that the tiny Llama answers TOOL_PROMPT (with or without tools) with a JSON call."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    answer = tok(TOOL_ANSWER + tok.eos_token, add_special_tokens=False)["input_ids"]
    examples = []
    for tools in ([SEARCH_TOOL], None):
        prompt = tok.apply_chat_template(TOOL_PROMPT, tools=tools, add_generation_prompt=True, tokenize=False)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids + answer])
        labels = x.clone()
        labels[0, : len(ids)] = -100
        examples.append((ids, x, labels))

    def learned() -> bool:
        peft_model.eval()
        with torch.no_grad():
            outs = [
                peft_model.generate(torch.tensor([ids]), max_new_tokens=len(answer) + 2, do_sample=False)[0, len(ids) :]
                for ids, _, _ in examples
            ]
        peft_model.train()
        return all(tok.decode(out, skip_special_tokens=True).strip() == TOOL_ANSWER for out in outs)

    with one_torch_thread():
        torch.manual_seed(0)
        # lm_head is trained too: tokens the tiny model never saw have output rows too small to win otherwise.
        config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", modules_to_save=["lm_head"])
        peft_model = get_peft_model(model, config)
        opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
        for step in range(1, 301):
            for _, x, labels in examples:
                peft_model(input_ids=x, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
            if step % 20 == 0 and learned():
                break
        else:
            pytest.fail("could not teach the tiny model a tool call in 300 steps")
    peft_model.save_pretrained(out_dir)


@pytest.fixture(scope="module")
def llama(tiny_models) -> LocalBackend:
    return LocalBackend("llama-tiny", tiny_models["llama-tiny"])


@pytest.mark.parametrize(("name", "template"), [("polyglot-tiny", "koalpaca"), ("llama-tiny", None)])
async def test_streams_text_deltas_then_finish_with_usage_and_timings(tiny_models, name, template):
    backend = LocalBackend(name, tiny_models[name], template=template)
    assert (await backend.health()).ok
    events = await collect(backend, options=Options(max_tokens=40, temperature=0))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    finish = events[-1]
    assert isinstance(finish, Finish), finish
    assert sum(isinstance(e, (Finish, Error)) for e in events) == 1
    assert len(deltas) >= 2, deltas
    assert finish.text == "".join(d.text for d in deltas)
    assert finish.usage.prompt_tokens > 0 and 0 < finish.usage.completion_tokens <= 40
    assert finish.usage.total_tokens == finish.usage.prompt_tokens + finish.usage.completion_tokens
    t = finish.timings
    assert t.ttft_s is not None and 0 < t.ttft_s <= t.total_s and t.tokens_per_s > 0
    assert "loaded on cpu" in (await backend.health()).detail
    if template == "koalpaca":
        assert backend.build_prompt(HELLO) == "### 질문: 안녕.\n\n### 답변:"


async def test_adapters_switch_over_one_base_without_reloading(tiny_models, tmp_path):
    base_dir = tiny_models["llama-tiny"]
    save_random_lora(base_dir, tmp_path / "lora-a", seed=1)
    save_random_lora(base_dir, tmp_path / "lora-b", seed=2)
    shared = LocalModel(base_dir)
    base = LocalBackend("llama-tiny", base=shared)
    lora_a = LocalBackend("llama-tiny+a", base=shared, adapter=tmp_path / "lora-a")
    lora_b = LocalBackend("llama-tiny+b", base=shared, adapter=tmp_path / "lora-b")

    plain = await text_of(base)
    original = shared.model
    embedding = original.get_input_embeddings().weight.data_ptr()
    with_a = await text_of(lora_a)
    with_b = await text_of(lora_b)
    assert with_a != plain and with_b != plain and with_a != with_b
    # Back to the base, then to an adapter again: greedy outputs are reproduced exactly.
    assert await text_of(base) == plain
    assert await text_of(lora_a) == with_a
    # One base in memory, the adapters loaded onto it once each.
    assert shared.model.get_base_model() is original
    assert shared.model.get_base_model().get_input_embeddings().weight.data_ptr() == embedding
    assert sorted(shared.model.peft_config) == ["adapter_0", "adapter_1"]


async def test_tool_call_from_generated_json(tiny_models, tmp_path):
    train_tool_lora(tiny_models["llama-tiny"], tmp_path / "tool-lora")
    backend = LocalBackend("llama-tiny+tools", tiny_models["llama-tiny"], adapter=tmp_path / "tool-lora")

    events = await collect(backend, TOOL_PROMPT, tools=[SEARCH_TOOL], options=Options(max_tokens=40))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("search", {"q": "크록스"})]
    assert not [e for e in events if isinstance(e, TextDelta)]  # the JSON is not shown as text
    finish = events[-1]
    assert finish.finish_reason == "tool_calls" and finish.tool_calls == calls and finish.text == ""

    # Without tools in the request the same answer is plain text, streamed as such.
    events = await collect(backend, TOOL_PROMPT, options=Options(max_tokens=40))
    assert not [e for e in events if isinstance(e, ToolCall)]
    assert events[-1].finish_reason == "stop" and events[-1].text.strip() == TOOL_ANSWER
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1


async def test_cancel_stops_generation_within_a_second(llama):
    long = Options(temperature=0, max_tokens=1500)
    probe = await llama.complete(HELLO, options=Options(temperature=0, max_tokens=200))
    assert probe.finish_reason == "length", "precondition: greedy decoding must not end on its own here"

    cancel = CancelToken()
    events, cancelled_at = [], None
    async for event in llama.stream(HELLO, options=long, cancel=cancel):
        events.append(event)
        if isinstance(event, TextDelta) and cancelled_at is None:
            threading.Timer(0.2, cancel.cancel).start()  # the annotator presses stop (UI thread)
            cancelled_at = time.monotonic() + 0.2
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.finish_reason == "cancelled"
    assert time.monotonic() - cancelled_at < 1.0
    for thread in worker_threads("llama-tiny"):
        thread.join(timeout=1.0)
    assert not worker_threads("llama-tiny"), "the generation thread kept running"
    assert finish.usage.completion_tokens < 1500 // 2


async def test_closing_the_stream_stops_the_worker(llama):
    # The page closed: the consumer stops iterating and the generator is closed.
    stream = llama.stream(HELLO, options=Options(temperature=0, max_tokens=1500))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    closed_at = time.monotonic()
    await stream.aclose()
    for thread in worker_threads("llama-tiny"):
        thread.join(timeout=1.0)
    assert not worker_threads("llama-tiny") and time.monotonic() - closed_at < 1.5


async def test_generation_does_not_block_the_event_loop(llama):
    gaps, last, done = [], time.perf_counter(), False

    async def ticker():
        nonlocal last
        while not done:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await llama.complete(HELLO, options=Options(temperature=0, max_tokens=300))
    done = True
    await tick
    assert len(gaps) > 5 and max(gaps) < 0.25, max(gaps)


async def test_stop_string_cuts_the_answer(llama):
    full = await text_of(llama, options=Options(temperature=0, max_tokens=30))
    stop = full[3:6] if len(full.strip()) >= 6 else full[:1]
    cut = await llama.complete(HELLO, options=Options(temperature=0, max_tokens=30, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert cut.text == full[: full.find(stop)]


async def test_failures_are_error_events(tiny_models, tmp_path):
    missing = LocalBackend("missing", tmp_path / "no-such-model")
    events = await collect(missing)
    assert [type(e) for e in events] == [Error] and events[0].code == "model"
    assert not (await missing.health()).ok

    no_template = LocalBackend("polyglot-raw", tiny_models["polyglot-tiny"])  # GPT-NeoX ships no template
    health = await no_template.health()
    assert not health.ok and "template" in health.detail
    events = await collect(no_template)
    assert isinstance(events[-1], Error) and "template" in events[-1].message

    bad_adapter = LocalBackend("bad", tiny_models["llama-tiny"], adapter=tmp_path / "no-adapter")
    assert not (await bad_adapter.health()).ok
    events = await collect(bad_adapter)
    assert isinstance(events[-1], Error) and events[-1].code == "model"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "search", "parameters": {"q": "코트"}}', [("search", {"q": "코트"})]),
        (
            '<|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": 1}}',
            [("a", {}), ("b", {"x": 1})],
        ),
        # The tool_selection fine-tunes' list form with arguments as a JSON string (seed 000).
        (
            '[{"name": "retrieve", "arguments": "{\\n  \\"text_query\\": \\"우리 태양계의 행성들\\"\\n}"}]',
            [("retrieve", {"text_query": "우리 태양계의 행성들"})],
        ),
        ('```json\n{"name": "search", "arguments": {"q": "x"}}\n```', [("search", {"q": "x"})]),
        ('{"name": "search", "parameters": {"q": "x"}} and then some words', []),
        ('{"title": "코트"}', []),
        ('{"name": "search", "parameters": "not json"}', []),
        ("{not json", []),
    ],
)
def test_parse_tool_calls(text, expected):
    assert [(c.name, json.loads(c.arguments)) for c in parse_tool_calls(text)] == expected


def test_stop_matcher_holds_back_a_possible_prefix():
    matcher = StopMatcher(["### 질문:"])
    assert matcher.feed("답변입니다.\n\n##") == ("답변입니다.\n\n", False)
    assert matcher.feed("# 질") == ("", False)
    assert matcher.feed("문: 다음") == ("", True)
    matcher = StopMatcher(["### 질문:"])
    assert matcher.feed("#1 순위") == ("#1 순위", False)
    assert matcher.feed("##") == ("", False)
    assert matcher.flush() == "##"

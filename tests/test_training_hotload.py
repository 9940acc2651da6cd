"""Trained adapters entering a running arena: Registry.add over the shared base, the researcher-only
HTTP endpoint (and `arena adapters add` against a served app), the Adapters tab's listing, `adapters list`."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from arena.adapters import hotload
from arena.web.api import mount_api
from backends.base import Finish, Options, TextDelta
from backends.registry import build_registry

PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def adapter_run(tiny_models, tmp_path_factory) -> Path:
    """A real (two-step) training run over llama-tiny in an adapters dir."""
    import torch

    from training.config import load_config
    from training.lora import train

    root = tmp_path_factory.mktemp("hot")
    data = root / "dolly.jsonl"
    data.write_text(
        json.dumps({"instruction": "벽지가 뭐야?", "response": "벽에 바르는 종이입니다."}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    cfg = load_config(
        None,
        dict(
            base_model=str(tiny_models["llama-tiny"]),
            data=[str(data)],
            output_dir=str(root / "adapters"),
            run_name="dobae",
            max_steps=2,
            learning_rate=2e-2,
            eval_fraction=0.0,
            progress=False,
            logging_steps=1,
            save_steps=100,
        ),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(cfg)
    finally:
        torch.set_num_threads(threads)


def registry_for(tiny_models, tmp_path: Path):
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: polyglot-tiny, kind: local, path: {tiny_models['polyglot-tiny']}, template: koalpaca}}\n"
        f"  - {{name: llama-tiny, kind: local, path: {tiny_models['llama-tiny']}, options: {{max_tokens: 8, temperature: 0}}}}\n",
        encoding="utf-8",
    )
    return build_registry(config)


def random_neox_lora(base: Path, out: Path) -> Path:
    """A GPT-NeoX LoRA: it cannot load onto the Llama base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=4, target_modules=["query_key_value"])
    )
    model.save_pretrained(out)
    return out


async def test_registry_gains_base_colon_adapter_at_run_time_and_it_streams(tiny_models, adapter_run, tmp_path):
    registry = registry_for(tiny_models, tmp_path)
    base = registry["llama-tiny"]
    await base.load()
    assert (
        hotload.base_for(registry, json.loads((adapter_run / "manifest.json").read_text())["base_model"])
        == "llama-tiny"
    )

    name = await hotload.add_adapter(registry, "llama-tiny", adapter_run)
    assert name == f"llama-tiny:{adapter_run.name}" and registry.names()[-1] == name
    added = registry[name]
    assert added.base is base.base  # the already-loaded weights are shared, not loaded again
    assert str(added.adapter) == str(adapter_run.resolve()) and registry.specs[name].options.max_tokens == 8
    assert hotload.models_using(registry, adapter_run) == [name]
    events = [
        e async for e in added.stream([{"role": "user", "content": "벽지가 뭐야?"}], options=Options(temperature=0))
    ]
    assert isinstance(events[-1], Finish) and events[-1].usage.completion_tokens > 0
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == events[-1].text

    with pytest.raises(hotload.AdapterError, match="already in the arena") as exc:
        await hotload.add_adapter(registry, "llama-tiny", adapter_run)
    assert exc.value.status == 409
    with pytest.raises(hotload.AdapterError, match="no model 'gpt-9'") as exc:
        await hotload.add_adapter(registry, "gpt-9", adapter_run)
    assert exc.value.status == 404
    with pytest.raises(hotload.AdapterError, match="adapter_config.json missing"):
        await hotload.add_adapter(registry, "llama-tiny", tmp_path)
    wrong = random_neox_lora(tiny_models["polyglot-tiny"], tmp_path / "neox-lora")
    with pytest.raises(hotload.AdapterError, match="loading .* failed"):
        await hotload.add_adapter(registry, "llama-tiny", wrong)
    assert "llama-tiny:neox-lora" not in registry  # a failed load is taken out again
    # The base still answers after all that.
    assert isinstance(await base.complete([{"role": "user", "content": "안녕"}]), Finish)


def services_for(tiny_models, tmp_path: Path):
    from arena.store import Store
    from arena.web.services import Services

    store = Store.open(tmp_path / "ratings.db")
    store.add_annotator("lead", PASSWORD, role="researcher")
    store.add_annotator("rater", PASSWORD, role="annotator")
    return Services(store=store, registry=registry_for(tiny_models, tmp_path), dialogs=[])


def test_api_adds_adapters_for_researchers_only(tiny_models, adapter_run, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    services = services_for(tiny_models, tmp_path)
    app = FastAPI()
    mount_api(app, services)
    body = {"path": str(adapter_run), "base": "llama-tiny", "name": "v1"}
    with TestClient(app) as client:
        assert client.post("/api/adapters", json=body).status_code == 401
        assert client.post("/api/adapters", json=body, auth=("lead", "wrong")).status_code == 401
        denied = client.post("/api/adapters", json=body, auth=("rater", PASSWORD))
        assert denied.status_code == 403 and "llama-tiny:v1" not in services.registry
        ok = client.post("/api/adapters", json=body, auth=("lead", PASSWORD))
        assert ok.status_code == 200 and ok.json()["model"] == "llama-tiny:v1"
        assert "llama-tiny:v1" in ok.json()["models"] and "llama-tiny:v1" in services.registry
        again = client.post("/api/adapters", json=body, auth=("lead", PASSWORD))
        assert again.status_code == 409 and "already" in again.json()["detail"]
        missing = client.post("/api/adapters", json={**body, "base": "nope"}, auth=("lead", PASSWORD))
        assert missing.status_code == 404
    # The store records the runtime model like any configured one.
    model_id = services.model_id("llama-tiny:v1")
    assert services.store.get_model(model_id).adapter == str(adapter_run.resolve())
    services.store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(app):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_cli_add_reaches_the_served_arena_and_the_tab_lists_it(tiny_models, adapter_run, tmp_path, monkeypatch, capsys):
    import httpx

    from arena.cli import main
    from arena.web.server import create_app
    from arena.web.ui.adapters_tab import adapter_table
    from training.adapters import find_adapters

    services = services_for(tiny_models, tmp_path)
    monkeypatch.setenv("ARENA_PASSWORD", PASSWORD)
    with served(create_app(services)) as url:
        rc = main(
            ["adapters", "add", "dobae-v1", str(adapter_run), "--base", "llama-tiny", "--url", url, "--user", "lead"]
        )
        assert rc == 0 and "added llama-tiny:dobae-v1" in capsys.readouterr().out
        assert httpx.get(url + "/en/", timeout=30).status_code in (200, 401)  # the UI is still mounted beside the API
        rc = main(["adapters", "add", "x", str(adapter_run), "--base", "llama-tiny", "--url", url, "--user", "rater"])
        assert rc == 2 and "arena adapters: 403" in capsys.readouterr().err
    assert "llama-tiny:dobae-v1" in services.registry
    table = adapter_table(find_adapters(adapter_run.parent), services, "en")
    row = table.iloc[0].to_dict()
    assert row["adapter"] == adapter_run.name and row["in arena as"] == "llama-tiny:dobae-v1" and row["steps"] == 2
    services.store.close()


def test_adapters_list_cli_shows_manifest_facts(adapter_run, capsys, tmp_path):
    from arena.cli import main

    unfinished = adapter_run.parent / "crashed-run" / "checkpoints"
    unfinished.mkdir(parents=True)
    assert main(["adapters", "list", "--dir", str(adapter_run.parent)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith(adapter_run.name))
    assert "ready" in line and "llama-tiny" in line and "dolly.jsonl (dolly)" in line
    assert "crashed-run" in out and "unfinished" in out
    assert main(["adapters", "list", "--dir", str(tmp_path / "none")]) == 0
    assert "no adapters" in capsys.readouterr().out


def test_app_builds_with_the_adapters_tab(tiny_models, tmp_path):
    from arena.web.ui.app import build_app

    services = services_for(tiny_models, tmp_path)
    app = build_app(services, lang="en")
    ids = {getattr(b, "elem_id", None) for b in app.blocks.values()}
    assert {"adapters-load", "adapters-table", "adapters-dir", "replay-models", "live-models"} <= ids
    tab = next(b for b in app.blocks.values() if getattr(b, "id", None) == "adapters")
    assert tab.visible is False  # shown per request, to researchers only
    services.store.close()

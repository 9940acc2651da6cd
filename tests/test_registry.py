"""models YAML -> Registry: validation with named errors, shared local bases, health, `arena models list`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from arena.cli import main as arena
from backends.base import Finish, Options
from backends.local import LocalBackend
from backends.openai import OpenAIBackend
from backends.registry import PROJECT_ROOT, RegistryError, build_registry, load_config
from backends.serve import free_port, transformers_serve
from backends.vllm import VLLMBackend

CONFIGS = PROJECT_ROOT / "configs"


def write(tmp_path: Path, text: str, name: str = "models.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_demo_config_declares_the_two_tiny_models():
    registry = build_registry(CONFIGS / "demo.yaml")
    assert registry.names() == ["polyglot-tiny", "llama-tiny"]
    polyglot, llama = registry["polyglot-tiny"], registry["llama-tiny"]
    assert isinstance(polyglot, LocalBackend) and isinstance(llama, LocalBackend)
    # base_dir: .. makes models/... relative to the project root, not to configs/.
    assert polyglot.base.path == PROJECT_ROOT / "models" / "polyglot-tiny"
    assert polyglot.template == "koalpaca" and llama.template is None
    assert polyglot.default_options.no_repeat_ngram_size == 6 and polyglot.default_options.max_tokens == 128
    assert llama.default_options.temperature == 0


def test_gpu_example_describes_vllm_servers_with_lora_variants():
    registry = build_registry(CONFIGS / "gpu-example.yaml")
    kinds = {name: spec.kind for name, spec in registry.specs.items()}
    assert set(kinds.values()) == {"vllm"}
    assert {"koalpaca-polyglot-12.8b", "ldcc-solar-10.7b", "llama-3.1-8b-instruct"} <= set(kinds)
    lora = registry["llama-8b-tool_selection-v0.51"]
    assert isinstance(lora, VLLMBackend) and lora.model == "tool_selection-v0.51"
    assert lora.base_url == "http://127.0.0.1:8003/v1"
    runtime = registry["llama-8b-tool_selection-v0.58"]
    assert runtime.adapter == "/srv/adapters/tool_selection-v0.58"  # a path on the vLLM host, kept as written
    text = (CONFIGS / "gpu-example.yaml").read_text(encoding="utf-8")
    for template in ("koalpaca", "solar", "llama31"):
        assert f"--chat-template backends/chat_templates/{template}.jinja" in text
        assert (PROJECT_ROOT / "backends" / "chat_templates" / f"{template}.jinja").is_file()
    assert "--tool-call-parser llama3_json" in text and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in text


async def test_local_entries_share_one_base_and_stream(tiny_models, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    llama_dir = tiny_models["llama-tiny"]
    get_peft_model(
        AutoModelForCausalLM.from_pretrained(llama_dir),
        LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False),
    ).save_pretrained(tmp_path / "adapters" / "v1")
    config = write(
        tmp_path,
        f"""
        defaults:
          options: {{max_tokens: 8, temperature: 0}}
        models:
          - name: llama
            kind: local
            path: {llama_dir}
          - name: llama+v1
            kind: local
            path: {llama_dir}
            adapter: adapters/v1          # relative to the YAML file's directory
            options: {{max_tokens: 4}}
          - name: polyglot
            kind: local
            path: {tiny_models["polyglot-tiny"]}
            template: koalpaca
        """,
    )
    registry = build_registry(config)
    assert registry["llama"].base is registry["llama+v1"].base
    assert registry["polyglot"].base is not registry["llama"].base
    assert registry["llama+v1"].adapter == tmp_path / "adapters" / "v1"
    assert registry["llama+v1"].default_options == Options(max_tokens=4, temperature=0)
    health = await registry.health()
    assert all(h.ok for h in health.values()), health
    finish = await registry["llama+v1"].complete([{"role": "user", "content": "안녕."}])
    assert isinstance(finish, Finish) and finish.usage.completion_tokens <= 4


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "models:\n  - {name: a, kind: local, path: x, colour: red}\n",
            "models[0] (a): colour: Extra inputs are not permitted",
        ),
        ("models:\n  - {name: a, kind: local}\n", "models[0] (a): kind local needs `path`"),
        ("models:\n  - {name: a, kind: openai}\n", "kind openai needs `base_url`"),
        ("models:\n  - {name: a, kind: openai, base_url: 'http://h', adapter: /x}\n", "needs kind vllm"),
        (
            "models:\n  - {name: a, kind: tgi, base_url: 'http://h'}\n",
            "models[0] (a): kind: Input should be 'local', 'openai' or 'vllm'",
        ),
        ("models:\n  - {name: a, kind: local, path: x, options: {temperature: 5}}\n", "options.temperature"),
        ("models:\n  - {name: a, kind: local, path: x, options: {top_k: 5}}\n", "options.top_k: Extra inputs"),
        ("models:\n  - {name: a, kind: local, path: x}\n  - {name: a, kind: local, path: y}\n", "'a' appears twice"),
        ("models: [\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_invalid_files_name_the_entry_and_field(tmp_path, yaml_text, message):
    path = write(tmp_path, yaml_text)
    with pytest.raises(RegistryError) as err:
        load_config(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file_is_a_registry_error(tmp_path):
    with pytest.raises(RegistryError, match="cannot read"):
        build_registry(tmp_path / "nope.yaml")


def test_server_entries_and_api_key_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_TEST_KEY", "sk-test")
    config = write(
        tmp_path,
        """
        defaults:
          timeouts: {connect: 2, first_token: 30}
        models:
          - name: remote
            kind: openai
            base_url: http://127.0.0.1:9/v1
            served_model_name: served-name
            api_key_env: ARENA_TEST_KEY
            timeouts: {read: 7}
            extra_body: {repetition_penalty: 1.1}
        """,
    )
    backend = build_registry(config)["remote"]
    assert isinstance(backend, OpenAIBackend) and not isinstance(backend, VLLMBackend)
    assert backend.model == "served-name" and backend._headers == {"Authorization": "Bearer sk-test"}
    assert (backend.timeouts.connect, backend.timeouts.first_token, backend.timeouts.read) == (2, 30, 7)
    body, _ = backend.request_body([{"role": "user", "content": "x"}], None, Options(max_tokens=5))
    assert body["repetition_penalty"] == 1.1 and body["model"] == "served-name" and body["max_tokens"] == 5
    with pytest.raises(KeyError, match="no model 'other'"):
        build_registry(config)["other"]


@pytest.mark.slow
def test_models_list_cli_with_a_live_server_a_dead_one_and_local_models(tiny_models, tmp_path, capsys):
    with transformers_serve(tiny_models["llama-tiny"]) as server:
        config = write(
            tmp_path,
            f"""
            models:
              - name: polyglot-tiny
                kind: local
                path: {tiny_models["polyglot-tiny"]}
                template: koalpaca
              - name: served-llama
                kind: openai
                base_url: {server.base_url}
                served_model_name: {server.model}
              - name: dead-server
                kind: vllm
                base_url: http://127.0.0.1:{free_port()}/v1
                timeouts: {{connect: 2}}
            """,
        )
        code = arena(["models", "list", "--config", str(config)])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert out.splitlines()[0].split() == ["NAME", "KIND", "TARGET", "HEALTH"]
    assert "healthy" in lines["polyglot-tiny"] and "local" in lines["polyglot-tiny"]
    assert "healthy" in lines["served-llama"] and server.base_url in lines["served-llama"]
    assert "error: cannot reach" in lines["dead-server"]
    assert code == 1  # one model is down


def test_models_list_cli_reports_an_invalid_file(tmp_path, capsys):
    path = write(tmp_path, "models:\n  - {name: a, kind: local}\n")
    assert arena(["models", "list", "--config", str(path)]) == 2  # a user's mistake
    assert "kind local needs `path`" in capsys.readouterr().err

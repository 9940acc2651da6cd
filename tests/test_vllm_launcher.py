"""The vLLM launcher without vLLM: `launch:` validation, serve command lines, process start/stop with a
stand-in server process, /metrics parsing, and runtime LoRA load/unload against a scripted server.

The real-vLLM counterpart is tests/test_vllm_real.py (needs .venv-vllm).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from arena.cli import main
from backends import launcher
from backends.registry import PROJECT_ROOT, RegistryError, build_registry, load_config
from backends.serve import free_port
from backends.templates import KOALPACA
from backends.vllm import VLLMBackend, VLLMError


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def commands(path: Path) -> dict[str, list[str]]:
    config, base = load_config(path)
    return {p.name: p.command for p in launcher.plans(config, base, path.parent / "run")}


# ----------------------------------------------------------------------------------- command lines


def test_gpu_example_builds_the_documented_serve_commands():
    config, base = load_config(PROJECT_ROOT / "configs" / "gpu-example.yaml")
    plans = {p.name: p for p in launcher.plans(config, base)}
    assert set(plans) == {"koalpaca-polyglot-12.8b", "ldcc-solar-10.7b", "llama-3.1-8b-instruct"}
    llama = plans["llama-3.1-8b-instruct"]
    assert llama.command[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]  # a hub id stays as written
    line = " ".join(llama.command)
    for part in (
        "--host 127.0.0.1 --port 8003",
        "--served-model-name llama-3.1-8b-instruct",
        "--dtype bfloat16 --max-model-len 8192 --gpu-memory-utilization 0.3",
        "--enable-lora --max-loras 4 --max-lora-rank 64 --max-cpu-loras 8",
        "--lora-modules tool_selection-v0.41=/srv/adapters/tool_selection-v0.41 "
        "tool_selection-v0.51=/srv/adapters/tool_selection-v0.51",
        f"--chat-template {PROJECT_ROOT}/backends/chat_templates/llama31.jinja",
        "--enable-auto-tool-choice --tool-call-parser llama3_json",
        "--enable-per-request-metrics",
    ):
        assert part in line
    assert llama.env == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    koalpaca = plans["koalpaca-polyglot-12.8b"]
    assert "--enable-lora" not in koalpaca.command and koalpaca.env == {}
    assert koalpaca.command[koalpaca.command.index("--chat-template") + 1].endswith("chat_templates/koalpaca.jinja")
    assert llama.log.name == "llama-3.1-8b-instruct.log" and llama.log.parent == launcher.DEFAULT_RUN_DIR


def test_python_entrypoint_keeps_the_venv_path_and_resolves_local_paths(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "lora").mkdir()
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)  # a venv's python is a symlink out of the venv
    (tmp_path / "my.jinja").write_text("{{ messages }}", encoding="utf-8")  # a template file must exist
    path = write_config(
        tmp_path,
        """
        models:
          - name: tiny
            kind: vllm
            base_url: http://127.0.0.1:18000
            template: my.jinja
            launch:
              model: weights
              python: venv/bin/python
              dtype: float32
              max_model_len: 512
              max_lora_rank: 8
              lora_modules: {first: lora}
              model_impl: transformers
              per_request_metrics: false
              env: {VLLM_CPU_KVCACHE_SPACE: "1"}
              extra_args: [--enforce-eager]
          - name: tiny:first
            kind: vllm
            base_url: http://127.0.0.1:18000/v1
            served_model_name: first
    """,
    )
    cmd = commands(path)["tiny"]
    assert cmd[:5] == [
        str(venv_bin / "python"),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tmp_path / "weights"),
    ]
    assert cmd[cmd.index("--port") + 1] == "18000" and "--served-model-name" in cmd and "tiny" in cmd
    assert cmd[cmd.index("--lora-modules") + 1] == f"first={tmp_path / 'lora'}"
    assert cmd[cmd.index("--chat-template") + 1] == str(tmp_path / "my.jinja")
    assert cmd[cmd.index("--model-impl") + 1] == "transformers"
    assert "--enable-per-request-metrics" not in cmd and cmd[-1] == "--enforce-eager"
    config, base = load_config(path)
    plan = launcher.plan(config.models[0], base, tmp_path / "run")
    assert plan.env == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "1"}
    assert plan.base_url == "http://127.0.0.1:18000/v1" and plan.root_url == "http://127.0.0.1:18000/"
    assert plan.shell().startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True VLLM_CPU_KVCACHE_SPACE=1 ")
    with pytest.raises(KeyError, match="has no `launch:` section"):
        launcher.plans(config, base, names=["tiny:first"])


def test_remote_host_binds_all_interfaces_unless_told(tmp_path):
    path = write_config(
        tmp_path,
        """
        models:
          - {name: a, kind: vllm, base_url: "http://gpu-box:8001/v1", launch: {model: org/a}}
          - {name: b, kind: vllm, base_url: "http://gpu-box:8002/v1", launch: {model: org/b, host: 10.0.0.5}}
    """,
    )
    cmds = commands(path)
    assert cmds["a"][cmds["a"].index("--host") + 1] == "0.0.0.0"
    assert cmds["b"][cmds["b"].index("--host") + 1] == "10.0.0.5"


def test_launched_entry_does_not_send_its_template_per_request(tmp_path):
    # vLLM refuses request templates without --trust-request-chat-template; the launch passes --chat-template.
    path = write_config(
        tmp_path,
        """
        models:
          - {name: a, kind: vllm, base_url: "http://127.0.0.1:8001/v1", template: koalpaca, launch: {model: org/a}}
          - {name: b, kind: vllm, base_url: "http://elsewhere:8001/v1", template: koalpaca}
    """,
    )
    registry = build_registry(path)
    assert "chat_template" not in registry["a"].extra_body
    assert registry["b"].extra_body["chat_template"] == KOALPACA


@pytest.mark.parametrize(
    "entry, message",
    [
        ('{name: a, kind: openai, base_url: "http://h:1/v1", launch: {model: m}}', "`launch` needs kind vllm"),
        ('{name: a, kind: vllm, base_url: "http://h/v1", launch: {model: m}}', "explicit port"),
        ('{name: a, kind: vllm, base_url: "http://h:1/v1", adapter: /x, launch: {model: m}}', "starts a base model"),
        (
            '{name: a, kind: vllm, base_url: "http://h:1/v1", launch: {model: m, max_lora_rank: 12}}',
            "max_lora_rank must be one of",
        ),
        (
            '{name: a, kind: vllm, base_url: "http://h:1/v1", launch: {model: m, max_loras: 4, max_cpu_loras: 2}}',
            "max_cpu_loras must be >= max_loras",
        ),
        (
            '{name: a, kind: vllm, base_url: "http://h:1/v1", launch: {model: m, enable_lora: false, max_loras: 2}}',
            "enable_lora: false",
        ),
        (
            '{name: a, kind: vllm, base_url: "http://h:1/v1", launch: {model: m, gpu_mem: 0.5}}',
            "launch.gpu_mem: Extra inputs are not permitted",
        ),
        ('{name: a, kind: vllm, base_url: "http://h:1/v1", launch: {}}', "launch.model: Field required"),
    ],
)
def test_bad_launch_sections_are_rejected_with_the_entry_named(tmp_path, entry, message):
    path = write_config(tmp_path, f"models:\n  - {entry}\n")
    with pytest.raises(RegistryError) as info:
        load_config(path)
    assert "models[0] (a)" in str(info.value) and message in str(info.value)


def test_up_dry_run_prints_commands_and_unknown_names_fail(tmp_path, capsys):
    path = write_config(
        tmp_path,
        """
        models:
          - {name: a, kind: vllm, base_url: "http://127.0.0.1:8001/v1", launch: {model: org/a, max_loras: 2}}
    """,
    )
    assert main(["models", "up", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# a -> http://127.0.0.1:8001/v1" in out
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve org/a --host 127.0.0.1 --port 8001" in out
    assert main(["models", "up", "--config", str(path), "nope"]) == 2
    assert "'nope' has no `launch:` section" in capsys.readouterr().err


# ------------------------------------------------------------------------------ processes (stand-in)

# A stand-in for `vllm serve`: it serves /health after a short delay and, like vLLM, has a child
# process (the engine) in its process group.
STAND_IN = """
import http.server, subprocess, sys, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
if delay < 0:
    print("stand-in: cannot load model", flush=True); sys.exit(3)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
time.sleep(delay)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
print("stand-in: serving", flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def stand_in_plan(tmp_path: Path, delay: float) -> launcher.ServerPlan:
    script = tmp_path / "fake_vllm_server.py"
    script.write_text(STAND_IN, encoding="utf-8")
    port = free_port()
    return launcher.ServerPlan(
        name="stand-in",
        base_url=f"http://127.0.0.1:{port}/v1",
        command=[sys.executable, str(script), str(port), str(delay)],
        env={"STAND_IN": "1"},
        log=tmp_path / "run" / "stand-in.log",
        state=tmp_path / "run" / "stand-in.json",
        startup_timeout=30,
    )


def group_members(pgid: int) -> list[int]:
    return [p for p in launcher._group_members(pgid) if launcher._state(p) not in ("Z", None)]


def test_start_wait_and_stop_the_whole_process_group(tmp_path):
    plan = stand_in_plan(tmp_path, delay=0.5)
    pid = launcher.start(plan)
    try:
        assert json.loads(plan.state.read_text())["pid"] == pid
        assert launcher.wait_healthy(plan, pid) >= 0
        assert launcher.running_pid(plan) == pid
        assert len(group_members(pid)) == 2  # the server and its child
        assert "stand-in: serving" in launcher.log_tail(plan)
        assert "STAND_IN=1 " in plan.log.read_text()  # the log opens with the command line
    finally:
        assert launcher.stop(plan, timeout=10) == pid
    assert group_members(pid) == [] and not plan.state.exists()
    assert launcher.running_pid(plan) is None and launcher.stop(plan) is None


def test_a_server_that_dies_during_start_up_reports_its_log(tmp_path):
    plan = stand_in_plan(tmp_path, delay=-1)
    pid = launcher.start(plan)
    with pytest.raises(launcher.LaunchError, match="exited during start-up") as info:
        launcher.wait_healthy(plan, pid)
    assert "stand-in: cannot load model" in str(info.value)
    launcher.stop(plan)


def test_start_up_timeout_stops_nothing_by_itself_but_launched_does(tmp_path):
    plan = stand_in_plan(tmp_path, delay=60)
    with pytest.raises(launcher.LaunchError, match="no healthy /health after 1 s"):
        with launcher.launched(plan, timeout=1):
            pass
    assert launcher.running_pid(plan) is None


def test_a_recycled_pid_is_not_taken_for_the_server(tmp_path):
    plan = stand_in_plan(tmp_path, delay=0)
    plan.state.parent.mkdir(parents=True)
    # pytest's own pid, alive, but it started at another time than the server recorded in the state file.
    plan.state.write_text(json.dumps({"pid": os.getpid(), "start_ticks": launcher._start_ticks(os.getpid()) - 1}))
    assert launcher.running_pid(plan) is None
    assert launcher.stop(plan) is None and not plan.state.exists()


# --------------------------------------------------------------------------------- status and LoRA

METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="base"} 2.0
vllm:num_requests_running{engine="1",model_name="base"} 1.0
vllm:num_requests_waiting{engine="0",model_name="base"} 4.0
vllm:kv_cache_usage_perc{engine="0",model_name="base"} 0.25
vllm:prompt_tokens_total{engine="0",model_name="base"} 1.5e3
"""


def test_parse_metrics_sums_label_sets():
    values = launcher.parse_metrics(METRICS)
    assert values["vllm:num_requests_running"] == 3.0
    assert values["vllm:kv_cache_usage_perc"] == 0.25 and values["vllm:prompt_tokens_total"] == 1500.0


class ScriptedVLLM(BaseHTTPRequestHandler):
    """vLLM 0.32's management endpoints: plain-text successes, {"error": {...}} failures."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def reply(self, status: int, body: str, ctype: str = "application/json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, kind: str, message: str) -> None:
        self.reply(status, json.dumps({"error": {"message": message, "type": kind, "param": None, "code": status}}))

    def do_GET(self) -> None:
        if self.path == "/health":
            self.reply(200, "", "text/plain")
        elif self.path == "/metrics":
            self.reply(200, METRICS, "text/plain; version=0.0.4")
        else:
            data = [{"id": "base", "parent": None, "root": "/m/base"}]
            data += [{"id": n, "parent": "base", "root": p} for n, p in self.server.loras.items()]
            self.reply(200, json.dumps({"object": "list", "data": data}))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = body.get("lora_name")
        if self.path == "/v1/unload_lora_adapter":
            if name not in self.server.loras:
                return self.error(404, "NotFoundError", f"The lora adapter '{name}' cannot be found.")
            del self.server.loras[name]
            return self.reply(200, f"Success: LoRA adapter '{name}' removed successfully.", "text/plain")
        if name in self.server.loras:
            return self.error(
                400,
                "InvalidUserInput",
                f"The lora adapter '{name}' has already been loaded. If you want "
                "to load the adapter in place, set 'load_inplace' to True.",
            )
        if body["lora_path"].endswith("r16"):
            return self.error(
                500,
                "InternalServerError",
                "Call to add_lora method failed: Worker failed with error "
                "'LoRA rank 16 is greater than max_lora_rank 8.', please check the stack trace above for the root cause",
            )
        self.server.loras[name] = body["lora_path"]
        self.reply(200, f"Success: LoRA adapter '{name}' added successfully.", "text/plain")


@pytest.fixture
def scripted() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedVLLM)
    server.daemon_threads = True
    server.loras = {}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_load_and_unload_adapters_with_errors_verbatim(scripted):
    base = VLLMBackend("llama", f"http://127.0.0.1:{scripted.server_address[1]}/v1", "base", api_key="k")
    lora = await base.load_adapter("v1", "/a/v1")
    assert lora.name == "llama:v1" and lora.model == "v1" and lora.adapter == "/a/v1"
    assert lora.base_url == base.base_url and lora._headers == {"Authorization": "Bearer k"}
    assert [a["id"] for a in await base.adapters()] == ["v1"]
    with pytest.raises(VLLMError) as taken:
        await base.load_adapter("v1", "/a/v1")
    assert taken.value.status == 400 and taken.value.message.startswith(
        "The lora adapter 'v1' has already been loaded."
    )
    with pytest.raises(VLLMError) as rank:
        await base.load_adapter("big", "/a/r16")
    assert rank.value.status == 500 and "'LoRA rank 16 is greater than max_lora_rank 8.'" in str(rank.value)
    assert await base.unload_adapter("v1") == "Success: LoRA adapter 'v1' removed successfully."
    with pytest.raises(VLLMError, match=r"^HTTP 404: The lora adapter 'v1' cannot be found\.$"):
        await base.unload_adapter("v1")
    assert await base.adapters() == []
    await base.aclose()


async def test_management_call_to_a_dead_server_is_a_vllm_error():
    backend = VLLMBackend("x", f"http://127.0.0.1:{free_port()}/v1", "x")
    with pytest.raises(VLLMError, match="cannot reach") as info:
        await backend.load_adapter("a", "/a")
    assert info.value.status is None
    await backend.aclose()


async def test_probe_reads_health_models_and_load(scripted):
    scripted.loras["v1"] = "/a/v1"
    status = await launcher.probe(f"http://127.0.0.1:{scripted.server_address[1]}")
    assert status.healthy and status.bases == ["base"] and status.adapters == ["v1"]
    assert (status.running, status.waiting, status.kv_cache_usage) == (3.0, 4.0, 0.25)
    down = await launcher.probe(f"http://127.0.0.1:{free_port()}/v1")
    assert not down.healthy and "cannot reach" in down.detail


def test_status_command_groups_entries_by_server(tmp_path, scripted, capsys):
    port = scripted.server_address[1]
    scripted.loras["v1"] = "/a/v1"
    path = write_config(
        tmp_path,
        f"""
        models:
          - {{name: llama, kind: vllm, base_url: "http://127.0.0.1:{port}/v1", served_model_name: base, launch: {{model: m}}}}
          - {{name: llama-v1, kind: vllm, base_url: "http://127.0.0.1:{port}", served_model_name: v1}}
          - {{name: far, kind: vllm, base_url: "http://127.0.0.1:{free_port()}/v1"}}
    """,
    )
    assert main(["models", "status", "--config", str(path), "--run-dir", str(tmp_path / "run"), "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [r["launched_by"] for r in rows] == ["llama", "external"]
    first = rows[0]
    assert first["healthy"] and first["pid"] is None and first["arena_models"] == ["llama", "llama-v1"]
    assert first["models"] == ["base"] and first["adapters"] == ["v1 (parent base)"]
    assert (first["running"], first["waiting"], first["kv_cache_pct"]) == (3.0, 4.0, 25.0)
    assert not rows[1]["healthy"]
    main(["models", "status", "--config", str(path), "--run-dir", str(tmp_path / "run")])
    table = capsys.readouterr().out
    assert "healthy" in table and "v1 (parent base)" in table and "cannot reach" in table

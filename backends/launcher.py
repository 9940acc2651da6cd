"""Start, watch and stop the vLLM servers that models.yaml entries declare with a ``launch:`` section.

Each launched server runs detached (its own session, so ``arena models up`` can exit and
``arena models down`` can stop the whole process tree later), logs to ``<run_dir>/<name>.log`` and is
remembered by ``<run_dir>/<name>.json`` (pid, command, URL). Entries without ``launch`` point at servers
started elsewhere; ``probe`` reads the status of either kind over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from backends.openai import normalize_base_url
from backends.registry import PROJECT_ROOT, LaunchSpec, ModelSpec, RegistryConfig
from backends.templates import TEMPLATE_DIR, TEMPLATES

DEFAULT_RUN_DIR = PROJECT_ROOT / "logs" / "vllm"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Module of the OpenAI server; `python -m` works where the `vllm` script cannot find its dist metadata.
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


class LaunchError(RuntimeError):
    """A server that did not start, or could not be stopped; the message carries the log's tail."""


@dataclass(frozen=True)
class ServerPlan:
    """Everything needed to start one server and find it again: command, environment, files."""

    name: str
    base_url: str
    command: list[str]
    env: dict[str, str]
    log: Path
    state: Path
    startup_timeout: float

    @property
    def root_url(self) -> str:
        """The server's root (``/health``, ``/metrics`` and the LoRA endpoints live here)."""
        return str(httpx.URL(self.base_url).copy_with(path="/"))

    def shell(self) -> str:
        """The command as one shell line with its environment, for people and logs."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (env + " " if env else "") + shlex.join(self.command)


def _path_or_id(value: str, base: Path) -> str:
    """A path resolved against ``base`` when it exists there; otherwise as given (a hub id)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    candidate = base / path
    return os.path.abspath(candidate) if candidate.exists() else value


def chat_template_file(template: str, base: Path) -> str:
    """The ``--chat-template`` file for a template name (backends/chat_templates/NAME.jinja) or path."""
    if template in TEMPLATES:
        return str(TEMPLATE_DIR / f"{template}.jinja")
    path = Path(template).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def serve_command(spec: ModelSpec, base: Path) -> list[str]:
    """The ``vllm serve`` (or ``python -m ...api_server``) command line for an entry with ``launch``."""
    launch = _launch(spec)
    url = httpx.URL(spec.base_url or "")
    model = _path_or_id(launch.model, base)
    if launch.python:
        # abspath, not resolve(): a venv's python is a symlink and must keep its venv path.
        python = os.path.abspath(base / Path(launch.python).expanduser()) if "/" in launch.python else launch.python
        cmd = [python, "-m", API_SERVER_MODULE, "--model", model]
    else:
        cmd = [launch.executable, "serve", model]
    host = launch.host or (url.host if url.host in LOOPBACK else "0.0.0.0")
    cmd += ["--host", host, "--port", str(url.port)]
    cmd += ["--served-model-name", spec.served_model_name or spec.name]
    for flag, value in (
        ("--dtype", launch.dtype),
        ("--max-model-len", launch.max_model_len),
        ("--tensor-parallel-size", launch.tensor_parallel_size),
        ("--gpu-memory-utilization", launch.gpu_memory_utilization),
        ("--model-impl", launch.model_impl),
    ):
        if value is not None:
            cmd += [flag, str(value)]
    if launch.lora:
        cmd.append("--enable-lora")
        for flag, value in (
            ("--max-loras", launch.max_loras),
            ("--max-lora-rank", launch.max_lora_rank),
            ("--max-cpu-loras", launch.max_cpu_loras),
        ):
            if value is not None:
                cmd += [flag, str(value)]
        if launch.lora_modules:
            cmd.append("--lora-modules")
            cmd += [f"{name}={_path_or_id(path, base)}" for name, path in launch.lora_modules.items()]
    if spec.template:
        cmd += ["--chat-template", chat_template_file(spec.template, base)]
    if launch.tool_call_parser:
        cmd += ["--enable-auto-tool-choice", "--tool-call-parser", launch.tool_call_parser]
    if launch.per_request_metrics:
        cmd.append("--enable-per-request-metrics")
    return cmd + list(launch.extra_args)


def serve_env(launch: LaunchSpec) -> dict[str, str]:
    """Environment added for the server: runtime LoRA loading on when LoRA is, then ``launch.env``."""
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"} if launch.lora else {}
    return {**env, **launch.env}


def plan(spec: ModelSpec, base: Path, run_dir: Path = DEFAULT_RUN_DIR) -> ServerPlan:
    """The launch plan of one entry (it must have ``launch``)."""
    launch = _launch(spec)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.name)
    return ServerPlan(
        name=spec.name,
        base_url=normalize_base_url(spec.base_url or ""),
        command=serve_command(spec, base),
        env=serve_env(launch),
        log=Path(run_dir) / f"{stem}.log",
        state=Path(run_dir) / f"{stem}.json",
        startup_timeout=launch.startup_timeout,
    )


def plans(
    config: RegistryConfig, base: Path, run_dir: Path = DEFAULT_RUN_DIR, names: list[str] | None = None
) -> list[ServerPlan]:
    """Plans for the entries with ``launch`` (all, or those in ``names``; unknown names raise KeyError)."""
    launchable = {s.name: s for s in config.models if s.launch is not None}
    for name in names or []:
        if name not in launchable:
            raise KeyError(f"{name!r} has no `launch:` section; launchable: {', '.join(launchable) or 'none'}")
    return [plan(s, base, run_dir) for n, s in launchable.items() if not names or n in names]


def _launch(spec: ModelSpec) -> LaunchSpec:
    if spec.launch is None:
        raise ValueError(f"model {spec.name!r} has no `launch:` section")
    return spec.launch


# ------------------------------------------------------------------------------------------ processes


def start(plan: ServerPlan) -> int:
    """Start the server detached, output appended to ``plan.log``; its pid (also saved to ``plan.state``)."""
    plan.log.parent.mkdir(parents=True, exist_ok=True)
    with plan.log.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {plan.shell()}\n".encode())
        log.flush()
        process = subprocess.Popen(
            plan.command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **plan.env},
            start_new_session=True,  # its own process group: stop() reaches the engine workers too
        )
    state = {
        "pid": process.pid,
        "start_ticks": _start_ticks(process.pid),  # tells our server from a later process given the same pid
        "base_url": plan.base_url,
        "command": plan.command,
        "started_at": time.time(),
    }
    plan.state.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return process.pid


def running_pid(plan: ServerPlan) -> int | None:
    """The pid of this plan's server if it is still running (and still a vLLM process)."""
    try:
        state = json.loads(plan.state.read_text(encoding="utf-8"))
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if _alive(pid, state.get("start_ticks")) else None


def _alive(pid: int, start_ticks: int | None = None) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _state(pid) == "Z":  # exited; its parent has not collected it yet
        return False
    # A recycled pid must not be mistaken for (or killed as) our server.
    return start_ticks is None or _start_ticks(pid) in (None, start_ticks)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None off Linux."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _reap(pid: int) -> None:
    """Collect the exit status if the server is our own child (else it would linger as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(plan: ServerPlan, lines: int = 40) -> str:
    """The last lines of the server's log (where vLLM explains why it did not start)."""
    try:
        text = plan.log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def wait_healthy(plan: ServerPlan, pid: int | None = None, timeout: float | None = None) -> float:
    """Poll ``/health`` until it answers 200; seconds waited. Raises LaunchError if the process dies or time runs out."""
    timeout = plan.startup_timeout if timeout is None else timeout
    started = time.monotonic()
    health = plan.root_url.rstrip("/") + "/health"
    with httpx.Client(timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(health).status_code == 200:
                    return time.monotonic() - started
            if pid is not None and not _alive(pid):
                raise LaunchError(f"{plan.name}: the server exited during start-up; {plan.log}:\n{log_tail(plan)}")
            if time.monotonic() - started > timeout:
                raise LaunchError(f"{plan.name}: no healthy /health after {timeout:g} s; {plan.log}:\n{log_tail(plan)}")
            time.sleep(1.0)


def stop(plan: ServerPlan, timeout: float = 30.0) -> int | None:
    """Stop the server (SIGTERM to its process group, SIGKILL after ``timeout``); the pid stopped or None."""
    pid = running_pid(plan)
    if pid is None:
        plan.state.unlink(missing_ok=True)
        return None
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pid):
            raise LaunchError(f"{plan.name}: process group {pid} survived SIGKILL")
    plan.state.unlink(missing_ok=True)
    return pid


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # start_new_session made the server its group's leader: pgid == pid


def _group_alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left (children of ours that are not reaped yet) count as gone.
    return any(_state(p) not in ("Z", None) for p in _group_members(pid))


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = entry.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                members.append(int(entry.parent.name))
    return members


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@contextlib.contextmanager
def launched(plan: ServerPlan, timeout: float | None = None) -> Iterator[int]:
    """Start a server, wait until healthy, yield its pid, and stop it on exit (also on failure)."""
    pid = start(plan)
    try:
        wait_healthy(plan, pid, timeout)
        yield pid
    finally:
        stop(plan)


# ------------------------------------------------------------------------------------------- status


@dataclass
class ServerStatus:
    """What a server says about itself: health, models with their parents, and its load."""

    base_url: str
    healthy: bool
    detail: str = ""
    models: list[dict[str, Any]] = field(default_factory=list)
    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None  # fraction 0..1

    @property
    def adapters(self) -> list[str]:
        """Ids of the LoRA adapters (models with a parent)."""
        return [m["id"] for m in self.models if m.get("parent")]

    @property
    def bases(self) -> list[str]:
        return [m["id"] for m in self.models if not m.get("parent")]


# Prometheus gauges vLLM exports (v1 engine); summed over label sets (engines, model names).
METRICS = {
    "running": "vllm:num_requests_running",
    "waiting": "vllm:num_requests_waiting",
    "kv_cache_usage": "vllm:kv_cache_usage_perc",
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus exposition text -> ``{metric name: sum over its label sets}``."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        with contextlib.suppress(ValueError):
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(3))
    return totals


async def probe(base_url: str, timeout: float = 10.0) -> ServerStatus:
    """Health, served models and load of one server; never raises (an unreachable server is unhealthy)."""
    base_url = normalize_base_url(base_url)
    root = httpx.URL(base_url).copy_with(path="/")
    status = ServerStatus(base_url=base_url, healthy=False)
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            health = await client.get(root.join("/health"))
        except httpx.HTTPError as exc:
            status.detail = f"cannot reach {root}: {type(exc).__name__}: {exc}"
            return status
        status.healthy = health.status_code == 200
        status.detail = "healthy" if status.healthy else f"/health answered HTTP {health.status_code}"
        with contextlib.suppress(httpx.HTTPError, ValueError):
            models = await client.get(f"{base_url}/models")
            if models.status_code == 200:
                status.models = [
                    {"id": m.get("id"), "parent": m.get("parent"), "root": m.get("root")}
                    for m in models.json().get("data", [])
                ]
        with contextlib.suppress(httpx.HTTPError):
            metrics = await client.get(root.join("/metrics"))
            if metrics.status_code == 200:
                values = parse_metrics(metrics.text)
                for attr, name in METRICS.items():
                    setattr(status, attr, values.get(name))
    return status


async def probe_all(base_urls: list[str], timeout: float = 10.0) -> dict[str, ServerStatus]:
    """``probe`` for several servers at once, by normalised URL."""
    urls = list(dict.fromkeys(normalize_base_url(u) for u in base_urls))
    results = await asyncio.gather(*(probe(u, timeout) for u in urls))
    return dict(zip(urls, results))

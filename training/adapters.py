"""Adapter directories: find them (with their manifests) and merge one into a new full model directory."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.lora import CHECKPOINTS, MANIFEST, PROJECT_ROOT, git_state

DEFAULT_ADAPTERS_DIR = PROJECT_ROOT / "adapters"  # git-ignored: trained runs land here
DEFAULT_MERGED_DIR = PROJECT_ROOT / "models"  # full models live here (git-ignored too)


@dataclass
class AdapterInfo:
    """One adapter directory: ``complete`` once it holds adapter weights; ``manifest`` when trained here."""

    name: str
    path: Path
    complete: bool
    manifest: dict[str, Any] = field(default_factory=dict)
    adapter_config: dict[str, Any] = field(default_factory=dict)

    @property
    def base_model(self) -> str | None:
        """The base model path the adapter was trained on (manifest first, then adapter_config.json)."""
        return self.manifest.get("base_model") or self.adapter_config.get("base_model_name_or_path")

    @property
    def template(self) -> str | None:
        return self.manifest.get("template")

    def summary(self) -> dict[str, Any]:
        """The row `arena adapters list` and the Adapters tab show."""
        m = self.manifest
        return {
            "name": self.name,
            "status": "ready" if self.complete else "unfinished (resume with --resume)",
            "base": self.base_model or "?",
            "template": self.template or "",
            "steps": m.get("steps", ""),
            "train_loss": _fmt(m.get("train_loss")),
            "eval_loss": _fmt(m.get("eval_loss")),
            "created": m.get("created_at", ""),
            "data": ", ".join(f"{Path(d['path']).name} ({d['format']})" for d in m.get("data", [])),
        }


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_adapter(path: str | Path) -> AdapterInfo:
    """The adapter (or unfinished run) at ``path``."""
    path = Path(path)
    config = _json(path / "adapter_config.json")
    weights = any((path / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin"))
    return AdapterInfo(path.name, path, bool(config) and weights, _json(path / MANIFEST), config)


def find_adapters(directory: str | Path = DEFAULT_ADAPTERS_DIR) -> list[AdapterInfo]:
    """Adapters directly under ``directory`` (and unfinished runs, which hold only checkpoints), newest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [
        read_adapter(p)
        for p in directory.iterdir()
        if p.is_dir() and ((p / "adapter_config.json").is_file() or (p / CHECKPOINTS).is_dir())
    ]
    return sorted(found, key=lambda a: (a.manifest.get("created_at", ""), a.name), reverse=True)


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path | None = None, *, base: str | None = None) -> Path:
    """peft ``merge_and_unload`` of the adapter into its base, saved to a new directory (never overwritten)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = read_adapter(adapter_dir)
    if not info.complete:
        raise FileNotFoundError(f"{adapter_dir}: no adapter (adapter_config.json and adapter weights) to merge")
    base = base or info.base_model
    if not base:
        raise ValueError(f"{adapter_dir}: the base model is unknown; pass --base")
    out = Path(out_dir) if out_dir else DEFAULT_MERGED_DIR / f"{info.name}-merged"
    if out.exists():
        raise FileExistsError(f"{out} exists; merged models are never overwritten (choose --out)")
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")  # the checkpoint's own dtype
    merged = PeftModel.from_pretrained(model, str(info.path)).merge_and_unload()
    has_tokenizer = (info.path / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(info.path if has_tokenizer else base)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    note = {
        "merged_from": str(info.path.resolve()),
        "base_model": base,
        "template": info.template,
        "adapter_manifest": info.manifest or None,
        "git": git_state(),
    }
    (tmp / "merged.json").write_text(json.dumps(note, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)  # appears complete or not at all
    return out

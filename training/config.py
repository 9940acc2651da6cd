"""``TrainConfig``: one dataclass for a LoRA run, read from ``--config file.yaml`` with CLI overrides.

As in trl's scripts every field carries ``metadata={"help": ...}`` and becomes ``--field`` (``--field-name``
works too); unlike ``HfArgumentParser`` this builds the parser without importing transformers, so
``arena --help`` stays fast. Precedence: dataclass defaults < YAML < command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    """A LoRA / QLoRA supervised fine-tuning run (trl SFTTrainer + peft)."""

    # Model
    base_model: str = field(
        default="", metadata={"help": "base model directory (config.json, tokenizer, weights) or hub id"}
    )
    template: str | None = field(
        default=None,
        metadata={
            "help": "chat template: koalpaca | solar | gemma | llama31 | path.jinja; unset = the tokenizer's own. "
            "Use the template the arena serves the base with (Polyglot: koalpaca)"
        },
    )
    # Data
    data: list[str] = field(
        default_factory=list,
        metadata={
            "help": "data files, FORMAT:PATH or PATH (format detected); formats: dolly alpaca sharegpt korquad dobae emotion evalset"
        },
    )
    skip_bad: bool = field(
        default=False, metadata={"help": "leave out bad records (reported with file:line) instead of stopping"}
    )
    references: bool = field(default=True, metadata={"help": "evalset: extra reference answers become extra records"})
    eval_fraction: float = field(default=0.1, metadata={"help": "share of records held out for eval loss (0 = none)"})
    max_length: int = field(default=1024, metadata={"help": "tokens per example; longer ones are cut at the end"})
    # LoRA
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "modules to adapt; unset = per architecture (GPT-NeoX: query_key_value dense dense_h_to_4h "
            "dense_4h_to_h; Llama: all q/k/v/o/gate/up/down projections; else all-linear)"
        },
    )
    quantization: str = field(
        default="auto",
        metadata={"help": "auto | 4bit | none; auto = QLoRA 4-bit when CUDA and bitsandbytes are present, else none"},
    )
    # Optimisation
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate (AdamW)"})
    num_train_epochs: float = field(default=3.0, metadata={"help": "epochs (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; > 0 overrides num_train_epochs"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "examples per step and device"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of steps spent warming up the learning rate"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory (large models)"})
    seed: int = field(default=42, metadata={"help": "seed for the split, LoRA init and data order"})
    # Bookkeeping
    output_dir: str = field(default="adapters", metadata={"help": "parent directory; each run gets a new subdirectory"})
    run_name: str | None = field(
        default=None, metadata={"help": "run directory prefix (default: <base>-<first data file>)"}
    )
    logging_steps: int = field(default=10, metadata={"help": "log the train loss every N steps"})
    eval_steps: int | None = field(
        default=None, metadata={"help": "eval loss every N steps (default: at logging_steps)"}
    )
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps (to resume from)"})
    save_total_limit: int | None = field(default=3, metadata={"help": "checkpoints kept per run"})
    resume: str | None = field(
        default=None,
        metadata={
            "help": "continue from a checkpoint: a checkpoint dir or a run dir (its latest checkpoint). An unfinished "
            "run continues in place; a finished one continues into a new run dir"
        },
    )
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    dry_run: bool = field(default=False, metadata={"help": "convert and check the data, print counts, do not train"})

    def validate(self) -> TrainConfig:
        """Raise ConfigError (a ValueError naming the field) on settings that cannot work, before anything
        heavy is loaded: a bad rank or learning rate would otherwise fail only after the model is loaded."""
        if not self.base_model:
            raise ConfigError("base_model", "is required")
        if not self.data:
            raise ConfigError("data", "is required: one or more FORMAT:PATH entries")
        if self.template is not None:
            from backends.templates import check_template

            if problem := check_template(self.template):
                raise ConfigError("template", problem)
        if self.quantization not in ("auto", "4bit", "none"):
            raise ConfigError("quantization", f"must be auto, 4bit or none, not {self.quantization!r}")
        if not 0 <= self.eval_fraction < 1:
            raise ConfigError("eval_fraction", f"must be in [0, 1), not {self.eval_fraction}")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ConfigError("max_steps", "set max_steps > 0 or num_train_epochs > 0")
        at_least_one = [
            "lora_r",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "max_length",
            "logging_steps",
            "save_steps",
        ]
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be a whole number >= 1, not {getattr(self, name)}")
        for name in ("eval_steps", "save_total_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1 or unset, not {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError("learning_rate", f"must be > 0, not {self.learning_rate}")
        if not self.lora_alpha > 0:
            raise ConfigError("lora_alpha", f"must be > 0, not {self.lora_alpha}")
        for name in ("lora_dropout", "warmup_ratio"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(name, f"must be in [0, 1), not {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, not {self.weight_decay}")
        return self


class ConfigError(ValueError):
    """A TrainConfig setting that cannot work; ``field`` names it, so the message can say where it was set."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def base_model_problem(base_model: str) -> str | None:
    """Why ``base_model`` cannot be loaded (a missing directory), or None for a model directory or a hub id.

    A name that only looks like a hub id (``org/name``, the first part not a local directory) is left to
    transformers, which finds it in its cache or downloads it."""
    path = Path(base_model).expanduser()
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"{base_model} is not a model directory (no config.json)"
    if path.exists():
        return f"{base_model} is not a directory"
    first = base_model.split("/", 1)[0]
    if (
        path.is_absolute()
        or base_model.startswith((".", "~"))
        or not _HUB_ID.fullmatch(base_model)
        or ("/" in base_model and Path(first).is_dir())
    ):
        return f"no model directory at {base_model}"
    return None


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(element type, is_list) of a field annotation such as ``int | None`` or ``list[str] | None``."""
    hint = annotation
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True
    return hint, False


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` plus one ``--field`` option per TrainConfig field (unset options stay absent)."""
    parser.add_argument("--config", type=Path, help="YAML file with TrainConfig fields; options below override it")
    hints = _hints()
    for f in dataclasses.fields(TrainConfig):
        kind, many = _base_type(hints[f.name])
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = f" (default: {default})" if default not in (None, "", []) else ""
        help_text = (f.metadata.get("help", "") + shown).replace("%", "%%")  # argparse formats help with %
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if kind is bool:
            # `--skip_bad` alone means true; `--skip_bad false` is accepted too (trl style).
            kwargs.update(type=_bool, nargs="?", const=True, metavar="BOOL")
        elif many:
            kwargs.update(type=kind, nargs="+")
        else:
            kwargs.update(type=kind)
        parser.add_argument(*names, **kwargs)


def _coerce(name: str, value: Any) -> Any:
    """A YAML value checked (and converted where harmless, e.g. 1e-4 read as a string) against the field type."""
    kind, many = _base_type(_hints()[name])
    if value is None:
        return None
    if many:
        items = value if isinstance(value, list) else [value]
        return [kind(v) if not isinstance(v, kind) else v for v in items]
    try:
        if kind is bool:
            return value if isinstance(value, bool) else _bool(str(value))
        if kind is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
            raise ValueError  # int(True) and int(2.5) would pass silently
        return kind(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"{name}: expected {kind.__name__}, got {value!r}") from None


def _key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level key of a YAML mapping (for ``file:line: field: message``)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then ``overrides``; unknown keys are an error naming them.

    A bad value is a ValueError saying where it was set: ``FILE:LINE: field: message`` for the YAML file,
    ``--field: message`` for an option."""
    import yaml

    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
        values.update(raw)
        lines = _key_lines(text)
    overrides = overrides or {}
    values.update(overrides)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")

    def where(name: str) -> str:
        if name in overrides:
            return f"--{name}"
        return f"{path}:{lines[name]}: {name}" if name in lines else f"{path}: {name}"

    coerced = {}
    for k, v in values.items():
        try:
            coerced[k] = _coerce(k, v)
        except ValueError as exc:
            raise ValueError(f"{where(k)}: {str(exc).removeprefix(f'{k}: ')}") from None
    try:
        return TrainConfig(**coerced).validate()
    except ConfigError as exc:
        if exc.field not in values:  # a default that conflicts with nothing set, e.g. base_model missing
            raise
        raise ValueError(f"{where(exc.field)}: {exc.message}") from None


def from_args(args: argparse.Namespace) -> TrainConfig:
    """The config from parsed ``arena train`` arguments."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in known}
    return load_config(getattr(args, "config", None), overrides)

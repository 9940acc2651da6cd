"""LoRA / QLoRA supervised fine-tuning with trl's SFTTrainer and peft; each run writes a new adapter dir.

A run: convert the data (``training.data``; bad records stop it here, before any model is loaded),
render and tokenize every record with the template the arena will prompt with, masking everything but
the assistant answers (``training.masking``), train, and write ``<output_dir>/<run>-<UTC time>/`` with the
adapter, the tokenizer, ``manifest.json`` and ``loss_curve.png``. A directory is never reused once it
holds a manifest, because vLLM (and LocalModel) cache adapters by path.

QLoRA (4-bit NF4 base, bf16/fp16 compute) is used when ``quantization`` is ``4bit``, or ``auto`` on a
machine with CUDA and bitsandbytes; CPU runs train the LoRA over a float32 base.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.config import TrainConfig, base_model_problem
from training.data import DataSource, LoadedData, Record, load_records

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Per-architecture LoRA targets (config.model_type); anything else gets peft's "all-linear".
TARGET_MODULES: dict[str, list[str]] = {
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "llama": LLAMA_LIKE,
    "mistral": LLAMA_LIKE,
    "qwen2": LLAMA_LIKE,
    "gemma": LLAMA_LIKE,
    "gemma2": LLAMA_LIKE,
}


def default_target_modules(model_type: str) -> list[str] | str:
    """The LoRA target modules for an architecture (``config.model_type``)."""
    return list(TARGET_MODULES.get(model_type, [])) or "all-linear"


def resolve_quantization(setting: str) -> str:
    """``4bit`` or ``none``: ``auto`` picks 4-bit only with CUDA and bitsandbytes; ``4bit`` without them fails."""
    import importlib.util

    import torch

    usable = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None
    if setting == "4bit" and not usable:
        raise RuntimeError("quantization 4bit (QLoRA) needs a CUDA GPU and the bitsandbytes package")
    return "4bit" if setting == "4bit" or (setting == "auto" and usable) else "none"


# ------------------------------------------------------------------------------------------ run dirs


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text).strip("-.") or "run"


def new_run_dir(parent: Path, prefix: str) -> Path:
    """A fresh ``<parent>/<prefix>-<UTC time>[-N]`` (created exclusively, so two runs never share one)."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = parent / (f"{_slug(prefix)}-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run directory under {parent}")


def _step(path: Path) -> int:
    m = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(m.group(1)) if m else -1


def find_checkpoint(path: str | Path) -> tuple[Path, Path | None]:
    """(checkpoint dir, run dir it belongs to or None) for a checkpoint dir or a run dir (its latest)."""
    path = Path(path)
    if (path / "trainer_state.json").is_file():
        run = path.parent.parent if path.parent.name == CHECKPOINTS else None
        return path, run
    found = sorted(
        (c for c in (path / CHECKPOINTS).glob("checkpoint-*") if (c / "trainer_state.json").is_file()), key=_step
    )
    if not found:
        raise FileNotFoundError(f"no checkpoint in {path} (expected {path / CHECKPOINTS}/checkpoint-N)")
    return found[-1], path


# ---------------------------------------------------------------------------------------------- data


def split_records(records: list[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """(train, eval): whole source lines go to eval, so a row's variants never straddle the split."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(r.get("source", str(id(r))), []).append(r)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    want = max(1, round(len(records) * fraction))
    held: set[str] = set()
    count = 0
    for key in keys[:-1]:  # at least one group stays for training
        if count >= want:
            break
        held.add(key)
        count += len(groups[key])
    train = [r for k in keys if k not in held for r in groups[k]]
    return train, [r for k in keys if k in held for r in groups[k]]


def tokenized_dataset(records: list[Record], tokenizer: Any, template: str | None) -> Any:
    """A ``datasets.Dataset`` of ``input_ids`` + ``assistant_masks`` (SFTTrainer turns the masks into -100 labels)."""
    from datasets import Dataset

    from training.masking import tokenize_record

    rows = [tokenize_record(tokenizer, template, r) for r in records]
    return Dataset.from_list(rows)


# --------------------------------------------------------------------------------------------- model


def load_model(config: TrainConfig, quantization: str) -> tuple[Any, Any]:
    """(model, tokenizer) for the base; 4-bit NF4 on CUDA for QLoRA, else float32 on CPU / bf16 on CUDA."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    except OSError as exc:  # a hub id that is neither cached nor reachable, or unreadable files
        raise RuntimeError(f"base_model: cannot load {config.base_model}: {str(exc).splitlines()[0]}") from None
    tokenizer.padding_side = "right"  # training pads on the right; generation (LocalBackend) never pads
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = _use_cuda(config)
    if quantization == "4bit":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        quant = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
        )
        model = AutoModelForCausalLM.from_pretrained(
            config.base_model, quantization_config=quant, dtype=compute, device_map={"": torch.cuda.current_device()}
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    else:
        dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
        model = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dtype)
    return model, tokenizer


def _use_cuda(config: TrainConfig) -> bool:
    import torch

    return config.device != "cpu" and torch.cuda.is_available()


def build_trainer(config: TrainConfig, data: LoadedData, run_dir: Path) -> tuple[Any, dict[str, Any]]:
    """(SFTTrainer for ``config`` over ``data`` writing checkpoints under ``run_dir``, facts for the manifest)."""
    import torch
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(config.seed)
    quantization = resolve_quantization(config.quantization)
    model, tokenizer = load_model(config, quantization)
    train_records, eval_records = split_records(data.records, config.eval_fraction, config.seed)
    train_ds = tokenized_dataset(train_records, tokenizer, config.template)
    eval_ds = tokenized_dataset(eval_records, tokenizer, config.template) if eval_records else None
    targets = config.target_modules or default_target_modules(model.config.model_type)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    cuda = _use_cuda(config)
    bf16 = cuda and torch.cuda.is_bf16_supported()
    args = SFTConfig(
        output_dir=str(run_dir / CHECKPOINTS),
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=config.lr_scheduler_type,
        weight_decay=config.weight_decay,
        max_length=config.max_length,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if eval_ds is not None else "no",
        eval_steps=config.eval_steps or config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        fp16=cuda and not bf16,
        use_cpu=not cuda,
        # transformers' own name; trl's config still sets the deprecated alias, which warns on every run.
        activation_checkpointing=config.gradient_checkpointing,
        # The masks are built here for every template; trl's own assistant_only_loss needs {% generation %}.
        assistant_only_loss=False,
        completion_only_loss=False,
        packing=False,
        report_to="none",
        # Our own bar (TrainProgress) instead of transformers': it showed nothing where the terminal
        # reports no size, and printed the raw log dicts without the step.
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora,
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # what disable_tqdm puts in: it prints every log dict
    trainer.add_callback(progress_callback(f"training {run_dir.name}", config.progress))
    info = {
        "quantization": quantization,
        "target_modules": targets,
        "records": {"train": len(train_records), "eval": len(eval_records)},
        "architecture": type(model).__name__,
        "model_type": model.config.model_type,
    }
    return trainer, info


def _bar_size() -> tuple[int, int]:
    """(columns, rows) for the bar; a terminal that reports 0x0 (some containers, `script`) gets 100x24,
    where tqdm would take 0 rows as no room and draw nothing."""
    import shutil

    size = shutil.get_terminal_size(fallback=(100, 24))
    return size.columns or 100, size.lines or 24


def progress_callback(desc: str, show: bool) -> Any:
    """A Trainer callback: one bar ``training RUN: step/total [elapsed<left, loss=..., eval_loss=...]`` on
    stderr, or, with ``show`` false, one ``RUN: step N/TOTAL: loss ...`` line per log (for files and CI)."""
    from transformers import TrainerCallback

    class TrainProgress(_TrainProgress, TrainerCallback):
        pass

    return TrainProgress(desc, show)


class _TrainProgress:
    """The events of :func:`progress_callback` (mixed into TrainerCallback there)."""

    def __init__(self, desc: str, show: bool) -> None:
        self.desc, self.show, self.bar = desc, show, None
        self.latest: dict[str, str] = {}  # the newest train and eval loss, both kept in the bar
        self.training = False  # the evaluations before and after train() are in the summary instead

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import sys

        from tqdm.auto import tqdm

        self.training = True
        if self.show and state.is_world_process_zero:
            cols, rows = _bar_size()
            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc=self.desc,
                unit="step",
                file=sys.stderr,
                ncols=cols,
                nrows=rows,
                dynamic_ncols=False,
                leave=True,
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        import sys

        shown = {k: logs[k] for k in ("loss", "eval_loss") if isinstance((logs or {}).get(k), (int, float))}
        if not shown or not self.training or not state.is_world_process_zero:
            return
        if self.bar is not None:
            self.latest.update({k: f"{v:.4f}" for k, v in shown.items()})
            self.bar.set_postfix(self.latest, refresh=True)
        else:
            text = ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in shown.items())
            print(f"{self.desc}: step {state.global_step}/{state.max_steps}: {text}", file=sys.stderr, flush=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.training = False
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ---------------------------------------------------------------------------------------------- run


def git_state() -> dict[str, Any]:
    """The project's git commit and whether the work tree had uncommitted changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def loss_series(log_history: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """{"train": [(step, loss)], "eval": [(step, eval_loss)]} from a Trainer's log history."""
    train = {e["step"]: e["loss"] for e in log_history if "loss" in e and "step" in e}
    # The closing evaluate() repeats the last step's eval; a dict keeps one value per step.
    evals = {e["step"]: e["eval_loss"] for e in log_history if "eval_loss" in e and "step" in e}
    return {"train": sorted(train.items()), "eval": sorted(evals.items())}


def _portable_tokenizer(run_dir: Path) -> None:
    """transformers 5 writes tokenizer_class "TokenizersBackend", which 4.x (e.g. in a vLLM venv) cannot load."""
    path = run_dir / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
    }


def plan_run_dir(config: TrainConfig) -> tuple[Path, Path | None]:
    """(run dir, checkpoint to resume from): an unfinished run resumes in place, anything else gets a new dir."""
    checkpoint, run = find_checkpoint(config.resume) if config.resume else (None, None)
    if run is not None and not (run / MANIFEST).exists():
        return run, checkpoint
    prefix = config.run_name or f"{Path(config.base_model).name}-{DataSource.parse(config.data[0]).path.stem}"
    return new_run_dir(Path(config.output_dir), prefix), checkpoint


@contextlib.contextmanager
def _dataset_bars(show: bool) -> Iterator[None]:
    """datasets' map/filter progress bars off for quiet runs, restored afterwards (the switch is process-wide)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    if not show:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not show and not was_disabled:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    """Hide the FutureWarnings trl's own code triggers in transformers (nothing a user can change)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning
        )
        yield


def train(config: TrainConfig) -> Path:
    """Run one training job and return its adapter directory (with manifest.json and the loss curve)."""
    config.validate()
    data = load_records(config.data, skip_bad=config.skip_bad, references=config.references)  # DataError stops here
    if data.problems:
        log.warning("skipping %d bad record(s):\n%s", len(data.problems), "\n".join(f"  {p}" for p in data.problems))
    if problem := base_model_problem(config.base_model):  # before a run dir exists
        raise FileNotFoundError(f"base_model: {problem}")
    if Path(config.base_model).is_dir():  # adapter_config.json and the manifest record an absolute path
        config = replace(config, base_model=str(Path(config.base_model).resolve()))
    run_dir, checkpoint = plan_run_dir(config)
    in_place = checkpoint is not None and run_dir in checkpoint.parents  # resuming an unfinished run
    started = time.monotonic()
    try:
        with _quiet_deprecations():
            # datasets' map/filter bars (truncating, dropping masked examples) are noise beside the run's bar.
            with _dataset_bars(False):
                trainer, info = build_trainer(config, data, run_dir)
            initial_eval = None
            if trainer.eval_dataset is not None and checkpoint is None:
                initial_eval = trainer.evaluate()["eval_loss"]
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except BaseException:
        # A new run that failed before its first checkpoint leaves nothing to resume: remove its directory
        # (the Trainer creates checkpoints/ itself at start, so an empty one does not count).
        if not in_place and not any(
            (c / "trainer_state.json").is_file() for c in (run_dir / CHECKPOINTS).glob("checkpoint-*")
        ):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    final_eval = trainer.evaluate()["eval_loss"] if trainer.eval_dataset is not None else None
    trainer.model.save_pretrained(run_dir)
    trainer.processing_class.save_pretrained(run_dir)
    _portable_tokenizer(run_dir)
    series = loss_series(trainer.state.log_history)
    if initial_eval is not None:  # train() starts a fresh log, so the pre-training eval is added back as step 0
        series["eval"].insert(0, (0, initial_eval))
    from training.curve import write_curve

    curve = write_curve(run_dir, series, f"{run_dir.name}: loss")
    manifest = {
        "name": run_dir.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": config.base_model,
        "architecture": info["architecture"],
        "model_type": info["model_type"],
        "template": config.template,
        "data": data.files,
        "skipped_bad_records": [str(p) for p in data.problems],
        "records": info["records"],
        "config": asdict(config),
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "target_modules": info["target_modules"],
        },
        "quantization": info["quantization"],
        "git": git_state(),
        "steps": trainer.state.global_step,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "train_loss": series["train"][-1][1] if series["train"] else None,
        "train_loss_mean": result.training_loss,
        "initial_eval_loss": initial_eval,
        "eval_loss": final_eval,
        "loss_history": {k: [list(p) for p in v] for k, v in series.items()},
        "loss_curve": curve.name if curve else None,
        "duration_s": round(time.monotonic() - started, 2),
        "versions": _versions(),
    }
    # Written last: a run dir with a manifest is complete (and is never trained into again).
    (run_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return run_dir

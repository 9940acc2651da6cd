"""LoRA training with trl + peft on the tiny models: run dirs, manifests, loss curves, assistant-only
labels, resuming, never overwriting, merging, and the trained adapter changing LocalBackend's answers."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from training.config import load_config
from training.data import load_records
from training.lora import LLAMA_LIKE, TARGET_MODULES, build_trainer, new_run_dir, plan_run_dir, train

DOLLY = [
    {"instruction": "벽지가 뭐야?", "context": "", "response": "벽지는 벽에 바르는 종이입니다."},
    {"instruction": "도배할 때 주의사항은?", "context": "", "response": "벽면을 평탄하게 만든 뒤 초배지를 붙입니다."},
    {
        "instruction": "곰팡이가 생기면?",
        "context": "습기가 많은 방",
        "response": "환기를 자주 하고 곰팡이 제거제를 쓰세요.",
    },
    {"instruction": "면진장치가 뭐야?", "context": "", "response": "지반의 진동 에너지를 흡수하는 장치입니다."},
]
TOOL = "search"
TOOL_DIALOG = {
    "id": "tool-01",
    "eval_set": "t",
    "tools": [{"type": "function", "function": {"name": TOOL, "parameters": {"type": "object"}}}],
    "turns": [
        {"role": "user", "content": "크록스는 어느 나라 브랜드야?"},
        {
            "role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": TOOL, "arguments": '{"q": "크록스"}'}}],
        },
        {"role": "tool", "name": TOOL, "content": '[{"title": "크록스", "text": "미국의 신발 브랜드"}]'},
        {"role": "assistant", "content": "크록스는 미국 브랜드입니다."},
    ],
}


@contextlib.contextmanager
def one_torch_thread():
    """2 shared cores: oversubscribed torch threads make tiny training ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    dolly = root / "dolly.jsonl"
    dolly.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in DOLLY), encoding="utf-8")
    evalset = root / "tools.jsonl"
    evalset.write_text(json.dumps(TOOL_DIALOG, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"dolly": dolly, "evalset": evalset}


def config(base: Path, data: list[str], out: Path, **overrides):
    settings = dict(
        base_model=str(base),
        data=data,
        output_dir=str(out),
        max_steps=12,
        learning_rate=2e-2,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        per_device_train_batch_size=4,
        logging_steps=2,
        eval_steps=6,
        save_steps=6,
        eval_fraction=0.2,
        warmup_ratio=0.0,
        progress=False,
        seed=7,
    )
    settings.update(overrides)
    return load_config(None, settings)


def run(cfg) -> Path:
    with one_torch_thread():
        return train(cfg)


@pytest.fixture(scope="module")
def llama_run(tiny_models, data_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapters")
    return run(config(tiny_models["llama-tiny"], [f"dolly:{data_files['dolly']}", str(data_files["evalset"])], out))


@pytest.fixture(scope="module")
def polyglot_run(tiny_models, data_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapters")
    return run(
        config(tiny_models["polyglot-tiny"], [str(data_files["dolly"])], out, template="koalpaca", eval_fraction=0.0)
    )


def masked_loss(model, tokenizer, template, records) -> float:
    """Mean loss over the assistant tokens of ``records`` (what training minimises)."""
    import torch

    from training.masking import tokenize_record

    losses = []
    with torch.no_grad():
        for record in records:
            enc = tokenize_record(tokenizer, template, record)
            ids = torch.tensor([enc["input_ids"]])
            labels = ids.clone()
            labels[0, torch.tensor(enc["assistant_masks"]) == 0] = -100
            losses.append(float(model(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)


@pytest.mark.parametrize(
    ("run_fixture", "model", "template", "targets"),
    [
        ("llama_run", "llama-tiny", None, LLAMA_LIKE),
        ("polyglot_run", "polyglot-tiny", "koalpaca", TARGET_MODULES["gpt_neox"]),
    ],
)
def test_run_writes_adapter_manifest_and_curve_and_lowers_the_loss(
    request, tiny_models, data_files, run_fixture, model, template, targets
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir: Path = request.getfixturevalue(run_fixture)
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "manifest.json"):
        assert (run_dir / name).is_file(), name
    m = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert m["base_model"] == str(tiny_models[model].resolve()) and m["template"] == template
    assert m["steps"] == 12 and m["duration_s"] > 0 and m["versions"]["trl"]
    assert m["lora"]["target_modules"] == targets
    assert set(json.loads((run_dir / "adapter_config.json").read_text())["target_modules"]) == set(targets)
    import hashlib

    dolly = next(d for d in m["data"] if d["path"] == str(data_files["dolly"]))
    assert dolly["sha256"] == hashlib.sha256(data_files["dolly"].read_bytes()).hexdigest() and dolly["records"] == 4
    assert isinstance(m["train_loss"], float) and m["config"]["learning_rate"] == 2e-2
    assert "commit" in m["git"] and m["quantization"] == "none"  # no CUDA here: plain LoRA over float32
    if model == "llama-tiny":
        assert m["records"] == {"train": 4, "eval": 1} and isinstance(m["eval_loss"], float)
        assert m["loss_history"]["eval"][0][0] == 0  # the pre-training eval loss is the curve's first point
    curve = run_dir / m["loss_curve"]
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and curve.stat().st_size > 2000

    # The loss on the training data, measured independently of the trainer, goes down.
    records = load_records([str(data_files["dolly"])]).records
    tok = AutoTokenizer.from_pretrained(tiny_models[model])
    base = AutoModelForCausalLM.from_pretrained(tiny_models[model])
    before = masked_loss(base, tok, template, records)
    after = masked_loss(PeftModel.from_pretrained(base, str(run_dir)), tok, template, records)
    assert after < before - 0.3, (before, after)


def test_labels_are_masked_outside_assistant_answers(tiny_models, data_files, tmp_path):
    cfg = config(tiny_models["llama-tiny"], [str(data_files["evalset"])], tmp_path, eval_fraction=0.0)
    data = load_records(cfg.data)
    trainer, info = build_trainer(cfg, data, tmp_path / "run")
    row = trainer.train_dataset[0]
    tok = trainer.processing_class
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == len(labels) and labels.count(-100) > len(ids) // 2
    trained = tok.decode([i for i, lab in zip(ids, labels) if lab != -100])
    assert trained == '{"name": "search", "parameters": {"q": "크록스"}}<|eot_id|>크록스는 미국 브랜드입니다.<|eot_id|>'
    masked = tok.decode([i for i, lab in zip(ids, labels) if lab == -100])
    assert (
        "크록스는 어느 나라 브랜드야?" in masked
        and "미국의 신발 브랜드" in masked
        and "<|start_header_id|>assistant" in masked
    )
    assert all(lab in (-100, i) for i, lab in zip(ids, labels))
    assert info["records"] == {"train": 1, "eval": 0}


async def test_trained_adapter_changes_greedy_output_in_local_backend(tiny_models, llama_run):
    from backends.base import Finish, Options
    from backends.local import LocalBackend, LocalModel

    shared = LocalModel(tiny_models["llama-tiny"])
    base = LocalBackend("llama-tiny", base=shared)
    tuned = LocalBackend("llama-tiny:run", base=shared, adapter=llama_run)
    prompt = [{"role": "user", "content": "벽지가 뭐야?"}]
    greedy = Options(temperature=0, max_tokens=12)
    with one_torch_thread():
        a = await base.complete(prompt, options=greedy)
        b = await tuned.complete(prompt, options=greedy)
    assert isinstance(a, Finish) and isinstance(b, Finish)
    assert a.text != b.text, a.text


def test_resume_continues_the_step_count_into_a_new_dir(tiny_models, data_files, llama_run):
    before = (llama_run / "manifest.json").read_bytes()
    checkpoint = llama_run / "checkpoints" / "checkpoint-6"
    assert (checkpoint / "trainer_state.json").is_file()
    cfg = config(
        tiny_models["llama-tiny"],
        [f"dolly:{data_files['dolly']}", str(data_files["evalset"])],
        llama_run.parent,
        max_steps=8,
        resume=str(checkpoint),
    )
    resumed = run(cfg)
    assert resumed != llama_run and resumed.parent == llama_run.parent
    assert (llama_run / "manifest.json").read_bytes() == before  # the finished run is never trained into again
    m = json.loads((resumed / "manifest.json").read_text(encoding="utf-8"))
    first = json.loads(before)
    assert m["steps"] == 8 and m["resumed_from"] == str(checkpoint)
    state = json.loads((resumed / "checkpoints" / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    steps = [s for s, _ in m["loss_history"]["train"]]
    assert steps[-1] == 8 and max(s for s in steps if s < 8) <= 6  # logged every 2 steps: ..., 6, 8
    # Steps up to the checkpoint come from its state, identical to the first run's log.
    assert [p for p in m["loss_history"]["train"] if p[0] <= 6] == [
        p for p in first["loss_history"]["train"] if p[0] <= 6
    ]


def test_run_dirs_are_never_reused(tmp_path):
    a, b = new_run_dir(tmp_path, "same"), new_run_dir(tmp_path, "same")
    assert a != b and a.is_dir() and b.is_dir() and b.name.startswith(a.name)
    # An unfinished run (checkpoints, no manifest) resumes in place; a finished one gets a new dir.
    ckpt = a / "checkpoints" / "checkpoint-4"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    cfg = load_config(None, {"base_model": "m", "data": ["x.jsonl"], "output_dir": str(tmp_path), "resume": str(a)})
    assert plan_run_dir(cfg) == (a, ckpt)
    (a / "manifest.json").write_text("{}")
    new, checkpoint = plan_run_dir(cfg)
    assert new not in (a, b) and checkpoint == ckpt and new.name.startswith("m-x-")


def test_a_run_that_fails_before_any_checkpoint_leaves_no_dir(data_files, tmp_path):
    cfg = config(tmp_path / "no-such-model", [str(data_files["dolly"])], tmp_path / "adapters")
    with pytest.raises(OSError):
        train(cfg)
    # The missing base is found before any run directory is made (before: made, then removed).
    assert not (tmp_path / "adapters").exists() or list((tmp_path / "adapters").iterdir()) == []


def test_merge_gives_a_full_model_that_answers_like_base_plus_adapter(tiny_models, polyglot_run, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from training.adapters import merge_adapter

    out = merge_adapter(polyglot_run, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert json.loads((out / "merged.json").read_text())["template"] == "koalpaca"
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    peft = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_models["polyglot-tiny"]), str(polyglot_run)
    )
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft(ids).logits, atol=1e-4)
    with pytest.raises(FileExistsError):
        merge_adapter(polyglot_run, out)


def test_config_yaml_with_cli_overrides(tmp_path):
    import argparse

    from training.config import add_arguments, from_args

    path = tmp_path / "train.yaml"
    path.write_text(
        "base_model: models/llama-tiny\ndata: [dolly:a.jsonl]\nlearning_rate: 1e-4\nlora_r: 4\n", encoding="utf-8"
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = from_args(
        parser.parse_args(
            ["--config", str(path), "--lora-r", "32", "--skip_bad", "--target_modules", "q_proj", "v_proj"]
        )
    )
    assert (cfg.learning_rate, cfg.lora_r, cfg.skip_bad, cfg.target_modules) == (1e-4, 32, True, ["q_proj", "v_proj"])
    assert cfg.data == ["dolly:a.jsonl"] and cfg.lora_alpha == 32  # untouched defaults stay
    path.write_text("base_model: m\ndata: [a]\nlearnin_rate: 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown setting.*learnin_rate"):
        load_config(path)
    with pytest.raises(ValueError, match="quantization"):
        load_config(None, {"base_model": "m", "data": ["a"], "quantization": "8bit"})


def test_quantization_auto_is_plain_lora_without_cuda():
    import torch

    from training.lora import resolve_quantization

    if torch.cuda.is_available():
        pytest.skip("QLoRA is only guarded here; this checks the CPU fallback")

    assert resolve_quantization("auto") == "none" and resolve_quantization("none") == "none"
    with pytest.raises(RuntimeError, match="CUDA"):
        resolve_quantization("4bit")


@pytest.mark.parametrize("progress", [True, False])
def test_arena_train_shows_its_progress_by_step_without_log_dicts_or_warnings(
    tiny_models, data_files, tmp_path, progress
):
    """Issue 15 item 9: the real `arena train`, output captured as in CI (no terminal size). With the bar:
    one ``training RUN: N/6`` bar with the loss; without: one ``step N/6: loss …`` line per log. Never the
    raw log dicts (``{'loss': …}``) nor the FutureWarnings trl's own code triggers."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "adapters"
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "COLUMNS": "0", "LINES": "0"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "arena.cli",
            "train",
            "--base_model",
            str(tiny_models["llama-tiny"]),
            "--data",
            f"dolly:{data_files['dolly']}",
            "--output_dir",
            str(out),
            "--max_steps",
            "6",
            "--logging_steps",
            "2",
            "--eval_fraction",
            "0.2",
            "--per_device_train_batch_size",
            "2",
            "--save_steps",
            "6",
            "--progress",
            str(progress).lower(),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr
    run_name = next(out.iterdir()).name
    assert "{'loss'" not in err and "'eval_loss'" not in err and "FutureWarning" not in err, err[-3000:]
    if progress:
        assert f"training {run_name}:" in err and "6/6" in err and "loss=" in err, err[-3000:]
    else:
        steps = [line for line in err.splitlines() if line.startswith(f"training {run_name}: step ")]
        # Every logging_steps (transformers also logs the first step), each eval beside its step.
        train_steps = [s.split(": ")[1] for s in steps if "eval loss" not in s]
        assert {"step 2/6", "step 4/6", "step 6/6"} <= set(train_steps) <= {f"step {n}/6" for n in range(1, 7)}, err
        assert all("loss " in s for s in steps), steps

"""`arena train --config X.yaml [--field value ...]`: train a LoRA adapter from seed-format data."""

from __future__ import annotations

import argparse
import sys

from arena.commands.common import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `train`; every TrainConfig field is an option that overrides the YAML file."""
    p = sub.add_parser(
        "train",
        help="train a LoRA/QLoRA adapter (trl SFT) from Dolly/Alpaca/KoVicuna/KorQuAD/도배/AIHub/eval-set data",
        description="Train a LoRA adapter with trl's SFTTrainer. Settings come from --config (YAML with the "
        "fields below) and are overridden by options, e.g. `arena train --config configs/train-dobae-llama-tiny.yaml "
        "--max_steps 20`. Each run writes a new directory under --output_dir (adapter, tokenizer, manifest.json, "
        "loss curve). Bad data records stop the run before training unless --skip_bad is given.",
    )
    from training.config import add_arguments

    add_arguments(p)
    p.set_defaults(func=run)


def _print_problems(problems: list) -> None:
    # sys.stderr looked up at call time: a default argument would pin the stream of import time.
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Train (or, with --dry_run, only check the data) and print where the adapter went."""
    from training.config import base_model_problem, from_args
    from training.data import DataError, load_records

    try:
        config = from_args(args)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    try:
        if config.dry_run:
            data = load_records(config.data, skip_bad=config.skip_bad, references=config.references)
            for f in data.files:
                print(f"{f['path']}: {f['format']}, {f['records']} records, {f['bad']} bad, sha256 {f['sha256'][:12]}")
            if data.problems:
                print(f"{len(data.problems)} bad record(s) would be skipped:", file=sys.stderr)
                _print_problems(data.problems)
            if problem := base_model_problem(config.base_model):
                raise UserError(f"base_model: {problem}")  # as the real run says it
            print(f"{len(data.records)} records in all; dry run, nothing trained")
            return 0
        from training.lora import train

        run_dir = train(config)
    except DataError as exc:
        _print_problems(exc.problems)
        raise UserError(
            f"{len(exc.problems)} bad record(s), listed above; nothing was trained (fix them, or pass --skip_bad)"
        ) from None
    except (OSError, ValueError, RuntimeError) as exc:  # a missing file or base model, a refused setting
        raise UserError(str(exc)) from None
    import json

    m = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    print(f"adapter: {run_dir}")
    print(
        f"  {m['steps']} steps in {m['duration_s']} s; train loss {m['train_loss']}; eval loss "
        f"{m['initial_eval_loss']} -> {m['eval_loss']}; curve {m['loss_curve']}"
    )
    print(f"  into the running arena: Adapters tab, or `arena adapters add {run_dir.name} {run_dir} --base MODEL`")
    return 0

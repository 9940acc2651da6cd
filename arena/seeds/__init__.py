"""Converters from the Korean seed documents (``../shared/seeds/``) to the shipped eval sets.

One module per seed document; :func:`convert_all` writes ``<eval_set>.jsonl`` for every set. Output is
deterministic (seed order, fixed key order), so re-running it on the same seeds reproduces the files byte
for byte. What each set holds and what was repaired is described in ``eval_sets/README.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arena.seeds import dobae, emotion, fashion, instructions, persona, tool_calls
from arena.seeds.common import SeedFormatError, load_seed, write_jsonl

EVAL_SETS = ("selectstar_fashion", "tool_calls", "persona", "dobae_qa", "emotion", "instructions")


def build_all(seeds_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every eval set's dialogs, keyed by eval-set name; ids are checked to be unique across sets."""
    seeds = {prefix: load_seed(seeds_dir, prefix) for prefix in ("000_", "001_", "002_", "003_", "004_")}
    sets = {
        "selectstar_fashion": fashion.convert(seeds["000_"]),
        "tool_calls": tool_calls.convert(seeds["000_"]),
        "persona": persona.convert(seeds["000_"], seeds["003_"]),
        "dobae_qa": dobae.convert(seeds["002_"]),
        "emotion": emotion.convert(seeds["004_"]),
        "instructions": instructions.convert(seeds["001_"], seeds["004_"]),
    }
    seen: dict[str, str] = {}
    for name, dialogs in sets.items():
        for dialog in dialogs:
            if dialog["id"] in seen:
                raise SeedFormatError(f"duplicate id {dialog['id']!r} in {name} and {seen[dialog['id']]}")
            seen[dialog["id"]] = name
    return sets


def convert_all(seeds_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Convert the seeds in ``seeds_dir`` and write ``out_dir/<eval_set>.jsonl``; returns dialogs per set."""
    sets = build_all(seeds_dir)
    for name in EVAL_SETS:
        write_jsonl(Path(out_dir) / f"{name}.jsonl", sets[name])
    return {name: len(sets[name]) for name in EVAL_SETS}

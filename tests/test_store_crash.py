"""Durability and concurrency of the Store.

A writer process is killed with SIGKILL in the middle of a burst of multi-side rating submissions;
every submission it acknowledged must be there afterwards, and none may be half there. Several
processes and threads then write to one SQLite file at once: no "database is locked", nothing lost.

Run as a script, this module is the writer child: ``python test_store_crash.py MODE URL ...``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from arena.store import Store
from arena.store.models import Generation, utcnow

SIDES = 4  # generations rated per submission (a side-by-side of four)
POOL = 4000  # generations prepared for the crash writer: 1000 submissions at most
REPO = Path(__file__).resolve().parents[1]


def _seed(url: str, n_generations: int, annotators: list[str]) -> None:
    """A model, annotators, and ``n_generations`` generations (bulk inserted: test set-up only)."""
    with Store.open(url) as store:
        model_id = store.upsert_model("crash-model", backend="local")
        for name in annotators:
            store.add_annotator(name, "pw")
        rows = [
            dict(
                eval_set="crash",
                dialog_id=f"d{i:05d}",
                turn_index=1,
                model_id=model_id,
                context="replay",
                prompt_hash="",
                text=f"answer {i}",
                created_at=utcnow(),
            )
            for i in range(n_generations)
        ]
        with store.engine.begin() as conn:
            conn.execute(sa.insert(Generation), rows)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


# -- the child processes ----------------------------------------------------------------------------


def crash_writer(url: str, start: int) -> None:
    """Submit SIDES-sided ratings for submission start, start+1, ... forever; ack each after commit."""
    store = Store.open(url, upgrade=False)
    generation_ids = [int(g) for g in store.generations_frame()["generation_id"]]
    i = start
    while (i + 1) * SIDES <= len(generation_ids):
        sides = generation_ids[i * SIDES : (i + 1) * SIDES]
        items = [(g, 1 + (i + k) % 5, ["c"], f"submission {i}") for k, g in enumerate(sides)]
        ids = store.save_ratings("crash", items)
        print("ack", i, *ids, flush=True)  # only after save_ratings returned, i.e. committed
        i += 1


def busy_writer(url: str, annotator: str, offset: int, threads: int, per_thread: int) -> None:
    """Several threads of one process, one shared Store, each saving two-sided submissions."""
    store = Store.open(url, upgrade=False)
    generation_ids = [int(g) for g in store.generations_frame()["generation_id"]]
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for j in range(per_thread):
                base = offset + 2 * (t * per_thread + j)
                pair = [(generation_ids[base], 3, [], ""), (generation_ids[base + 1], 4, [], "")]
                store.save_ratings(annotator, pair)
        except BaseException as exc:  # noqa: BLE001 - reported through the exit code below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise SystemExit(f"{len(errors)} thread(s) failed: {errors[0]!r}")
    print("done", flush=True)


# -- the tests --------------------------------------------------------------------------------------


def _read_acks(proc: subprocess.Popen[str], count: int) -> dict[int, list[int]]:
    acks: dict[int, list[int]] = {}
    assert proc.stdout is not None
    while len(acks) < count:
        line = proc.stdout.readline()
        if not line:  # the writer died on its own: show why
            raise AssertionError(f"writer exited early ({proc.wait()}): {proc.stderr.read()}")
        _, submission, *ids = line.split()
        acks[int(submission)] = [int(x) for x in ids]
    return acks


def _submission_sizes(url: str) -> pd.Series:
    """Rows on disk per submission number."""
    with Store.open(url, upgrade=False) as store:
        comments = store.ratings_frame()["comment"]
    return comments.str.removeprefix("submission ").astype(int).value_counts().sort_index()


@pytest.mark.slow
def test_killed_writer_loses_no_acknowledged_rating(db_url: str) -> None:
    _seed(db_url, POOL, ["crash"])
    acked: dict[int, list[int]] = {}
    start = 0
    # Five kills, each a random few ms after an ack so that it lands anywhere in a submission's cycle
    # (validation, reads, the INSERTs, the COMMIT). A store that committed side by side fails this
    # test nearly every run; one that is atomic never does.
    rng = random.Random(20240611)
    for burst in (12, 20, 8, 16, 10):
        proc = _spawn("crash", db_url, str(start))
        try:
            acked |= _read_acks(proc, burst)
            time.sleep(rng.uniform(0, 0.05))
            assert proc.poll() is None, "the writer must still be writing when it is killed"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # Resume after everything on disk: redoing the submission in flight would heal a half-written one.
        start = max(_submission_sizes(db_url).index) + 1

    with Store.open(db_url, upgrade=False) as store:
        ratings = store.ratings_frame()
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    by_id = ratings.set_index("rating_id")
    for submission, ids in acked.items():
        assert len(ids) == SIDES
        assert set(ids) <= set(by_id.index), f"acknowledged submission {submission} lost"
        assert set(by_id.loc[ids, "comment"]) == {f"submission {submission}"}
    # All or nothing: every submission present has all its sides, acknowledged or not.
    sizes = _submission_sizes(db_url)
    assert (sizes == SIDES).all(), sizes[sizes != SIDES]


@pytest.mark.slow
def test_concurrent_sqlite_writers_neither_lock_nor_lose(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    processes, threads, per_thread = 3, 2, 20
    per_process = 2 * threads * per_thread
    _seed(url, processes * per_process, [f"ann{p}" for p in range(processes)])

    stop = threading.Event()
    reads: list[int] = []
    reader_errors: list[BaseException] = []

    def reader() -> None:
        # WAL: readers run while writers commit, and never block them.
        with Store.open(url, upgrade=False) as store:
            while not stop.is_set():
                try:
                    reads.append(len(store.ratings_frame()))
                except BaseException as exc:  # noqa: BLE001
                    reader_errors.append(exc)
                    return

    watcher = threading.Thread(target=reader)
    watcher.start()
    procs = [
        _spawn("busy", url, f"ann{p}", str(p * per_process), str(threads), str(per_thread)) for p in range(processes)
    ]
    try:
        results = [(proc.wait(timeout=240), proc.stdout.read(), proc.stderr.read()) for proc in procs]
    finally:
        stop.set()
        watcher.join()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for code, out, err in results:
        assert code == 0 and "locked" not in err, err[-2000:]
        assert out.strip() == "done"
    assert not reader_errors, reader_errors
    assert reads == sorted(reads)  # the reader never saw ratings disappear

    with Store.open(url, upgrade=False) as store:
        ratings = store.ratings_frame()
    assert len(ratings) == processes * per_process
    assert ratings["generation_id"].is_unique
    assert ratings.groupby("annotator").size().to_dict() == {f"ann{p}": per_process for p in range(processes)}


if __name__ == "__main__":
    mode, url, *rest = sys.argv[1:]
    if mode == "crash":
        crash_writer(url, int(rest[0]))
    elif mode == "busy":
        busy_writer(url, rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")

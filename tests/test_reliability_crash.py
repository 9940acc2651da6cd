"""kill -9 of a running `arena serve`, in a burst of submissions and in the middle of a pre-generation.

The store-level half is proven in test_store_crash.py (a writer process killed mid-submission) and
test_blind_pregen.py (`arena round pregen` killed and rerun); here the whole app is killed while
annotators and a researcher are using it over HTTP. Afterwards every submission that got a success
answer is stored once, none is half there, and a restarted app carries on where the old one stopped.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from arena import rounds
from arena.store import Store
from tests.arena_process import ArenaProcess
from tests.fake_model_servers import ANSWER, running
from tests.fixtures_pg import DB_KINDS
from tests.gradio_http import GradioSession
from tests.rounds_helpers import make_round, registry_of, server_models_yaml, store_answers

pytestmark = pytest.mark.slow
PW = "pw-1234"
ROUND = "충돌-라운드"
NAMES = [f"평가자{i}" for i in range(6)]
# The round's judges may not use its models by name (arena.web.policies), so they rate replays of two others.
REPLAY_MODELS = ["m-c", "m-d"]


async def _session(url: str, user: str) -> GradioSession:
    s = GradioSession(url, timeout=30)
    assert await s.login(user, PW)
    await s.load_config()
    await s.page_loaded()
    return s


class Worker:
    """One annotator submitting as fast as the app answers: blind votes and replay ratings in turn."""

    def __init__(self, s: GradioSession, name: str, acks: list[tuple[str, str, list[str]]], seq: int = 0) -> None:
        self.s, self.name, self.acks, self.seq = s, name, acks, seq
        self.replay_at: tuple[str, int] | None = None

    def _acked(self, kind: str, comments: list[str], text: str) -> bool:
        if "✅" in text or "🎉" in text:  # the answer the annotator sees when it is saved
            self.acks.append((kind, self.name, comments))
            return True
        return False

    async def vote(self) -> bool:
        s = self.s
        if not (await s.call(s.dependency("blind_next"), blind_round=ROUND)).ok:
            return False
        self.seq += 1
        comments = [f"{self.name} v{self.seq} {side}" for side in "LR"]
        r = await s.call(
            s.dependency("blind_submit"),
            blind_vote="left",
            blind_score_0=4,
            blind_score_1=2,
            blind_comment_0=comments[0],
            blind_comment_1=comments[1],
        )
        return r.ok and self._acked("vote", comments, r.text())

    async def rate(self) -> bool:
        s = self.s
        if self.replay_at is None:
            for eval_set in ("persona", "dobae_qa"):
                # The models picked, as on the page: they answer the turn opened, in the event chained after it.
                if (
                    await s.call(
                        s.dependency(target=("replay-eval-set", "input")),
                        chained=True,
                        replay_eval_set=eval_set,
                        replay_models=REPLAY_MODELS,
                    )
                ).ok:
                    r = await s.call(
                        s.dependency(target=("replay-next", "click")), chained=True, replay_models=REPLAY_MODELS
                    )
                    if r.value("replay-dialog"):  # None: no unrated turn after the one shown
                        self.replay_at = (r.value("replay-dialog"), r.value("replay-turn"))
                        break
            else:
                return False
        dialog, turn = self.replay_at
        gen = await s.call(
            s.dependency(target=("replay-turn", "input")),
            chained=True,
            replay_dialog=dialog,
            replay_turn=turn,
            replay_models=REPLAY_MODELS,
        )
        if not gen.ok:
            return False
        self.seq += 1
        comments = [f"{self.name} r{self.seq} {side}" for side in "AB"]
        r = await s.call(
            s.dependency(target=("replay-submit", "click")),
            chained=True,
            replay_dialog=dialog,
            replay_turn=turn,
            replay_models=REPLAY_MODELS,
            replay_score_0=3,
            replay_score_1=5,
            replay_comment_0=comments[0],
            replay_comment_1=comments[1],
        )
        self.replay_at = (r.value("replay-dialog"), r.value("replay-turn")) if r.value("replay-dialog") else None
        return r.ok and self._acked("rating", comments, r.text())

    async def run(self, stop: asyncio.Event) -> None:
        assert (await self.s.call(self.s.dependency("blind_rounds"), [])).ok  # fills the round picker, as a page load
        turn = 0
        while not stop.is_set():
            turn += 1
            if await (self.vote() if turn % 2 else self.rate()) or stop.is_set():
                continue
            try:
                await self.s.http.get("/config")
            except httpx.HTTPError:
                return  # the server is gone


@pytest.fixture(params=DB_KINDS)
def crash_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a SQLite file, or a database on the throwaway PostgreSQL server."""
    return (
        f"sqlite:///{tmp_path / 'ratings.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    )


def _check_store(db: str, acks: list[tuple[str, str, list[str]]]) -> Counter[str]:
    """Every acknowledged submission once, every stored submission whole; returns votes per annotator."""
    with Store.open(db) as store:
        ratings, votes = store.ratings_frame(), store.votes_frame()
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    stored = Counter(ratings["comment"])
    assert all(stored[c] == 1 for _, _, comments in acks for c in comments), "an acknowledged submission is lost"
    assert max(stored.values()) == 1, "a submission is stored twice"
    # No half submission: both sides of each one, acknowledged or cut off by the kill.
    halves = Counter(c.rsplit(" ", 1)[0] for c in stored)
    assert set(halves.values()) == {2}, [k for k, n in halves.items() if n != 2]
    # A vote always comes with its annotator's ratings of both answers (one transaction).
    rated = set(zip(ratings["generation_id"], ratings["annotator"]))
    for v in votes.itertuples():
        assert {(v.generation_a_id, v.annotator), (v.generation_b_id, v.annotator)} <= rated, v
    return Counter(votes["annotator"])


async def test_kill_9_in_a_burst_of_submissions_loses_nothing_acknowledged(crash_db: str, tmp_path: Path) -> None:
    with running("instant") as model:
        config = server_models_yaml(tmp_path / "models.yaml", ["m-a", "m-b", *REPLAY_MODELS], model.base_url)
        with Store.open(crash_db) as store:
            for name in NAMES:
                store.add_annotator(name, PW)
            rid, _ = make_round(
                store,
                registry_of(config),
                ROUND,
                models=["m-a", "m-b"],
                annotators=NAMES,
                eval_sets=["persona", "dobae_qa"],
                judgements=len(NAMES),
            )
            store_answers(store, rid)
        acks: list[tuple[str, str, list[str]]] = []
        server = ArenaProcess(config, crash_db, tmp_path / "serve.log").start()
        try:
            sessions = [await _session(server.url, n) for n in NAMES]
            workers = [Worker(s, n, acks) for s, n in zip(sessions, NAMES)]
            stop = asyncio.Event()
            tasks = [asyncio.create_task(w.run(stop)) for w in workers]
            deadline = time.monotonic() + 90
            while len(acks) < 30 or {kind for kind, _, _ in acks} != {"vote", "rating"}:
                assert time.monotonic() < deadline and not any(t.done() for t in tasks), (len(acks), tasks)
                await asyncio.sleep(0.01)
            await asyncio.sleep(random.uniform(0, 0.05))  # anywhere in the next submissions' cycle
            assert server.proc.poll() is None
            server.kill()
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
            for s in sessions:
                await s.http.aclose()
        finally:
            server.stop()
        votes = _check_store(crash_db, acks)
        acked_votes = Counter(name for kind, name, _ in acks if kind == "vote")
        # At most the one in flight per annotator was stored without its answer reaching them.
        assert all(votes[n] - acked_votes[n] in (0, 1) for n in NAMES), (votes, acked_votes)
        n_acks = len(acks)

        # A new app on the same store: the round goes on after what is stored, nothing is served twice.
        with ArenaProcess(config, crash_db, tmp_path / "serve.log") as again:
            sessions = [await _session(again.url, n) for n in NAMES[:3]]
            for s, name in zip(sessions, NAMES):
                assert (await s.call(s.dependency("blind_rounds"), [])).ok
                worker = Worker(s, name, acks, seq=1000)
                assert await worker.vote() and await worker.rate(), name
                await s.http.aclose()
        with Store.open(crash_db) as store:
            ratings = store.ratings_frame()
        assert (ratings["created_at"] == ratings["updated_at"]).all()  # no earlier rating overwritten: no repeats
        after = _check_store(crash_db, acks)
        assert len(acks) == n_acks + 6 and all(after[n] == votes[n] + 1 for n in NAMES[:3])


def _round_rows(db: str, round_id: int) -> list[tuple]:
    # A plain engine, not Store.open: opening the store runs the migration check, and the wait loop below
    # did that 20 times a second in the process that also serves the fake model's answers.
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT id, eval_set, dialog_id, turn_index, model_id, created_at, error, text, total_ms, prompt_hash"
                    " FROM generations WHERE round_id = :r ORDER BY id"
                ),
                {"r": round_id},
            ).all()
    finally:
        engine.dispose()


def _cut_or_unfinished(rows: list[tuple]) -> list[str]:
    """Stored answers that are not what the fake model sent, complete: a text cut short, or a missing
    timing or prompt hash. A row with an error is a failed answer, stored as failed: not cut."""
    return [
        f"row {r.id} ({r.dialog_id} turn {r.turn_index}, model {r.model_id}): text {r.text!r}, "
        f"total_ms {r.total_ms}, prompt_hash {r.prompt_hash!r}"
        for r in rows
        if r.error is None and (r.text != ANSWER or not r.total_ms or len(r.prompt_hash or "") != 64)
    ]


def _failed(rows: list[tuple]) -> list[str]:
    return [f"row {r.id} ({r.dialog_id} turn {r.turn_index}, model {r.model_id}): {r.error}" for r in rows if r.error]


async def test_kill_9_during_pregeneration_in_the_app_resumes_where_it_stopped(tmp_path: Path) -> None:
    with running("slow", delay=0.8) as model:
        config = server_models_yaml(tmp_path / "models.yaml", ["m-a", "m-b"], model.base_url)
        # This test is about the kill, not about timeouts: on a loaded machine the usual 2 s connect and
        # 10 s first-token limits turned a slow answer into a failed one (a legitimate failure, but then
        # the resume generates it again and the counts below differ).
        config.write_text(
            config.read_text(encoding="utf-8").replace(
                "timeouts: {connect: 2, first_token: 10}", "timeouts: {connect: 30, first_token: 120}"
            ),
            encoding="utf-8",
        )
        db = f"sqlite:///{tmp_path / 'ratings.db'}"
        with Store.open(db) as store:
            store.add_annotator("kim", PW)
            store.add_annotator("boss", PW, role="researcher")
            rid, _ = make_round(
                store, registry_of(config), ROUND, models=["m-a", "m-b"], annotators=["kim"], eval_sets=["dobae_qa"]
            )
            total = 2 * len(rounds.load_items(store, rid))  # two models: one pair, two answers per turn
        server = ArenaProcess(config, db, tmp_path / "serve.log").start()
        try:
            boss = await _session(server.url, "boss")
            assert (await boss.call(boss.dependency("rounds_load"), [])).ok
            pregen = asyncio.create_task(boss.call(boss.dependency("rounds_pregen"), rounds_pick=ROUND))
            deadline = time.monotonic() + 60
            while len(_round_rows(db, rid)) < 4:
                assert time.monotonic() < deadline and not pregen.done()
                await asyncio.sleep(0.05)
            server.kill()
            assert not (await pregen).ok  # the researcher's page lost its server mid-way
            await boss.http.aclose()
        finally:
            server.stop()
        first = _round_rows(db, rid)
        assert 4 <= len(first) < total, "the kill came too late to test a resume"
        # No half-written answer: each stored one is the fake model's whole answer, with its timing and
        # prompt hash; an answer that failed (a timeout under load) is stored as failed, never as a cut text.
        assert not _cut_or_unfinished(first), _cut_or_unfinished(first)
        failed = _failed(first)
        complete = [r for r in first if r.error is None]

        with ArenaProcess(config, db, tmp_path / "serve.log") as again:
            # English page: the report below is checked word for word.
            boss = await _session(again.url + "/en", "boss")
            assert (await boss.call(boss.dependency("rounds_load"), [])).ok
            done = await boss.call(boss.dependency("rounds_pregen"), rounds_pick=ROUND)
            # Failed answers of the first run (if any) are generated again, like the missing ones.
            assert (
                f"{total} answers needed: {len(complete)} already stored, {total - len(complete)} generated, "
                f"0 failed" in done.text()
            ), (done.output, failed)
            kim = await _session(again.url, "kim")
            assert (await kim.call(kim.dependency("blind_rounds"), [])).ok
            assert await Worker(kim, "kim", acks := []).vote() and len(acks) == 1  # the round is open for judging
            await boss.http.aclose()
            await kim.http.aclose()
    final = _round_rows(db, rid)
    keys = [(r.eval_set, r.dialog_id, r.turn_index, r.model_id) for r in final]
    assert len(final) == total and len(set(keys)) == total  # every answer once
    assert [r for r in final if r.id in {f.id for f in complete}] == complete  # the first run's answers untouched
    assert not _cut_or_unfinished(final) and not _failed(final), (_cut_or_unfinished(final), _failed(final))
    with Store.open(db) as store:
        status = rounds.round_status(store, rid)
    assert status.answers_stored == total and status.items_ready == status.items and status.votes == 1

"""Broken model servers behind a real `arena serve`: one refuses connections, one stalls mid-stream, one
sends garbage SSE (small real servers on loopback, tests/fake_model_servers.py), beside a tiny local model.

Each broken side ends with a clear error of its own within its configured timeout, the healthy side
answers, another annotator's work goes on meanwhile, and no rating or vote can land on a failed answer.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from arena import rounds
from arena.store import Store
from tests.arena_process import ArenaProcess
from tests.browser import free_port
from tests.fake_model_servers import running
from tests.gradio_http import CallResult, GradioSession
from tests.rounds_helpers import make_round, registry_of

pytestmark = pytest.mark.slow
PW = "pw-1234"
READ_TIMEOUT = 4.0  # seconds a server may stay silent between chunks (models.yaml `timeouts.read`)
SIDES = ("tiny", "refused", "stalled", "garbage")
ERRORS = {"refused": "[connection] cannot connect to", "stalled": "[timeout]", "garbage": "[protocol] malformed chunk"}


@pytest.fixture(scope="module")
def app(tiny_models, tmp_path_factory: pytest.TempPathFactory):
    """`arena serve` over a tiny local model and three broken servers; a blind round of tiny vs refused,
    judged by ``judge`` alone: ann1 and ann2 replay these models by name, which a round's judge may not."""
    tmp = tmp_path_factory.mktemp("faults")
    with running("stall") as stall, running("garbage") as garbage:
        timeouts = f"timeouts: {{connect: 2, first_token: 6, read: {READ_TIMEOUT}}}"
        urls = {"refused": f"http://127.0.0.1:{free_port()}/v1", "stalled": stall.base_url, "garbage": garbage.base_url}
        config = tmp / "models.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: tiny, kind: local, path: '{tiny_models['llama-tiny']}',"
            " options: {max_tokens: 8, temperature: 0}}\n"
            + "".join(f"  - {{name: {n}, kind: openai, base_url: '{u}', {timeouts}}}\n" for n, u in urls.items()),
            encoding="utf-8",
        )
        db = str(tmp / "ratings.db")
        with Store.open(db) as store:
            for name in ("ann1", "ann2", "judge"):
                store.add_annotator(name, PW)
            store.add_annotator("boss", PW, role="researcher")
            make_round(
                store,
                registry_of(config),
                "고장-라운드",
                models=["tiny", "refused"],
                annotators=["judge"],
                eval_sets=["emotion"],
            )
        with ArenaProcess(config, db, tmp / "serve.log") as server:
            yield server, db


async def _session(url: str, user: str) -> GradioSession:
    s = GradioSession(url)
    assert await s.login(user, PW)
    await s.load_config()
    await s.page_loaded()
    return s


async def _open_turn(s: GradioSession, models: list[str]) -> CallResult:
    """Open the first unrated emotion turn with ``models`` picked: they answer it side by side in the
    event chained after it, as on the page (``s.shown`` is then the turn on screen, as the submit sends it)."""
    assert (
        await s.call(
            s.dependency(target=("replay-eval-set", "input")),
            chained=True,
            replay_eval_set="emotion",
            replay_models=models,
        )
    ).ok
    nxt = await s.call(s.dependency(target=("replay-next", "click")), chained=True, replay_models=models)
    s.shown = {
        "replay_dialog": nxt.value("replay-dialog"),
        "replay_turn": nxt.value("replay-turn"),
        "replay_models": models,
    }
    return nxt


def _answers_shown(s: GradioSession, result: CallResult) -> list[str]:
    """The last answer HTML each side showed while streaming."""
    outputs = s.dependency(target=("replay-next", "click"))["outputs"]
    answer_ids = [next(i for i in outputs if s.elem_id(i) == f"replay-answer-{k}") for k in range(len(SIDES))]
    shown = [""] * len(SIDES)
    for update in result.streamed:
        for k, component in enumerate(answer_ids):
            value = update[outputs.index(component)]
            value = value.get("value") if isinstance(value, dict) else value
            if isinstance(value, str) and value:
                shown[k] = value
    return shown


def _replay_generations(db: str, annotator: str) -> dict[str, tuple[int, str, str | None]]:
    with Store.open(db) as store:
        frame = store.generations_frame()
    mine = frame[frame["context"] == f"replay:{annotator}"]
    return {
        row.model: (row.generation_id, row.text, row.error if isinstance(row.error, str) else None)
        for row in mine.itertuples()
    }


async def test_each_broken_side_fails_alone_with_a_clear_error_in_time(app) -> None:
    server, db = app
    s = await _session(server.url, "ann1")
    async with s:
        started = time.monotonic()
        result = await _open_turn(s, list(SIDES))
        elapsed = time.monotonic() - started
        assert result.ok, result.output
        # Done when the stalled side's read timeout ran out, not before (it really waited) and not much after.
        assert READ_TIMEOUT <= elapsed < READ_TIMEOUT + 20, elapsed
        shown = _answers_shown(s, result)
        assert "arena-error" not in shown[0] and shown[0].strip()  # the healthy side answered
        for k, side in enumerate(SIDES[1:], start=1):
            assert "arena-error" in shown[k] and ERRORS[side] in shown[k], (side, shown[k])
        # Only the healthy side's score can be given.
        outputs = s.dependency(target=("replay-next", "click"))["outputs"]
        for k, side in enumerate(SIDES):
            score = next(i for i in outputs if s.elem_id(i) == f"replay-score-{k}")
            assert result.output[outputs.index(score)]["interactive"] is (side == "tiny"), side

        # A client that sends scores for every side anyway: the failed ones are left out.
        submit = s.dependency(target=("replay-submit", "click"))
        saved = await s.call(submit, s.inputs(submit, **s.shown, **{f"replay_score_{k}": 5 for k in range(4)}))
        assert saved.ok and ": 1개 답변의 평가를 저장했습니다" in saved.text(), saved.output
    gens = _replay_generations(db, "ann1")
    assert gens["tiny"][2] is None and gens["tiny"][1]
    for side in SIDES[1:]:
        assert gens[side][2].startswith(ERRORS[side]), gens[side]
    with Store.open(db) as store:
        ratings = store.ratings_frame()
    assert list(ratings["model"]) == ["tiny"] and list(ratings["score"]) == [5]


async def test_other_annotators_go_on_while_a_side_stalls(app) -> None:
    server, _ = app
    stuck, other = await _session(server.url, "ann2"), await _session(server.url, "boss")
    async with stuck, other:
        started = time.monotonic()
        slow = asyncio.create_task(_open_turn(stuck, ["tiny", "stalled"]))
        await asyncio.sleep(0.5)  # the stalled stream is open and silent now
        fast = await _open_turn(other, ["tiny", "refused"])
        fast_done = time.monotonic() - started
        stuck_result = await slow
        stuck_done = time.monotonic() - started
    assert fast.ok and stuck_result.ok
    # The other annotator's turn (a model answering, a dead server failing fast) was done long before the
    # stalled stream timed out: one stuck side holds up neither the server nor anyone else.
    assert fast_done < READ_TIMEOUT <= stuck_done, (fast_done, stuck_done)


async def test_no_vote_lands_on_a_failed_answer(app) -> None:
    server, db = app
    # The round's judge (its models are withheld from them by name, arena.web.policies); boss's page in English,
    # whose report is checked word for word.
    boss, s = await _session(server.url + "/en", "boss"), await _session(server.url, "judge")
    async with boss, s:
        # The researcher pre-generates in the app: every answer of `refused` fails.
        assert (await boss.call(boss.dependency("rounds_load"), [])).ok
        done = await boss.call(boss.dependency("rounds_pregen"), rounds_pick="고장-라운드")
        assert done.ok and "0 already stored, 4 generated, 4 failed" in done.text(), done.output
        assert (await s.call(s.dependency("blind_rounds"), [])).ok
        served = await s.call(s.dependency("blind_next"), blind_round="고장-라운드")
        assert "모두 평가했습니다" in served.text() or "남은 항목 0" in served.text(), served.output
        vote = await s.call(s.dependency("blind_submit"), blind_vote="left", blind_score_0=5, blind_score_1=1)
        assert vote.ok and "✅" not in vote.text()
    with Store.open(db) as store:
        status = rounds.round_status(store, "고장-라운드")
        assert store.votes_frame().empty
    assert status.items_failed == status.items == 4 and status.items_ready == 0

"""Access control against a real `arena serve`, over raw HTTP as a script (not a browser) would call it.

Annotators reach no researcher function, hidden tab or not; nobody rates in someone else's name; no
request without a login gets anything; passwords are stored as salted hashes; the server listens on
127.0.0.1 unless told otherwise. (No model name before the vote: tests/test_blind_ui.py, extended
here to the English app.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from arena.cli import build_parser
from arena.store import Store
from arena.web.server import ServeConfig
from tests.arena_process import ArenaProcess
from tests.fake_model_servers import running
from tests.gradio_http import CallResult, GradioSession
from tests.rounds_helpers import make_round, registry_of, server_models_yaml, store_answers

pytestmark = pytest.mark.slow
PW = "pw-1234"
ANNOTATORS = ("ann1", "ann2")
RESEARCHER = "연구자"
SECRET = ("secret-gamma-13b", "secret-delta-lora")
ROUND = "접근-라운드"
DENIED = ("연구자 계정만", "Researcher accounts only", "Only researcher accounts")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    """A served store with two annotators, a researcher and a running round of stored answers."""
    tmp = tmp_path_factory.mktemp("access")
    with running("instant") as model:
        served = server_models_yaml(tmp / "serve.yaml", ["m-a", "m-b"], model.base_url)
        db = str(tmp / "ratings.db")
        with Store.open(db) as store:
            for name in ANNOTATORS:
                store.add_annotator(name, PW)
            store.add_annotator(RESEARCHER, PW, role="researcher")
            round_models = registry_of(server_models_yaml(tmp / "round.yaml", list(SECRET), model.base_url))
            rid, _ = make_round(
                store,
                round_models,
                ROUND,
                models=list(SECRET),
                annotators=list(ANNOTATORS),
                eval_sets=["emotion"],
                judgements=2,
            )
            store_answers(store, rid)
        with ArenaProcess(served, db, tmp / "serve.log") as server:
            yield server, db


async def _session(url: str, user: str) -> GradioSession:
    s = GradioSession(url)
    assert await s.login(user, PW), user
    await s.load_config()
    await s.page_loaded()
    return s


def _is_denied(r: CallResult) -> bool:
    """Refused: by Gradio (a value the page never offered this user) or by the handler's role check."""
    return (not r.ok and "not in the list of choices" in r.text()) or (r.ok and any(d in r.text() for d in DENIED))


# ------------------------------------------------------------------------------------------ no login


def test_requests_without_a_login_get_nothing(app) -> None:
    server, _ = app
    http = httpx.Client(base_url=server.url, timeout=30)
    for path in (
        "/config",
        "/en/config",
        "/gradio_api/info",
        "/gradio_api/openapi.json",
        "/en/gradio_api/info",
        "/gradio_api/queue/data?session_hash=x",
        "/gradio_api/file=/etc/passwd",
    ):
        assert http.get(path).status_code == 401, path
    join = {"data": [], "fn_index": 0, "session_hash": "nobody", "event_data": None, "trigger_id": None}
    for path in ("/gradio_api/queue/join", "/en/gradio_api/queue/join"):
        assert http.post(path, json=join).status_code == 401, path
    assert http.post("/gradio_api/call/blind_next", json={"data": [None]}).status_code == 401
    assert http.post("/gradio_api/upload", files={"files": ("x.txt", b"x")}).status_code == 401
    assert http.post("/api/adapters", json={"path": "/tmp", "base": "m-a"}).status_code == 401
    assert http.post("/api/adapters", json={"path": "/tmp", "base": "m-a"}, auth=("ann1", "wrong")).status_code == 401
    wrong = http.post("/login", data={"username": "ann1", "password": "wrong"})
    assert wrong.status_code == 400 and not wrong.cookies
    page = http.get("/").text  # the login page, and nothing of the arena's content
    assert not any(x in page for x in (ROUND, *SECRET, *ANNOTATORS, "m-a"))


# ------------------------------------------------------------------------------------------ researcher functions

# (api_name or (elem_id, event), values an attacker would send): every researcher action of the UI.
RESEARCHER_EVENTS: list[tuple[Any, dict[str, Any]]] = [
    (
        "rounds_create",
        {
            "round_name": "침입",
            "round_eval_sets": ["emotion"],
            "round_models": ["m-a", "m-b"],
            "round_annotators": ["ann1"],
        },
    ),
    ("rounds_start", {"rounds_pick": ROUND}),
    ("rounds_close", {"rounds_pick": ROUND}),
    ("rounds_pregen", {"rounds_pick": ROUND}),
    ("rounds_status", {"rounds_pick": ROUND}),
    ("rounds_export_csv", {"rounds_pick": ROUND}),
    ("rounds_export_jsonl", {"rounds_pick": ROUND}),
    (("adapters-load", "click"), {"adapters_pick": "/tmp", "adapters_base": "m-a"}),
    (("adapters-refresh", "click"), {"adapters_dir": "/"}),
    (("lb-refresh", "click"), {}),
    (("lb-recall-run", "click"), {"lb_recall_models": ["m-a"]}),
]


def _dep(s: GradioSession, event: Any) -> dict[str, Any]:
    return s.dependency(event) if isinstance(event, str) else s.dependency(target=event)


@pytest.mark.parametrize("lang_path", ["", "/en"])
async def test_annotators_reach_no_researcher_function_by_direct_calls(app, lang_path: str) -> None:
    server, db = app
    s = await _session(server.url + lang_path, "ann1")
    async with s:
        for event, values in RESEARCHER_EVENTS:
            dep = _dep(s, event)
            for data in (s.inputs(dep, **values), s.inputs(dep)):  # forged values, then the page's own
                r = await s.call(dep, data)
                assert _is_denied(r), (event, r.output)
                assert not any(x in r.text() for x in (*SECRET, "ann2", ".csv", ".jsonl")), (event, r.output)
        # Gradio's REST route runs the same handler, with the same check.
        call = await s.http.post("/gradio_api/call/rounds_start", json={"data": [None]})
        assert call.status_code == 200
        result = await s.http.get(f"/gradio_api/call/rounds_start/{call.json()['event_id']}")
        data = json.loads(result.text.split("data:", 1)[1])
        assert any(d in json.dumps(data, ensure_ascii=False) for d in DENIED), result.text
        # The hidden tabs stay hidden: every "show" event answers this user with visible=False.
        for event in ("rounds_load", "show_leaderboard", "show"):
            r = await s.call(s.dependency(event), s.inputs(s.dependency(event)))
            assert r.ok and '"visible": false' in r.text() and '"visible": true' not in r.text(), (event, r.output)
    denied = httpx.post(server.url + "/api/adapters", json={"path": "/tmp", "base": "m-a"}, auth=("ann1", PW))
    assert denied.status_code == 403
    with Store.open(db) as store:
        assert [r.name for r in store.list_rounds()] == [ROUND] and store.get_round(ROUND).status == "running"
        assert store.votes_frame().empty


async def test_the_researcher_gets_what_annotators_are_refused(app) -> None:
    """The control: the same calls answer a researcher, so the checks above can fail."""
    server, _ = app
    s = await _session(server.url, RESEARCHER)
    async with s:
        assert (await s.call(s.dependency("rounds_load"), [])).ok
        status = await s.call(s.dependency("rounds_status"), rounds_pick=ROUND)
        assert status.ok and all(name in status.text() for name in SECRET)
        board = await s.call(s.dependency(target=("lb-refresh", "click")))
        assert board.ok and not any(d in board.text() for d in DENIED)


# ------------------------------------------------------------------------------------------ whose rating


async def _open_replay_turn(s: GradioSession) -> tuple[str, int]:
    """Pick the emotion set and go to the next unrated turn with both models picked: they answer it in
    the event chained after the opening one, as on the page. Returns the turn on screen."""
    models = {"replay_models": ["m-a", "m-b"]}
    assert (
        await s.call(
            s.dependency(target=("replay-eval-set", "input")), chained=True, replay_eval_set="emotion", **models
        )
    ).ok
    nxt = await s.call(s.dependency(target=("replay-next", "click")), chained=True, **models)
    assert nxt.ok and nxt.value("replay-dialog"), nxt.output
    return nxt.value("replay-dialog"), nxt.value("replay-turn")


def _ratings(db: str) -> list[tuple[str, str]]:
    with Store.open(db) as store:
        frame = store.ratings_frame()
    return sorted(zip(frame["annotator"], frame["comment"]))


async def test_a_rating_is_always_in_the_name_of_the_logged_in_user(app) -> None:
    server, db = app
    victim, attacker = await _session(server.url, "ann2"), await _session(server.url, "ann1")
    async with victim, attacker:
        shown = await _open_replay_turn(victim)
        submit = attacker.dependency(target=("replay-submit", "click"))
        ids = [attacker.elem_id(i) for i in submit["inputs"]]
        # No input names anyone: the turn on screen (checked against the session's), the session state
        # (never sent by a client), then scores, criteria, comments.
        assert ids[:4] == ["replay-dialog", "replay-turn", "replay-models", None] and all(
            x.startswith(("replay-score-", "replay-criteria-", "replay-comment-")) for x in ids[4:]
        ), ids
        # The attacker knows the victim's session and names the victim every way the request allows.
        attacker.session_hash = victim.session_hash
        data = attacker.inputs(
            submit,
            replay_dialog=shown[0],
            replay_turn=shown[1],
            replay_models=["m-a", "m-b"],
            replay_score_0=1,
            replay_score_1=1,
            replay_comment_0="위조",
            replay_comment_1="위조",
        )
        joined = await attacker.http.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": submit["id"],
                "session_hash": victim.session_hash,
                "trigger_id": None,
                "event_data": {"username": "ann2"},
                "username": "ann2",
            },
            headers={"X-Forwarded-User": "ann2"},
        )
        assert joined.status_code == 200
        async with attacker.http.stream(
            "GET", "/gradio_api/queue/data", params={"session_hash": victim.session_hash}
        ) as r:
            async for line in r.aiter_lines():
                if '"close_stream"' in line:
                    break
        assert [r for r in _ratings(db) if r[1] == "위조"] == [("ann1", "위조")] * 2  # the attacker's own name
        assert not [r for r in _ratings(db) if r[0] == "ann2"]
        dialog, turn = await _open_replay_turn(victim)
        mine = await victim.call(
            submit,
            victim.inputs(
                submit,
                replay_dialog=dialog,
                replay_turn=turn,
                replay_models=["m-a", "m-b"],
                replay_score_0=4,
                replay_score_1=5,
                replay_comment_0="내 평가",
                replay_comment_1="내 평가",
            ),
        )
        assert mine.ok and "✅" in mine.text()
    assert [r for r in _ratings(db) if r[0] == "ann2"] == [("ann2", "내 평가"), ("ann2", "내 평가")]


async def test_a_blind_vote_is_in_the_voters_name_and_leaks_nothing_in_english_either(app) -> None:
    server, db = app
    s = await _session(server.url + "/en", "ann1")
    async with s:
        seen = [(await s.http.get(p)).text for p in ("/", "/config", "/gradio_api/info", "/gradio_api/openapi.json")]
        seen.append((await s.call(s.dependency("blind_rounds"), [])).text())
        served = await s.call(s.dependency("blind_next"), blind_round=ROUND)
        seen.append(served.text())
        assert "답변" in served.text() and not any(name in page for page in seen for name in SECRET)
        vote = await s.call(s.dependency("blind_submit"), blind_vote="left", blind_score_0=4, blind_score_1=2)
        assert vote.ok and all(name in vote.text() for name in SECRET)  # revealed only after the vote
    with Store.open(db) as store:
        assert list(store.votes_frame()["annotator"]) == ["ann1"]


async def test_an_oversized_request_is_refused_before_it_is_read_or_stored(app) -> None:
    """No field of the UI takes megabytes: a 2 MB "comment" or upload ends at the door (413), nothing stored."""
    server, db = app
    s = await _session(server.url, "ann2")
    async with s:
        dialog, turn = await _open_replay_turn(s)
        submit = s.dependency(target=("replay-submit", "click"))
        shown = {"replay_dialog": dialog, "replay_turn": turn, "replay_models": ["m-a", "m-b"]}
        huge = await s.call(
            submit, s.inputs(submit, **shown, replay_score_0=3, replay_score_1=3, replay_comment_0="가" * 700_000)
        )
        assert huge.http_status == 413 and not huge.ok
        upload = await s.http.post("/gradio_api/upload", files={"files": ("big.bin", b"x" * 2_000_000)})
        assert upload.status_code == 413
        fine = await s.call(
            submit, s.inputs(submit, **shown, replay_score_0=3, replay_score_1=3, replay_comment_0="나" * 50_000)
        )
        assert fine.ok and "✅" in fine.text()  # a long comment is still a comment
    comments = [c for _, c in _ratings(db)]
    assert "나" * 50_000 in comments and not any(c.startswith("가" * 1000) for c in comments)


# ------------------------------------------------------------------------------------------ storage and binding


def test_passwords_are_stored_as_salted_scrypt_hashes(app) -> None:
    _, db = app
    with Store.open(db) as store, store.engine.connect() as conn:
        hashes = dict(conn.execute(sa.text("SELECT name, password_hash FROM annotators")).all())
    assert set(hashes) == {*ANNOTATORS, RESEARCHER}
    assert all(h.startswith("scrypt$16384$8$1$") and PW not in h for h in hashes.values())
    assert len(set(hashes.values())) == len(hashes)  # one password, three different salts
    for path in Path(db).parent.glob("ratings.db*"):  # the database file and its WAL
        assert PW.encode() not in path.read_bytes(), path


def test_the_app_listens_on_loopback_unless_told_otherwise(app) -> None:
    server, _ = app
    parser = build_parser()
    for command in (["serve"], ["demo"]):
        assert parser.parse_args(command).host == "127.0.0.1"
    assert ServeConfig(models_config=Path("x"), db="x").host == "127.0.0.1"
    assert "--host" not in server.extra  # the fixture's server was started without one
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == server.port:  # 0A: LISTEN
                listening.add(local.rsplit(":", 1)[0])
    assert listening == {"0100007F"}, listening  # 127.0.0.1 only: not 0.0.0.0, not ::

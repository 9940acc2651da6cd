"""The blind tab against a real `arena serve`: raw HTTP shows no model name reaches the browser
before the vote (page, config, API info and every Gradio API response), the vote reveals them,
double submits count once, the rounds tab refuses annotators, and a real browser casts one vote.

The round's models are pre-generated from their own models file under names the server does not
serve: the page's other tabs list the served models, so only names that exist nowhere but in the
store prove that the blind tab itself leaks nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from typing import Any

import httpx
import pytest

from arena import rounds
from arena.rounds import export, pregen
from arena.store import Store
from arena.web.ui import render
from tests.browser import CHROMIUM_ARGS, ROOT, chromium_path, login, serve, write_models_yaml
from tests.rounds_helpers import make_round, registry_of, shipped_dialogs, tiny_models_yaml

pytestmark = pytest.mark.slow
SECRET = ("secret-alpha-7b", "secret-beta-lora")
ROUND = "블라인드-1"


@pytest.fixture(scope="module")
def blind_server(tiny_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blind")
    db = str(tmp / "ratings.db")
    registry = registry_of(
        tiny_models_yaml(tmp / "round-models.yaml", tiny_models, {SECRET[0]: "polyglot-tiny", SECRET[1]: "llama-tiny"})
    )
    with Store.open(db) as store:
        for name in ("지혜", "lee", "choi"):
            store.add_annotator(name, "pw-1234")
        store.add_annotator("박사", "pw-1234", role="researcher")
        rid, _ = make_round(
            store,
            registry,
            ROUND,
            models=list(SECRET),
            annotators=["지혜", "lee", "choi"],
            eval_sets=["emotion"],
            judgements=3,
        )

        async def generate() -> pregen.Report:
            try:
                return await pregen.run(store, rid, registry, shipped_dialogs())
            finally:
                await registry.aclose()

        assert asyncio.run(generate()).failed == 0
    served = write_models_yaml(tmp / "serve.yaml", tiny_models, max_tokens=8)
    with serve(served, db, tmp / "serve.log") as url:
        yield url, db, rid


class RawSession:
    """A logged-in Gradio session over plain HTTP that keeps every response body it saw."""

    def __init__(self, url: str, user: str, password: str = "pw-1234") -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        login = self.http.post("/login", data={"username": user, "password": password})
        assert login.status_code == 200, login.text
        self.session_hash = uuid.uuid4().hex[:12]
        self.bodies: list[str] = []
        self.config = json.loads(self.get("/config"))

    def get(self, path: str) -> str:
        response = self.http.get(path)
        assert response.status_code == 200, (path, response.status_code)
        self.bodies.append(response.text)
        return response.text

    def dependency(self, api_name: str) -> dict[str, Any]:
        return next(d for d in self.config["dependencies"] if d.get("api_name") == api_name)

    def join(self, dep: dict[str, Any], data: list[Any]) -> None:
        trigger = dep["targets"][0][0] if dep.get("targets") else None
        response = self.http.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": dep["id"],
                "session_hash": self.session_hash,
                "event_data": None,
                "trigger_id": trigger,
            },
        )
        assert response.status_code == 200, response.text
        self.bodies.append(response.text)

    def results(self, ok: bool = True) -> list[list[Any]]:
        """Read the session's event stream until the server closes it; the outputs of each completed call
        (with ``ok=False``, the error payloads of calls the server refused)."""
        outputs, text = [], []
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as resp:
            for line in resp.iter_lines():
                text.append(line)
                if not line.startswith("data: "):
                    continue
                msg = json.loads(line[6:])
                if msg["msg"] == "process_completed":
                    assert msg["success"] is ok, msg
                    outputs.append(msg["output"]["data"] if ok else msg["output"])
                if msg["msg"] == "close_stream":
                    break
        self.bodies.append("\n".join(text))
        return outputs

    def call(self, api_name: str, data: list[Any], ok: bool = True) -> Any:
        self.join(self.dependency(api_name), data)
        (out,) = self.results(ok)
        return out

    def seen(self) -> str:
        return "\n".join(self.bodies)


def _inputs(session: RawSession, api_name: str, **values: Any) -> list[Any]:
    """A call's input values: given ones by elem_id, the rest as the page first showed them (State has none:
    a browser never holds or sends State values)."""
    props = {c["id"]: c.get("props", {}) for c in session.config["components"]}
    return [
        values.get(props[i].get("elem_id") or "", props[i].get("value")) for i in session.dependency(api_name)["inputs"]
    ]


def _votes(db: str, annotator: str) -> int:
    with Store.open(db) as store:
        frame = store.votes_frame()
    return int((frame["annotator"] == annotator).sum())


def test_no_model_name_reaches_the_browser_before_the_vote(blind_server):
    url, db, rid = blind_server
    s = RawSession(url, "지혜")
    for path in ("/", "/en/", "/gradio_api/info", "/config?deep_link=", "/gradio_api/openapi.json"):
        s.get(path)
    # Every event the page fires on load, with the components' initial values, as a browser would.
    by_id = {c["id"]: c for c in s.config["components"]}
    for dep in s.config["dependencies"]:
        if any(t[1] == "load" for t in dep.get("targets", [])):
            s.join(dep, [by_id[i].get("props", {}).get("value") for i in dep["inputs"]])
            s.results()
    rounds_out = s.call("blind_rounds", [])
    assert ROUND in json.dumps(rounds_out, ensure_ascii=False)
    shown = s.call("blind_next", _inputs(s, "blind_next", **{"blind-round": ROUND}))
    s.call("blind_round_changed", _inputs(s, "blind_round_changed", **{"blind-round": ROUND}))
    shown = s.call("blind_next", _inputs(s, "blind_next", **{"blind-round": ROUND}))
    # The researchers' tab: its handlers answer an annotator with a notice only, and its round picker
    # (never filled in for them) refuses a round name typed in by hand.
    assert "choi" not in json.dumps(s.call("rounds_load", []), ensure_ascii=False)
    for api in ("rounds_status", "rounds_refresh", "rounds_export_csv", "rounds_start", "rounds_pregen"):
        out = s.call(api, _inputs(s, api))
        assert api == "rounds_refresh" or "연구자 계정만" in json.dumps(out, ensure_ascii=False), (api, out)
        refused = s.call(api, _inputs(s, api, **{"rounds-pick": ROUND}), ok=False)
        assert "not in the list of choices" in refused["error"]

    # The served item is really in these responses: both answers' HTML, as stored.
    with Store.open(db) as store:
        texts = [g for g in store.generations_frame(rid)["text"]]
    payload = json.dumps(shown, ensure_ascii=False)
    assert sum(json.dumps(render.answer_html(t, [], "ko"), ensure_ascii=False)[1:-1] in payload for t in texts) >= 2
    seen = s.seen()
    for name in SECRET:
        assert name not in seen, f"{name} leaked before the vote"
    with Store.open(db) as store:
        keys = [r.item_key for r in store.round_items(rid)]
    assert f"round:{rid}" not in seen and not any(k in seen for k in keys)  # no generation context, no item key

    dep = s.dependency("blind_submit")
    vote = _inputs(s, "blind_submit", **{"blind-vote": "left", "blind-score-0": 4, "blind-score-1": 2})
    # Two submits of the same item in flight at once (a double click): one vote.
    s.join(dep, vote)
    s.join(dep, vote)
    outs = s.results()
    assert len(outs) == 2 and _votes(db, "지혜") == 1
    revealed = json.dumps(outs, ensure_ascii=False)
    assert all(name in revealed for name in SECRET)  # revealed after the vote
    again = json.dumps(s.call("blind_submit", vote), ensure_ascii=False)
    assert "이미 투표한" in again and _votes(db, "지혜") == 1

    # The next item is blind again.
    before = len(s.bodies)
    s.call("blind_next", _inputs(s, "blind_next", **{"blind-round": ROUND}))
    assert not any(name in body for body in s.bodies[before:] for name in SECRET)


def test_submit_without_scores_or_vote_is_refused(blind_server):
    url, db, _ = blind_server
    s = RawSession(url, "choi")
    s.call("blind_rounds", [])  # fills this session's round picker, as the page load does
    s.call("blind_next", _inputs(s, "blind_next", **{"blind-round": ROUND}))
    out = json.dumps(s.call("blind_submit", _inputs(s, "blind_submit", **{"blind-vote": "tie"})), ensure_ascii=False)
    assert "점수를 모두" in out and _votes(db, "choi") == 0
    out = json.dumps(
        s.call("blind_submit", _inputs(s, "blind_submit", **{"blind-score-0": 3, "blind-score-1": 3})),
        ensure_ascii=False,
    )
    assert "골라 주세요" in out and _votes(db, "choi") == 0
    out = json.dumps(
        s.call("blind_skip", _inputs(s, "blind_skip", **{"blind-round": ROUND, "blind-skip-reason": "모름"})),
        ensure_ascii=False,
    )
    assert "건너뛰었습니다" in out and not any(name in out for name in SECRET)
    with Store.open(db) as store:
        assert list(store.skips_frame()["reason"]) == ["모름"]


def test_researcher_sees_status_and_downloads_csv(blind_server):
    url, db, _ = blind_server
    s = RawSession(url, "박사")
    loaded = json.dumps(s.call("rounds_load", []), ensure_ascii=False)
    assert ROUND in loaded and "choi" in loaded  # the panel is filled in for researchers only
    status = json.dumps(
        s.call("rounds_status", _inputs(s, "rounds_status", **{"rounds-pick": ROUND})), ensure_ascii=False
    )
    assert all(name in status for name in SECRET)
    exported = s.call("rounds_export_csv", _inputs(s, "rounds_export_csv", **{"rounds-pick": ROUND}))
    file_value = next(v for v in exported if isinstance(v, dict) and v.get("value", {}).get("path"))
    response = s.http.get(f"/gradio_api/file={file_value['value']['path']}")
    assert response.status_code == 200 and response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    with Store.open(db) as store:
        expected = export.round_rows(store, ROUND)
    assert [r["item_key"] for r in rows] == [r["item_key"] for r in expected]
    assert all(r["round"] == ROUND for r in rows)


def test_researcher_creates_starts_and_pregenerates_in_the_ui(blind_server):
    url, db, _ = blind_server
    s = RawSession(url, "박사")
    s.call("rounds_load", [])
    fields = {
        "round-name": "ui-round",
        "round-eval-sets": ["emotion"],
        "round-models": ["polyglot-tiny", "llama-tiny"],
        "round-annotators": ["lee"],
        "round-judgements": 2,
        "round-seed": 4,
        "round-max-tokens": 4,
        "round-dialogs": "emotion-exam-*",
        "round-sampling": "active",
    }
    created = json.dumps(s.call("rounds_create", _inputs(s, "rounds_create", **fields)), ensure_ascii=False)
    n_items = rounds.count_items(
        rounds.RoundConfig(eval_sets=["emotion"], dialogs=["emotion-exam-*"], models=["a", "b"], annotators=["lee"]),
        shipped_dialogs(),
    )
    assert f"ui-round을(를) 만들었습니다 (항목 {n_items}개)" in created, created
    bad = json.dumps(
        s.call(
            "rounds_create",
            _inputs(s, "rounds_create", **{**fields, "round-name": "x", "round-models": ["llama-tiny"]}),
        ),
        ensure_ascii=False,
    )
    assert "⚠️" in bad and "모델을 2개 이상 고르세요" in bad
    started = json.dumps(
        s.call("rounds_start", _inputs(s, "rounds_start", **{"rounds-pick": "ui-round"})), ensure_ascii=False
    )
    assert "시작" in started
    done = json.dumps(
        s.call("rounds_pregen", _inputs(s, "rounds_pregen", **{"rounds-pick": "ui-round"})), ensure_ascii=False
    )
    assert f"필요한 답변 {2 * n_items}개 · 이미 저장됨 0개 · 새로 생성 {2 * n_items}개 · 실패 0개" in done, done
    with Store.open(db) as store:
        found = store.get_round("ui-round")
        gens = store.generations_frame(found.id)
    assert found.status == "running" and found.config["options"] == {"max_tokens": 4}
    assert found.config["dialogs"] == ["emotion-exam-*"] and found.seed == 4
    assert found.config["sampling"] == "active"
    shown = json.dumps(s.call("rounds_status", _inputs(s, "rounds_status", **{"rounds-pick": "ui-round"})))
    assert "멈춤 규칙" in json.loads(shown)[3] and "능동 샘플링" in json.loads(shown)[3]  # no votes yet
    assert len(gens) == 2 * n_items and (gens["tokens"] <= 4).all() and gens["error"].isna().all()


def test_one_blind_vote_in_the_browser(blind_server):
    from playwright.sync_api import expect, sync_playwright

    url, db, rid = blind_server
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        login(page, url, "lee", "pw-1234")
        page.get_by_role("tab", name="블라인드 A/B 평가").click()
        expect(page.locator("#blind-progress")).to_contain_text("남은 항목", timeout=60_000)
        expect(page.locator("#blind-header-0")).to_have_text("A")
        expect(page.locator("#blind-header-1")).to_have_text("B")
        html = page.content()
        assert not any(name in html for name in SECRET)
        page.locator('#blind-score-0 input[value="5"]').click()
        page.locator('#blind-score-1 input[value="1"]').click()
        page.locator('#blind-vote input[value="right"]').click()
        page.screenshot(path=str(artifacts / "blind-before-vote.png"), full_page=True)
        page.locator("#blind-submit").click()
        expect(page.locator("#blind-status")).to_contain_text("저장", timeout=30_000)
        expect(page.locator("#blind-header-0")).to_contain_text("secret-")
        revealed = page.locator("#blind-header-0").inner_text() + page.locator("#blind-header-1").inner_text()
        assert all(name in revealed for name in SECRET)
        page.screenshot(path=str(artifacts / "blind-after-vote.png"), full_page=True)
        browser.close()
    with Store.open(db) as store:
        votes = store.votes_frame(rid)
        ratings = store.ratings_frame()
    row = votes[votes["annotator"] == "lee"].iloc[0]
    right_model = row["model_b"] if row["a_position"] == "left" else row["model_a"]
    winner = {"a": row["model_a"], "b": row["model_b"]}[row["choice"]]
    assert winner == right_model  # "B is better" = the right-hand answer, whichever model that was
    mine = ratings[ratings["annotator"] == "lee"]
    assert dict(zip(mine["model"], mine["score"])) == {right_model: 1, ({*SECRET} - {right_model}).pop(): 5}

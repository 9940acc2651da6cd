"""A curious annotator against a server that really serves the blind round's models (issue 14 items 1-3).

The round is pre-generated with the very models the server offers in Replay and Live, greedily, as the
shipped configs do. The researcher (not a judge of the round) shows what an annotator could do before:
replaying a round turn under the model names gives the round's blind answers byte for byte. The
round's annotator gets neither those answers nor the model names, from any tab or endpoint.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from arena.rounds import pregen
from arena.store import Store
from tests.browser import serve, write_models_yaml
from tests.rounds_helpers import make_round, registry_of, shipped_dialogs
from tests.test_blind_ui import RawSession

pytestmark = pytest.mark.slow
MODELS = ("polyglot-tiny", "llama-tiny")  # the names write_models_yaml serves
ROUND = "눈가림-라운드"
JUDGE, OTHER, RESEARCHER = "lee", "choi", "박사"


@pytest.fixture(scope="module")
def served_round(tiny_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blindness")
    db = str(tmp / "ratings.db")
    served = write_models_yaml(tmp / "serve.yaml", tiny_models, max_tokens=8)
    registry = registry_of(served)
    with Store.open(db) as store:
        for name in (JUDGE, OTHER):
            store.add_annotator(name, "pw-1234")
        store.add_annotator(RESEARCHER, "pw-1234", role="researcher")
        rid, _ = make_round(
            store,
            registry,
            ROUND,
            models=list(MODELS),
            annotators=[JUDGE],
            eval_sets=["emotion"],
            dialogs=["emotion-exam-*"],
            judgements=1,
        )

        async def generate() -> pregen.Report:
            try:
                return await pregen.run(store, rid, registry, shipped_dialogs())
            finally:
                await registry.aclose()

        assert asyncio.run(generate()).failed == 0
        item = store.round_items(rid)[0]
        answers = {g.text for g in store.generations_frame(rid).itertuples() if g.text}
    with serve(served, db, tmp / "serve.log") as url:
        yield url, db, rid, item, answers


def _event(s: RawSession, elem_id: str | None, event: str) -> dict[str, Any]:
    return next(
        d
        for d in s.config["dependencies"]
        if any(s_elem(s, t[0]) == elem_id and t[1] == event for t in d.get("targets", []))
    )


def _fire(s: RawSession, dep: dict[str, Any], **given: Any) -> list[Any]:
    """Fire one event and read its stream to the end, refused or not (what a browser would receive), then
    the events the page chains after it (replay answers a turn in the event after the one opening it)."""
    s.join(dep, _values(s, dep, **given))
    _drain(s)
    for after in [d for d in s.config["dependencies"] if d.get("trigger_after") == dep["id"]]:
        _fire(s, after, **given)
    return []


def _replay(s: RawSession, item: Any, models: list[str]) -> None:
    """As the page does it: fill the pickers on load, choose the set, the dialog, then the round item's turn
    with the given models picked."""
    for dep in s.config["dependencies"]:  # every first event on load (fills the pickers for this account)
        if any(t[1] == "load" for t in dep.get("targets", [])) and dep.get("trigger_after") is None:
            _fire(s, dep)
    # The models are picked throughout, as on the page: each step opens a turn and lets them answer it.
    _fire(s, _event(s, "replay-eval-set", "input"), **{"replay-eval-set": item.eval_set, "replay-models": models})
    _fire(s, _event(s, "replay-dialog", "input"), **{"replay-dialog": item.dialog_id, "replay-models": models})
    _fire(
        s,
        _event(s, "replay-turn", "input"),
        **{"replay-dialog": item.dialog_id, "replay-turn": item.turn_index, "replay-models": models},
    )


def _live(s: RawSession, models: list[str], text: str) -> list[Any]:
    """Send one Live message with the given models picked; the answer step that follows it runs too."""
    send = _event(s, "live-send", "click")
    _fire(s, send, **{"live-message": text, "live-models": models})  # and the answer step chained to it
    return []


def _drain(s: RawSession) -> None:
    """Read the session's event stream to its end, refused calls included (they are seen too)."""
    with s.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": s.session_hash}) as resp:
        lines = []
        for line in resp.iter_lines():
            lines.append(line)
            if '"close_stream"' in line:
                break
    s.bodies.append("\n".join(lines))


def s_elem(s: RawSession, component: int) -> str | None:
    return next((c.get("props", {}).get("elem_id") for c in s.config["components"] if c["id"] == component), None)


def _values(s: RawSession, dep: dict[str, Any], **given: Any) -> list[Any]:
    props = {c["id"]: c.get("props", {}) for c in s.config["components"]}
    return [given.get(props[i].get("elem_id") or "", props[i].get("value")) for i in dep["inputs"]]


def _texts(db: str, context: str) -> set[str]:
    with Store.open(db) as store:
        frame = store.generations_frame()
    return {t for t, c in zip(frame["text"], frame["context"]) if c == context and t}


def test_named_replay_reproduces_blind_answers_for_a_non_judge(served_round) -> None:
    # The attack is real: greedy decoding and the replay prompt give the round's answers under names.
    url, db, _, item, answers = served_round
    s = RawSession(url, RESEARCHER)
    _replay(s, item, list(MODELS))
    assert _texts(db, f"replay:{RESEARCHER}") & answers, "replay did not reproduce the blind answers"


def test_the_rounds_judge_cannot_replay_or_chat_with_the_rounds_models(served_round) -> None:
    url, db, _, item, answers = served_round
    s = RawSession(url, JUDGE)
    _replay(s, item, list(MODELS))  # forged: the picker never offered these names
    _live(s, list(MODELS), "안녕하세요")
    assert not _texts(db, f"replay:{JUDGE}") and not _texts(db, f"live:{JUDGE}")
    # Gradio refuses the forged picks and echoes them back ("Value: 'llama-tiny' ... is not in the list of
    # choices: []"): the names there are the ones this client sent, not something the server told it.
    seen = re.sub(r"Value: [^\n]*? is not in the list of choices: \[\]", "", s.seen())
    assert "is not in the list of choices" in s.seen()
    assert not any(a in seen for a in answers)
    leaks = [seen[max(0, seen.find(m) - 300) : seen.find(m) + 100] for m in MODELS if m in seen]
    assert not leaks, f"a round model's name reached its judge: {leaks}"


def test_nothing_the_judge_can_call_names_the_rounds_models(served_round) -> None:
    url, db, rid, _, _ = served_round
    for path in ("/", "/config", "/en/config"):
        s = RawSession(url if path != "/en/config" else url.rstrip("/") + "/en/", JUDGE)
        s.get(path if path != "/en/config" else "/config")
        # Every event of the app with the values the page shows (the vote handler needs a vote first).
        for dep in s.config["dependencies"]:
            if not dep.get("backend_fn", True) or dep.get("api_name") == "blind_submit":
                continue
            s.join(dep, _values(s, dep))
            _drain(s)
        seen = s.seen()
        for name in MODELS:
            assert name not in seen, f"{name} reached the round's judge through {path}'s events"
        rest = seen.replace(url.rstrip("/"), "")
        for needle in ("tiny-test", "models/", "adapters/", "http://127.0.0.1"):
            at = rest.find(needle)
            assert at < 0, f"{needle!r} (infrastructure) reached an annotator: {rest[max(0, at - 300) : at + 100]}"


def test_other_accounts_still_see_and_use_the_models(served_round) -> None:
    url, db, _, item, _ = served_round
    s = RawSession(url, OTHER)  # not a judge of the round: nothing is withheld from them
    _replay(s, item, list(MODELS))
    assert all(m in s.seen() for m in MODELS)
    assert _texts(db, f"replay:{OTHER}")


def test_closing_the_round_gives_the_models_back(served_round) -> None:
    # Last in this module: the round stays closed.
    url, db, rid, item, _ = served_round
    with Store.open(db) as store:
        store.close_round(rid)
    s = RawSession(url, JUDGE)
    _replay(s, item, list(MODELS))
    assert _texts(db, f"replay:{JUDGE}")

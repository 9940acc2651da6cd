"""Leaderboards end to end: a real store filled through Store methods from models of known strength, read back
by the `arena leaderboard` command and the Leaderboard tab."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arena import PROJECT_ROOT
from arena.cli import main
from arena.core.dialogs import Dialog, eval_set_files, load_dialogs
from arena.core.metrics import score_step
from arena.leaderboards.assembly import build_leaderboards
from arena.leaderboards.frames import generations_input, index_dialogs, votes_input
from arena.stats.agreement import alpha_bootstrap
from arena.store import Store
from backends.base import ToolCall

N_BOOT = 60  # CIs only need to exist and be reproducible here; two shared cores
SETS = ("dobae_qa", "persona", "tool_calls")
STRENGTH = {"ko-strong": 1250.0, "ko-mid": 1000.0, "ko-weak": 750.0}  # BT ratings the votes are drawn from
QUALITY = {"ko-strong": 4.3, "ko-mid": 3.0, "ko-weak": 1.7}  # mean 1-5 score the ratings are drawn from
SPEED = {"ko-strong": 40.0, "ko-mid": 25.0, "ko-weak": 10.0}  # tokens/s


@pytest.fixture(scope="module")
def dialogs() -> list[Dialog]:
    return [d for d in load_dialogs(eval_set_files(PROJECT_ROOT / "eval_sets")) if d.eval_set in SETS]


def _answer(model: str, dialog: Dialog, turn: int) -> tuple[str, list[dict] | None]:
    """What each simulated model says: the strong one the GT, the weak one a restatement of an earlier turn."""
    gt = dialog.turns[turn]
    calls = [c.model_dump() for c in gt.tool_calls or []] or None
    earlier = [t.content for t in dialog.turns[:turn] if t.role == "assistant" and t.content]
    if model == "ko-strong":
        return gt.content or "", calls
    if model == "ko-mid":
        text = (gt.content or "")[: max(1, len(gt.content or "") // 2)] + " 그렇습니다."
        wrong_args = [{**c, "function": {**c["function"], "arguments": "{}"}} for c in calls or []] or None
        return text, wrong_args
    return (earlier[-1] if earlier else "잘 모르겠습니다."), None


def populate(store: Store, dialogs: list[Dialog], *, seed: int = 0, r2: bool = True) -> dict[str, int]:
    """Replay answers rated by kim and lee, round r1 (all pairs, two voters an item) and a small r2; ids and counts."""
    rng = np.random.default_rng(seed)
    ids = {m: store.upsert_model(m, backend="local") for m in STRENGTH}
    for name in ("kim", "lee", "park"):
        store.add_annotator(name, "pw-1234")
    store.add_annotator("lead", "pw-1234", role="researcher")  # the leaderboard is for researchers
    steps = [(d, t) for d in dialogs for t in d.assistant_indices()]

    def record(model: str, d: Dialog, t: int, context: str, round_id: int | None = None, metrics: bool = False) -> int:
        text, calls = _answer(model, d, t)
        tokens = max(1, len(text))
        fields = {}
        if metrics:  # what the replay tab stores; round answers are stored without, so the adapter fills them
            m = score_step(d, t, text, ToolCall.list_from_openai(calls))
            fields = {
                "similarity": m.similarity,
                "tool_name_match": m.tool_name_match,
                "tool_args_match": m.tool_args_match,
            }
        return store.record_generation(
            model_id=ids[model],
            eval_set=d.eval_set,
            dialog_id=d.id,
            turn_index=t,
            text=text,
            tool_calls=calls,
            context=context,
            round_id=round_id,
            ttft_ms=1000.0 / SPEED[model],
            total_ms=1000.0 * tokens / SPEED[model],
            tokens=tokens,
            tokens_per_s=SPEED[model],
            **fields,
        )

    for d, t in steps:
        for annotator in ("kim", "lee"):
            gens = {m: record(m, d, t, f"replay:{annotator}", metrics=annotator == "kim") for m in STRENGTH}
            scores = {m: int(np.clip(round(QUALITY[m] + rng.normal(0, 0.6)), 1, 5)) for m in STRENGTH}
            store.save_ratings(annotator, [(gens[m], scores[m], [], "") for m in STRENGTH])

    def vote_round(name: str, pairs: list[tuple[str, str]], chosen: list[tuple[Dialog, int]], voters: int) -> int:
        # A whole round config, as `arena round create` stores it: the page's Rounds tab reads it back.
        config = {
            "models": list(STRENGTH),
            "eval_sets": sorted({d.eval_set for d, _ in chosen}),
            "annotators": ["kim", "lee", "park"],
        }
        round_id = store.create_round(name, config, seed=seed)
        store.start_round(round_id)
        gens = {(m, d.id, t): record(m, d, t, "", round_id) for d, t in chosen for m in {x for p in pairs for x in p}}
        for d, t in chosen:
            for a, b in pairs:
                p_a = 1.0 / (1.0 + 10.0 ** ((STRENGTH[b] - STRENGTH[a]) / 400.0))
                for annotator in rng.choice(["kim", "lee", "park"], voters, replace=False):
                    u = rng.random()
                    choice = "tie" if u < 0.08 else "both_bad" if u < 0.12 else ("a" if rng.random() < p_a else "b")
                    store.record_vote(
                        round_id=round_id,
                        item_key=f"{d.id}:{t}:{a}:{b}",
                        generation_a_id=gens[(a, d.id, t)],
                        generation_b_id=gens[(b, d.id, t)],
                        a_position=str(rng.choice(["left", "right"])),
                        annotator=str(annotator),
                        choice=choice,
                    )
        return round_id

    pairs = [("ko-strong", "ko-mid"), ("ko-weak", "ko-strong"), ("ko-mid", "ko-weak")]  # both sides get to be A
    out = {"r1": vote_round("r1", pairs, steps, voters=2), "steps": len(steps)}
    if r2:
        out["r2"] = vote_round("r2", [("ko-strong", "ko-weak")], [s for s in steps if s[0].eval_set == "dobae_qa"], 1)
    out["votes"] = len(store.votes_frame())
    return out


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, dialogs: list[Dialog]) -> tuple[str, dict[str, int]]:
    db = str(tmp_path_factory.mktemp("lb") / "ratings.db")
    with Store.open(db) as store:
        info = populate(store, dialogs)
    return db, info


def run_cli(capsys: pytest.CaptureFixture[str], db: str, *argv: str) -> str:
    code = main(["leaderboard", "--db", db, "--boot", str(N_BOOT), "--tokenizer", "whitespace", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


# ------------------------------------------------------------------------------------------------ adapters


def test_vote_adapter_maps_choice_and_position(tmp_path: Path, dialogs: list[Dialog]) -> None:
    with Store.open(tmp_path / "v.db") as store:
        a, b = store.upsert_model("A", backend="local"), store.upsert_model("B", backend="local")
        store.add_annotator("kim", "pw-1234")
        round_id = store.create_round("r", {})
        store.start_round(round_id)
        d = dialogs[0]
        ga = store.record_generation(model_id=a, eval_set=d.eval_set, dialog_id=d.id, turn_index=1, round_id=round_id)
        gb = store.record_generation(model_id=b, eval_set=d.eval_set, dialog_id=d.id, turn_index=1, round_id=round_id)
        # Generation A shown left and chosen; A shown right and B chosen; B-as-A shown left and tied.
        for key, first, second, pos, choice in (
            ("i1", ga, gb, "left", "a"),
            ("i2", ga, gb, "right", "b"),
            ("i3", gb, ga, "left", "tie"),
        ):
            store.record_vote(
                round_id=round_id,
                item_key=key,
                generation_a_id=first,
                generation_b_id=second,
                a_position=pos,
                annotator="kim",
                choice=choice,
            )
        votes = votes_input(store.votes_frame(), index_dialogs(dialogs))
    assert list(votes["item"]) == ["i1", "i2", "i3"]
    assert list(votes["model_a"]) == ["A", "A", "B"] and list(votes["model_b"]) == ["B", "B", "A"]
    assert list(votes["winner"]) == ["model_a", "model_b", "tie"]
    assert list(votes["left_model"]) == ["A", "B", "B"]
    assert list(votes["category"]) == [d.category] * 3
    # i1: the left answer (A) won; i2: B won and B was on the left; i3 is no decisive vote.
    from arena.stats.agreement import position_bias

    bias = position_bias(votes).iloc[0]
    assert (bias["n_decisive"], bias["left_wins"]) == (2, 2)


def test_unknown_choice_is_refused() -> None:
    frame = pd.DataFrame(
        {
            "choice": ["a", "left"],
            "a_position": ["left", "left"],
            "model_a": ["x", "x"],
            "model_b": ["y", "y"],
            "item_key": ["1", "2"],
            "eval_set": ["s", "s"],
            "dialog_id": ["d", "d"],
        }
    )
    with pytest.raises(ValueError, match="left"):
        votes_input(frame, {})


def test_generations_adapter_computes_repetition_and_fills_metrics(filled, dialogs: list[Dialog]) -> None:
    db, _ = filled
    with Store.open(db) as store:
        raw = store.generations_frame()
    gens = generations_input(raw, index_dialogs(dialogs))
    assert "repetition" not in raw.columns and len(gens) == len(raw)
    # Round answers were stored without metrics; the adapter filled them from the dialog.
    assert raw.loc[raw["round"].notna(), "similarity"].isna().all()
    key = ["model", "dialog_id", "turn_index"]
    stored = raw[raw["context"] == "replay:kim"].set_index(key)[["similarity", "tool_name_match", "tool_args_match"]]
    filled_in = gens[gens["round"] == "r1"].set_index(key)[stored.columns].astype(float)
    pd.testing.assert_frame_equal(filled_in.sort_index(), stored.astype(float).sort_index(), check_names=False)
    assert filled_in["similarity"].notna().sum() > 0 and filled_in["tool_args_match"].notna().sum() > 0
    strong = gens[gens["model"] == "ko-strong"]
    assert (strong["similarity"].dropna() == 1.0).all() and (strong["tool_args_match"].dropna() == 1.0).all()
    weak = gens[(gens["model"] == "ko-weak") & gens["repetition"].notna()]
    assert len(weak) > 0 and (weak["repetition"] == 1.0).all()  # it restates the previous assistant turn
    first_turns = gens[gens["turn_index"] == gens.groupby("dialog_id")["turn_index"].transform("min")]
    assert first_turns["repetition"].isna().all()  # nothing earlier to repeat


def test_alpha_bootstrap_point_matches_agreement_module() -> None:
    from arena.stats.agreement import krippendorff_alpha

    rng = np.random.default_rng(3)
    truth = rng.integers(1, 6, 40)
    frame = pd.DataFrame(
        {"unit": np.repeat(np.arange(40), 3), "value": np.clip(np.repeat(truth, 3) + rng.integers(-1, 2, 120), 1, 5)}
    )
    for metric in ("interval", "nominal"):
        alpha, lo, hi = alpha_bootstrap(frame, ["unit"], metric=metric, n_boot=200, seed=0)
        assert alpha == pytest.approx(krippendorff_alpha(frame, metric=metric), abs=1e-12)
        assert lo < alpha < hi


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_markdown_has_every_table_with_cis(filled, capsys) -> None:
    db, _ = filled
    out = run_cli(capsys, db)
    for title in (
        "Mean 1-5 score per model",
        "Pairwise (Bradley-Terry)",
        "Style-controlled Bradley-Terry",
        "Style coefficients",
        "Win rate",
        "Battles per model pair",
        "Position bias",
        "Annotators",
        "Inter-annotator agreement",
        "Automatic metrics",
    ):
        assert f"## {title}" in out
    pairwise = out.split("## Pairwise")[1].split("##")[0]
    header = next(line for line in pairwise.splitlines() if line.startswith("| model"))
    assert "95% CI" in header and "online_elo" in header and "order-dependent" in pairwise
    rows = [line for line in pairwise.splitlines() if line.startswith("| ko-")]
    assert [r.split("|")[1].strip() for r in rows] == ["ko-strong", "ko-mid", "ko-weak"]
    assert all("[" in r and "]" in r for r in rows)
    style = out.split("## Style-controlled")[1].split("## Style coefficients")[0]
    rows = [line for line in style.splitlines() if line.startswith("| ko-")]
    assert len(rows) == 3 and all(r.count("[") == 2 for r in rows)  # raw and controlled CI side by side
    assert "characters without whitespace) wins" in out.split("## Style coefficients")[1]


def test_cli_json_bt_order_cis_bias_and_agreement(filled, capsys) -> None:
    db, info = filled
    data = json.loads(run_cli(capsys, db, "--format", "json"))
    tables = data["tables"]
    bt = tables["pairwise"]
    assert [r["model"] for r in bt] == sorted(STRENGTH, key=STRENGTH.get, reverse=True)
    assert all(r["ci_low"] < r["rating"] < r["ci_high"] for r in bt)
    assert [r["rank"] for r in bt] == [1, 2, 3]  # 250-point gaps with hundreds of votes separate every pair
    assert sum(r["rating"] for r in bt) / 3 == pytest.approx(1000.0)
    assert {"online_elo", "wins", "ties", "losses"} <= set(bt[0])

    scores = tables["scores"]
    assert [r["model"] for r in scores] == ["ko-strong", "ko-mid", "ko-weak"]
    assert all(r["ci_low"] <= r["mean"] <= r["ci_high"] for r in scores)
    assert sum(r["n"] for r in scores) == info["steps"] * 3 * 2

    bias = tables["position_bias"]
    overall = next(r for r in bias if r["round"] == "(all)")
    assert overall["n_votes"] == data["counts"]["votes"]
    assert overall["ci_low"] < overall["left_share"] < overall["ci_high"]
    assert {r["round"] for r in bias} == {"(all)", "r1", "r2"}

    agree = {r["judgements"]: r for r in tables["agreement"]}
    # kim and lee scored the same answers (stored once per annotator's context): those are units with 2 judgements.
    assert agree["ratings"]["n_units"] == info["steps"] * 3 and agree["ratings"]["n_annotators"] == 2
    assert 0.2 < agree["ratings"]["alpha"] < 1 and agree["ratings"]["ci_low"] < agree["ratings"]["ci_high"]
    assert agree["votes"]["n_units"] == 3 * info["steps"]  # r1 items (two voters each); r2 has one voter an item
    assert math.isfinite(agree["votes"]["alpha"]) and agree["votes"]["ci_low"] < agree["votes"]["ci_high"]

    metrics = {(r["model"], r["metric"]): r for r in tables["metrics"]}
    assert metrics[("ko-strong", "similarity")]["value"] == pytest.approx(1.0)
    assert metrics[("ko-strong", "tool_args_match")]["value"] == 1.0
    assert metrics[("ko-mid", "tool_args_match")]["value"] == 0.0
    assert metrics[("ko-mid", "tool_name_match")]["value"] == 1.0
    assert metrics[("ko-weak", "repetition")]["value"] > metrics[("ko-strong", "repetition")]["value"]
    assert metrics[("ko-mid", "tokens_per_s")]["value"] == pytest.approx(SPEED["ko-mid"])
    assert metrics[("ko-mid", "ms_per_token")]["value"] == pytest.approx(1000 / SPEED["ko-mid"])
    assert metrics[("ko-weak", "ttft_ms")]["value"] == pytest.approx(100.0)
    assert {"answer_chars", "tokens"} <= {m for _, m in metrics}

    win = {r["model"]: r for r in tables["win_rate"]}
    assert win["ko-strong"]["ko-weak"] > 0.5 > win["ko-weak"]["ko-strong"]
    battles = {r["model"]: r for r in tables["battles"]}
    assert battles["ko-strong"]["ko-weak"] == battles["ko-weak"]["ko-strong"] > 0
    assert sum(r["n_votes"] for r in tables["annotators"]) == data["counts"]["votes"]


def test_cli_csv_blocks_and_single_table(filled, capsys) -> None:
    db, _ = filled
    out = run_cli(capsys, db, "--format", "csv")
    blocks = {b.split("\n", 1)[0]: b.split("\n", 1)[1] for b in out.split("# table: ")[1:]}
    assert {"scores", "pairwise", "position_bias", "agreement", "metrics", "win_rate"} <= set(blocks)
    pairwise = list(csv.DictReader(io.StringIO(blocks["pairwise"].strip())))
    assert len(pairwise) == 3 and all(float(r["ci_low"]) < float(r["ci_high"]) for r in pairwise)

    only = run_cli(capsys, db, "--format", "csv", "--table", "scores")
    frame = pd.read_csv(io.StringIO(only))
    assert list(frame["model"]) == ["ko-strong", "ko-mid", "ko-weak"] and {"ci_low", "ci_high"} <= set(frame.columns)


def test_same_seed_same_output_other_seed_other_cis(filled, capsys) -> None:
    db, _ = filled
    first = run_cli(capsys, db, "--format", "json", "--seed", "7")
    assert run_cli(capsys, db, "--format", "json", "--seed", "7") == first
    other = json.loads(run_cli(capsys, db, "--format", "json", "--seed", "8"))["tables"]["pairwise"]
    mine = json.loads(first)["tables"]["pairwise"]
    assert [r["rating"] for r in other] == [r["rating"] for r in mine]  # point estimates do not depend on the seed
    assert [r["ci_low"] for r in other] != [r["ci_low"] for r in mine]


def test_filters_change_counts(filled, capsys, dialogs: list[Dialog]) -> None:
    db, info = filled
    steps = Counter(d.eval_set for d in dialogs for _ in d.assistant_indices())
    structure = sum(len(d.assistant_indices()) for d in dialogs if d.category == "건축구조")

    def counts(*argv: str) -> dict:
        return json.loads(run_cli(capsys, db, "--format", "json", "--boot", "0", *argv))["counts"]

    # r1: every step, three pairs, two voters an item; r2: the dobae steps, one pair, one voter.
    assert counts()["votes"] == 6 * sum(steps.values()) + steps["dobae_qa"]
    assert counts("--round", "r2")["votes"] == steps["dobae_qa"]
    assert counts("--round", str(info["r2"])) == counts("--round", "r2")  # by id as well as by name
    assert counts("--round", "r2")["ratings"] == 0  # replay ratings belong to no round
    assert counts("--eval-set", "persona")["votes"] == 6 * steps["persona"]
    assert counts("--eval-set", "persona")["ratings"] == 6 * steps["persona"]  # 3 models x 2 annotators
    assert counts("--category", "건축구조")["votes"] == 7 * structure
    assert counts("--round", "r2", "--category", "건축구조")["votes"] == structure
    assert counts("--eval-set", "persona")["generations"] == (2 * 3 + 3) * steps["persona"]  # kim, lee, r1

    r2 = json.loads(run_cli(capsys, db, "--format", "json", "--round", "r2"))["tables"]
    assert {r["model"] for r in r2["pairwise"]} == {"ko-strong", "ko-weak"}
    assert {r["round"] for r in r2["position_bias"]} == {"(all)", "r2"}

    full = json.loads(run_cli(capsys, db, "--format", "json"))["tables"]
    by_category = {(r["category"], r["model"]): r["n"] for r in full["scores_by_category"]}
    assert by_category[("건축구조", "ko-mid")] == 2 * structure
    assert sum(n for (c, m), n in by_category.items() if m == "ko-mid") == 2 * sum(steps.values())
    dropped = json.loads(run_cli(capsys, db, "--format", "json", "--both-bad", "drop"))["tables"]["pairwise"]
    assert sum(r["n_battles"] for r in dropped) < sum(r["n_battles"] for r in full["pairwise"])
    anchored = json.loads(run_cli(capsys, db, "--format", "json", "--anchor", "ko-weak"))["tables"]["pairwise"]
    assert next(r for r in anchored if r["model"] == "ko-weak")["rating"] == pytest.approx(1000.0)


def test_cli_errors_are_usage_errors(filled, capsys) -> None:
    db, _ = filled
    assert main(["leaderboard", "--db", db, "--round", "nope"]) == 2  # refused before any work
    assert "nope" in capsys.readouterr().err
    argv = ["leaderboard", "--db", db, "--boot", "0", "--tokenizer", "whitespace", "--anchor", "not-a-model"]
    assert main(argv) == 2
    assert "not-a-model" in capsys.readouterr().err


def test_every_store_backend_gives_the_same_tables(db_url: str, filled, dialogs: list[Dialog], capsys) -> None:
    sqlite_db, _ = filled
    with Store.open(db_url) as store:
        populate(store, dialogs)
    on_other = json.loads(run_cli(capsys, db_url, "--format", "json"))
    on_sqlite = json.loads(run_cli(capsys, sqlite_db, "--format", "json"))
    assert on_other == on_sqlite


def test_empty_store(tmp_path: Path, dialogs: list[Dialog], capsys) -> None:
    db = str(tmp_path / "empty.db")
    out = run_cli(capsys, db)
    assert "(no data)" in out
    data = json.loads(run_cli(capsys, db, "--format", "json"))
    assert data["counts"]["votes"] == 0 and data["tables"]["pairwise"] == []
    with Store.open(db) as store:
        boards = build_leaderboards(store, dialogs, n_boot=N_BOOT)
    assert boards.scores.empty and boards.metrics.empty and math.isnan(boards.agreement["alpha"].iloc[0])


# ---------------------------------------------------------------------------------------------------- UI


def echo_search_backend():
    """A backend that searches for the user's last message: its recall must equal the baseline's."""
    from backends.base import Backend, Finish, ToolCall

    class EchoSearch(Backend):
        supports_tools = True

        async def stream(self, messages, *, tools=None, options=None, cancel=None):  # type: ignore[override]
            query = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            arguments = json.dumps({"text_query": query}, ensure_ascii=False)
            yield Finish(
                finish_reason="tool_calls",
                tool_calls=[ToolCall(index=0, name=tools[0]["function"]["name"], arguments=arguments)],
            )

    return EchoSearch("echo-search")


def _handler(blocks, component, event: str, name: str | None = None):
    return next(
        f
        for f in blocks.fns.values()
        if (component._id, event) in f.targets and name in (None, getattr(f.fn, "__name__", None))
    )


def _by_id(components, elem_id: str):
    return next(c for c in components if getattr(c, "elem_id", None) == elem_id)


@pytest.mark.parametrize("with_data", [False, True], ids=["empty", "data"])
def test_leaderboard_tab_builds_and_computes(with_data: bool, filled, tmp_path: Path, dialogs: list[Dialog]) -> None:
    import asyncio

    import gradio as gr

    from arena.retrieval.runner import RecallConfig
    from arena.web.services import Services
    from arena.web.ui import leaderboard_tab
    from backends.registry import ModelSpec, Registry

    db = filled[0] if with_data else str(tmp_path / "empty.db")
    spec = ModelSpec(name="echo-search", kind="openai", base_url="http://127.0.0.1:9/v1")
    registry = Registry([spec], {"echo-search": echo_search_backend()})
    recall = RecallConfig(tokenizer="whitespace", index_cache=tmp_path / "bm25", n_boot=50)
    with Store.open(db) as store:
        services = Services(store=store, registry=registry, dialogs=dialogs)
        with gr.Blocks() as blocks:
            with gr.Tab("leaderboard") as tab:
                leaderboard_tab.build(services, "en", tab, recall)
        select = _handler(blocks, tab, "select", "compute")  # the tab's other select fills the recall pickers
        values = [c.value for c in select.inputs]
        values[select.inputs.index(_by_id(select.inputs, "lb-boot"))] = N_BOOT
        if not with_data:
            store.add_annotator("lead", "pw-1234", role="researcher")
        annotator, lead = gr.Request(username="kim"), gr.Request(username="lead")
        refused = {getattr(c, "elem_id", None): v for c, v in select.fn(annotator, *values).items()}
        assert set(refused) == {"lb-status"} and "Researcher" in refused["lb-status"]  # annotators see no standings
        out = select.fn(lead, *values)
        # Every output gets a value the component accepts.
        for component, value in out.items():
            if not isinstance(value, dict):
                component.postprocess(value)
        shown = {getattr(c, "elem_id", None): v for c, v in out.items()}
        assert set(shown) >= {
            "lb-pairwise",
            "lb-scores",
            "lb-pairwise-plot",
            "lb-win-rate-plot",
            "lb-metric-plot",
            "lb-position-bias",
            "lb-agreement",
            "lb-status",
            "lb-style-control",
            "lb-style-coefficients",
            "lb-style-status",
        }
        pairwise = shown["lb-pairwise"]
        if with_data:
            assert list(pairwise["model"]) == ["ko-strong", "ko-mid", "ko-weak"] and "95% CI" in pairwise.columns
            assert f"{filled[1]['votes']} votes" in shown["lb-status"]
            style = shown["lb-style-control"]
            assert set(style["model"]) == {"ko-strong", "ko-mid", "ko-weak"}
            assert {"style-controlled rating", "style-controlled 95% CI", "change"} <= set(style.columns)
            coefficients = shown["lb-style-coefficients"]["value"]  # a fitted update: the sentences wrap
            assert "equally rated models" in " ".join(coefficients["meaning"])
            assert [value for _, value in shown["lb-round"]["choices"]] == ["", "r1", "r2"]  # rounds made after build
            assert len(shown["lb-pairwise-plot"].data) == 2  # BT with error bars + online Elo for comparison
            assert shown["lb-metric-plot"].data[0].x is not None and len(shown["lb-metric-plot"].data[0].x) == 3
            # Choosing a round narrows the tables.
            values[select.inputs.index(_by_id(select.inputs, "lb-round"))] = "r2"
            narrowed = {getattr(c, "elem_id", None): v for c, v in select.fn(lead, *values).items()}
            assert list(narrowed["lb-pairwise"]["model"]) == ["ko-strong", "ko-weak"]
        else:
            assert pairwise.empty and "0 votes" in shown["lb-status"]
            assert shown["lb-style-control"].empty and shown["lb-style-status"] == "No votes to fit style control on."

        models = _by_id(blocks.blocks.values(), "lb-recall-models")
        assert not models.choices  # built empty: initial values are public in /config
        filled_models = _handler(blocks, tab, "select", "fill_models").fn(lead)[models]
        run_recall = _handler(blocks, _by_id(blocks.blocks.values(), "lb-recall-run"), "click")
        recall_out = asyncio.run(run_recall.fn(lead, ["echo-search"]))
        stored = store.get_recall_queries("echo-search", "fashion_retrieval")
    table = next(v for c, v in recall_out.items() if c.elem_id == "lb-recall-table")
    table = table["value"] if isinstance(table, dict) else table  # wide tables come as a fitted update
    assert "echo-search" in filled_models["choices"]
    assert list(table["system"]) == ["last utterance + BM25", "reference query + BM25", "echo-search + BM25"]
    baseline, echo = table.iloc[0], table.iloc[2]
    assert list(baseline.drop("system")) == list(echo.drop("system"))
    assert len(stored) == 35 and {r.status for r in stored.values()} == {"ok"}  # cached in the store


@pytest.mark.slow
def test_leaderboard_tab_in_the_browser(tiny_models, tmp_path: Path, dialogs: list[Dialog]) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import CHROMIUM_ARGS, ROOT, chromium_path, login, serve, write_models_yaml

    db = str(tmp_path / "ratings.db")
    with Store.open(db) as store:
        info = populate(store, dialogs, r2=False)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with serve(write_models_yaml(tmp_path / "models.yaml", tiny_models), db, tmp_path / "serve.log") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            login(page, url, "lead", "pw-1234")
            page.get_by_role("tab", name="리더보드").click()
            expect(page.locator("#lb-pairwise")).to_contain_text("ko-strong", timeout=120_000)
            # Generous timeouts: the two shared cores may be busy with other test runs.
            expect(page.locator("#lb-status")).to_contain_text(f"투표 {info['votes']}건", timeout=30_000)
            expect(page.locator("#lb-pairwise-plot .js-plotly-plot")).to_be_visible(timeout=30_000)
            expect(page.locator("#lb-win-rate-plot .js-plotly-plot")).to_be_visible(timeout=30_000)
            page.screenshot(path=str(artifacts / "leaderboard.png"), full_page=True)
            # Raw and style-controlled ratings side by side, with what each coefficient means.
            expect(page.locator("#lb-style-control")).to_contain_text("스타일 보정 점수", timeout=30_000)
            expect(page.locator("#lb-style-coefficients")).to_contain_text("실력이 같은 모델끼리")
            page.locator("#lb-style-coefficients").scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts / "leaderboard-style.png"), full_page=True)
            en = browser.new_page(viewport={"width": 1400, "height": 1800})
            login(en, url + "en/", "lead", "pw-1234")
            en.get_by_role("tab", name="Leaderboard").click()
            expect(en.locator("#lb-style-control")).to_contain_text("style-controlled rating", timeout=120_000)
            expect(en.locator("#lb-style-coefficients")).to_contain_text("equally rated models")
            en.screenshot(path=str(artifacts / "leaderboard-style-en.png"), full_page=True)
            browser.close()

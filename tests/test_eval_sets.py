"""The shipped eval sets: they validate, hold what the seeds hold, and are reproduced by the converter."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from arena import cli
from arena.core.dialogs import Dialog, eval_set_files, validate_paths
from arena.seeds import EVAL_SETS, convert_all
from arena.seeds.common import SeedFormatError

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT / "eval_sets"
SEEDS = ROOT.parent / "shared" / "seeds"
needs_seeds = pytest.mark.skipif(
    not SEEDS.is_dir(), reason="the seed documents (../shared/seeds) are not beside the repo"
)

MINIMUM = {"selectstar_fashion": 5, "tool_calls": 7, "persona": 8, "dobae_qa": 21, "emotion": 2, "instructions": 5}


def load(name: str) -> list[dict[str, Any]]:
    with (EVAL_DIR / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def by_id(name: str) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in load(name)}


# --- every shipped file -----------------------------------------------------------------------------


def test_every_shipped_eval_set_validates_with_unique_ids() -> None:
    files = eval_set_files(EVAL_DIR)
    assert {f"{name}.jsonl" for name in EVAL_SETS} <= {f.name for f in files}
    dialogs, problems = validate_paths(files)
    assert [str(p) for p in problems] == []
    ids = [d.id for d in dialogs]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", EVAL_SETS)
def test_set_has_expected_dialogs(name: str) -> None:
    dialogs = load(name)
    assert len(dialogs) >= MINIMUM[name]
    assert {d["eval_set"] for d in dialogs} == {name}
    for d in dialogs:
        assert d["meta"]["source"].startswith(("000_", "001_", "002_", "003_", "004_"))
        assert isinstance(d["meta"]["line"], int) and d["meta"]["line"] > 0
        assert len(d["meta"]["turn_lines"]) == len(d["turns"])


def test_readme_counts_match_the_files() -> None:
    readme = (EVAL_DIR / "README.md").read_text(encoding="utf-8")
    for name in EVAL_SETS:
        m = re.search(rf"^\| `{name}` \| (\d+) \|", readme, re.M)
        assert m, f"README has no row for {name}"
        assert int(m.group(1)) == len(load(name))


def test_korean_is_stored_as_utf8_not_escaped() -> None:
    raw = (EVAL_DIR / "selectstar_fashion.jsonl").read_bytes()
    assert "코트".encode() in raw
    assert b"\\uc" not in raw.lower()
    assert raw.endswith(b"\n") and b"\r" not in raw


def test_model_answers_are_keyed_by_turn_index() -> None:
    for name in EVAL_SETS:
        for d in load(name):
            for key in d["meta"].get("model_answers", {}):
                assert 0 <= int(key) <= len(d["turns"]), (d["id"], key)
            if d["meta"].get("open_final_turn"):
                assert d["turns"][-1]["role"] in ("user", "tool")
            else:
                assert d["turns"][-1]["role"] == "assistant", d["id"]


# --- selectstar_fashion --------------------------------------------------------------------------------


@pytest.mark.parametrize("dialog_id", ["fashion-v043-1ep-coat", "fashion-v043-3ep-coat", "fashion-selectstar-coat"])
def test_coat_dialog_calls_the_text_tool_then_gets_its_result(dialog_id: str) -> None:
    d = by_id("selectstar_fashion")[dialog_id]
    turns = d["turns"]
    k = next(
        i
        for i, t in enumerate(turns)
        if t.get("tool_calls") and json.loads(t["tool_calls"][0]["function"]["arguments"]) == {"text_query": "코트"}
    )
    call = turns[k]["tool_calls"][0]
    assert call["function"]["name"] == "retrieve_fashion_text_knowledges_with_text_query"
    assert turns[k + 1]["role"] == "tool"
    assert turns[k + 1]["tool_call_id"] == call["id"]
    assert json.loads(turns[k + 1]["content"])[0]["title"] == "코트"
    assert turns[k + 2]["role"] == "assistant" and "코트" in turns[k + 2]["content"]
    names = {t["function"]["name"] for t in d["tools"]}
    assert names == {"retrieve_fashion_text_knowledges_with_text_query", "retrieve_fashion_images_with_text_query"}
    for tool in d["tools"]:
        params = tool["function"]["parameters"]
        assert params["properties"]["text_query"]["type"] == "string" and params["required"] == ["text_query"]


def test_gt_lines_replace_the_model_answer() -> None:
    d = by_id("selectstar_fashion")["fashion-v043-3ep-coat"]
    assert d["turns"][19] == {"role": "assistant", "content": "더블브레스티드예요."}
    assert d["meta"]["model_answers"]["19"] == {"Llama-70B-Instruct-v0.43-3ep": "더블브레스티드 디테일입니다."}
    one_epoch = by_id("selectstar_fashion")["fashion-v043-1ep-coat"]
    # There the model called a tool where the GT asks a question: the GT turn is text, the call is kept aside.
    assert one_epoch["turns"][9] == {"role": "assistant", "content": "원하시는 색상이 있으신가요?"}
    assert (
        one_epoch["meta"]["model_answers"]["9"]["Llama-8B-Instruct-v0.43-1ep"]["tool_calls"][0]["arguments"]
        == '{"text_query": "롱 코트"}'
    )


def test_broken_markdown_answer_is_rejoined() -> None:
    text = by_id("selectstar_fashion")["fashion-v043-1ep-coat"]["turns"][13]["content"]
    assert text.startswith("다음과 같은 겨울 롱 코트를 추천드립니다:\n\n- **스타일**: 클래식\n- **기장**: 롱\n")
    assert "- **옷깃**: 테일러드칼라" in text and "\\" not in text and "\n\n\n" not in text


def test_selectstar_dumps_are_merged_with_both_runs_answers() -> None:
    d = by_id("selectstar_fashion")["fashion-selectstar-acne"]
    # v0.56 cut this user turn ("…추천해줄라"); v0.58 shows it whole.
    assert d["turns"][10]["content"] == "아하 그렇구나 알려줘서 고마워. 이제 다시 코트 추천해줄래?"
    assert set(d["meta"]["model_answers"]["1"]) == {"llama3.1-8b-v0.56", "llama3.1-8b-v0.58"}
    assert d["meta"]["truncated"] and 2 in d["meta"]["truncated_turns"]  # "…따뜻한 아우" is cut in both dumps
    coat = by_id("selectstar_fashion")["fashion-selectstar-coat"]
    assert coat["turns"][6]["content"].endswith("추천 좀 해줄래?")  # completed from the transcript (line 201)
    assert 5 in coat["meta"]["truncated_turns"]  # "코트(Coat)는 … 의복" stops mid-sentence
    assert len(coat["turns"]) == 24 and len(d["turns"]) == 20


# --- tool_calls ----------------------------------------------------------------------------------------


def test_weather_parallel_call_gt() -> None:
    d = by_id("tool_calls")["tools-weather-temp-newyork-rain-newyork"]
    assert d["system"].startswith("You are a weather bot. Use the provided tool")
    assert d["turns"][0] == {"role": "user", "content": '"What\'s the weather in New York today"'}
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in d["turns"][1]["tool_calls"]]
    assert calls == [
        ("get_current_temperature", {"location": "New York, NY", "unit": "Fahrenheit"}),
        ("get_rain_probability", {"location": "New York, NY"}),
    ]
    assert set(d["meta"]["runs"]) == {"llama3.1-8b-v0.56", "llama3.1-8b-v0.58"}
    assert {t["function"]["name"] for t in d["tools"]} == {"get_current_temperature", "get_rain_probability"}


def test_weather_prompt_cut_in_seed_is_flagged_not_completed() -> None:
    d = by_id("tool_calls")["tools-weather-rain-newyork-rain-seoul"]
    assert d["turns"][0]["content"] == "\"What's the likelihood it'll rain in"
    assert d["meta"]["truncated_turns"] == [0]
    places = [json.loads(c["function"]["arguments"])["location"] for c in d["turns"][1]["tool_calls"]]
    assert places == ["New York, NY", "Seoul, South Korea"]


def test_no_tool_prompt_keeps_the_wrong_call_out_of_the_gt() -> None:
    d = by_id("tool_calls")["tools-none-planets-ko"]
    assert d["turns"] == [{"role": "user", "content": "우리 태양계의 행성들에 대해서 알려줘."}]
    assert "tools" not in d and d["meta"]["open_final_turn"]
    assert "tool_calls" in d["meta"]["model_answers"]["1"]["Llama-8B-Instruct-tool_selection-v0.41"]


# --- persona -------------------------------------------------------------------------------------------


def test_kimjihye_persona_system_prompt_and_topic_change() -> None:
    dialogs = by_id("persona")
    for dialog_id in ("persona-kimjihye-chat-v058", "persona-kimjihye-v058", "persona-kimjihye-v059"):
        d = dialogs[dialog_id]
        assert d["system"].startswith(
            "너는 지금부터 다음에 주어지는 페르소나 역할에 충실하게 사용자하고 대화하도록 해."
        )
        assert "김지혜 (38세)" in d["system"] and '"우리 같이 해결해보자" (문제 상황에서)' in d["system"]
        assert d["meta"]["open_final_turn"] and "세종대왕" in d["turns"][-1]["content"]
    v058 = dialogs["persona-kimjihye-v058"]["turns"]
    # Hard wraps re-joined: mid-word ("놀  \n려") without a space, at a word gap ("힘들 수  \n있어") with one.
    assert v058[2]["content"] == "학교가면 친구들이 나 웃입은거 보고 놀려 ㅠㅠ"
    assert "정말 힘들 수 있어." in v058[3]["content"]


def test_retired_developer_few_shot_examples_are_gt_turns() -> None:
    d = by_id("persona")["persona-retired-dev"]
    assert d["system"].startswith("당신은 은퇴한 60세 개발자입니다.") and "#### 예시" not in d["system"]
    assert [t["role"] for t in d["turns"]] == ["user", "assistant"] * 5 + ["user"]
    assert d["turns"][0]["content"] == "저는 새로운 프로그래밍 언어를 배우려고 합니다."
    assert d["turns"][-1]["content"] == "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."
    assert set(d["meta"]["model_answers"]["11"]) == {"gemma", "mistral"}


# --- dobae_qa ------------------------------------------------------------------------------------------


def test_dobae_items_have_two_to_five_answers() -> None:
    dialogs = [Dialog.model_validate(d) for d in load("dobae_qa")]
    for d in dialogs:
        assert [t.role for t in d.turns] == ["user", "assistant"]
        assert 2 <= len(d.gt_answers(1)) <= 5, d.id
    first = by_id("dobae_qa")["dobae-train_000-q1"]
    assert first["turns"][0]["content"] == "면진장치가 뭐야?"
    assert first["meta"]["paraphrase"] == "면진장치에 사용되는 주요 기술은 무엇인가요?"
    assert len(first["references"]["1"]) == 4
    twin = by_id("dobae_qa")["dobae-train_000-q2"]
    assert twin["turns"][1] == first["turns"][1] and twin["references"] == first["references"]


# --- reproducing the files -----------------------------------------------------------------------------


@needs_seeds
def test_converter_reproduces_the_shipped_files(tmp_path: Path) -> None:
    counts = convert_all(SEEDS, tmp_path)
    assert counts == {name: len(load(name)) for name in EVAL_SETS}
    for name in EVAL_SETS:
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (EVAL_DIR / f"{name}.jsonl").read_bytes(), name


@needs_seeds
def test_converter_refuses_a_seed_its_repairs_no_longer_fit(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    seed = next(seeds.glob("000_*.txt"))
    seed.chmod(0o644)
    lines = seed.read_text(encoding="utf-8").split("\n")
    assert lines[1621].strip() == "'\"Ne"  # line 1622: a fragment of the rebuilt "New York, NY"
    lines[1621] = lines[1621].replace("Ne", "Bo")
    seed.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(SeedFormatError, match="1621"):
        convert_all(seeds, tmp_path / "out")


# --- `arena seeds convert` and `arena validate` on bad input -------------------------------------------


@pytest.fixture
def arena_main(monkeypatch: pytest.MonkeyPatch):
    # Only the two subcommands under test, so that other subcommands' imports do not matter here.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["arena.commands.validate", "arena.commands.seeds"])
    return cli.main


@needs_seeds
def test_cli_seeds_convert_writes_the_sets(arena_main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert arena_main(["seeds", "convert", "--seeds", str(SEEDS), "--out", str(tmp_path)]) == 0
    assert "dobae_qa.jsonl: 21 dialogs" in capsys.readouterr().out
    assert arena_main(["validate", *map(str, sorted(tmp_path.glob("*.jsonl")))]) == 0


def _dialog(**overrides: Any) -> str:
    d: dict[str, Any] = {
        "id": "x1",
        "eval_set": "t",
        "turns": [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "안녕하세요"}],
    }
    d.update(overrides)
    return json.dumps(d, ensure_ascii=False)


BAD_LINES = {
    "unknown_role": (_dialog(turns=[{"role": "bot", "content": "안녕"}]), "turns[0].role", "unknown role 'bot'"),
    "empty_assistant": (
        _dialog(turns=[{"role": "user", "content": "안녕"}, {"role": "assistant"}]),
        "turns[1]",
        "needs content or tool_calls",
    ),
    "tool_without_call": (
        _dialog(turns=[{"role": "user", "content": "안녕"}, {"role": "tool", "content": "[]"}]),
        "turns[1]",
        "tool message without a preceding assistant tool call",
    ),
    "arguments_not_json": (
        _dialog(
            turns=[
                {"role": "user", "content": "코트"},
                {
                    "role": "assistant",
                    "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{text_query: 코트}"}}],
                },
            ]
        ),
        "turns[1].tool_calls[0].function.arguments",
        "arguments are not valid JSON",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_validate_names_file_line_and_field(
    case: str, arena_main, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line, field, message = BAD_LINES[case]
    path = tmp_path / "bad.jsonl"
    path.write_text(_dialog(id="ok") + "\n" + line + "\n", encoding="utf-8")
    assert arena_main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: {field}: " in err and message in err
    assert f"{path}:1:" not in err


def test_validate_reports_broken_json_at_its_column(
    arena_main, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _dialog(id="b")[:-2]  # cut before the closing brackets
    path = tmp_path / "broken.jsonl"
    path.write_text(_dialog(id="a") + "\n\n" + broken + "\n", encoding="utf-8")
    assert arena_main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    m = re.search(rf"{re.escape(str(path))}:3: \(json\): invalid JSON: .* at column (\d+)", err)
    assert m, err
    assert int(m.group(1)) == len(broken) + 1  # the end of that line, not "column 1" of a phantom next line


def test_validate_reports_duplicate_ids_across_files(
    arena_main, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(_dialog(id="same") + "\n", encoding="utf-8")
    second.write_text(_dialog(id="other") + "\n" + _dialog(id="same") + "\n", encoding="utf-8")
    assert arena_main(["validate", str(first), str(second)]) == 1
    err = capsys.readouterr().err
    assert f"{second}:2: id: duplicate id 'same' (first at {first}:1)" in err
    assert "nothing was written" in err

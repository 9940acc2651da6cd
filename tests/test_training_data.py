"""Converters from the seed data formats to chat SFT records: each on a small sample written here,
Korean text included, with bad records reported by file:line and --skip-bad leaving them out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.data import DataError, DataSource, convert_file, detect_format, load_records


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, name: str, rows: list) -> Path:
    return write(
        tmp_path, name, "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    )


def pairs(record: dict) -> list[tuple[str, str]]:
    return [(m["role"], m.get("content")) for m in record["messages"]]


def problem_lines(problems) -> list[str]:
    return [f"{Path(p.file).name}:{p.line}: {p.field}: {p.message}" for p in problems]


def test_dolly_context_follows_the_instruction_and_a_bad_line_is_reported(tmp_path):
    path = jsonl(
        tmp_path,
        "dolly.jsonl",
        [
            {
                "instruction": "도배할 때 주의사항이 뭐야?",
                "context": "",
                "response": "벽면을 평탄하게 만든 뒤 초배지를 붙입니다.",
                "category": "open_qa",
            },
            {
                "instruction": "다테 기미코가 최초로 은퇴 선언을 한게 언제지",
                "context": "1996년 9월 24일 최초로 은퇴를 선언하였다.",
                "response": "1996년 9월 24일",
                "category": "closed_qa",
            },
            {"instruction": "응답이 없는 항목", "context": "", "category": "open_qa"},
            "{not json",
        ],
    )
    records, problems = convert_file(path)
    assert [pairs(r) for r in records] == [
        [("user", "도배할 때 주의사항이 뭐야?"), ("assistant", "벽면을 평탄하게 만든 뒤 초배지를 붙입니다.")],
        [
            ("user", "다테 기미코가 최초로 은퇴 선언을 한게 언제지\n\n1996년 9월 24일 최초로 은퇴를 선언하였다."),
            ("assistant", "1996년 9월 24일"),
        ],
    ]
    assert records[0]["source"] == f"{path}:1" and records[1]["meta"] == {"category": "closed_qa"}
    assert problem_lines(problems)[0] == "dolly.jsonl:3: response: missing or empty"
    assert problem_lines(problems)[1].startswith("dolly.jsonl:4: (line): not JSON")


def test_alpaca_input_becomes_context(tmp_path):
    path = jsonl(
        tmp_path,
        "alpaca.jsonl",
        [
            {
                "instruction": "다음 국가와 관련된 역사적 사건 3가지를 나열하십시오.",
                "input": "캐나다",
                "output": "1867년 캐나다 연방 성립 등.",
            },
            {"instruction": "인사해 줘", "input": "", "output": "안녕하세요!"},
            {"instruction": "숫자 출력", "input": "", "output": 3},
        ],
    )
    records, problems = convert_file(path, "alpaca")
    assert pairs(records[0])[0] == ("user", "다음 국가와 관련된 역사적 사건 3가지를 나열하십시오.\n\n캐나다")
    assert pairs(records[1]) == [("user", "인사해 줘"), ("assistant", "안녕하세요!")]
    assert problem_lines(problems) == ["alpaca.jsonl:3: output: expected text, got int"]


def test_kovicuna_sharegpt_conversations(tmp_path):
    path = jsonl(
        tmp_path,
        "kovicuna.jsonl",
        [
            {
                "id": "QWJhYvA_0",
                "conversations": [
                    {"from": "human", "value": "제프 워커의 제품 출시 공식을 요약하세요..."},
                    {"from": "gpt", "value": "다음은 주요 아이디어입니다:\r\n\r\n1. 타겟 고객 파악"},
                    {"from": "human", "value": "출시 책의 정신적 트리거는?"},
                    {"from": "gpt", "value": "1. 희소성\r\n2. 권위"},
                    {"from": "human", "value": "답이 없는 마지막 질문"},
                ],
            },
            {"id": "bad_1", "conversations": [{"from": "human", "value": "안녕"}, {"from": "robot", "value": "삐빅"}]},
            {"id": "bad_2", "conversations": [{"from": "gpt", "value": "먼저 말하는 봇"}]},
        ],
    )
    assert detect_format(path) == "sharegpt"
    records, problems = convert_file(path)
    assert [r for r, _ in pairs(records[0])] == ["user", "assistant", "user", "assistant"]  # trailing question dropped
    assert pairs(records[0])[1][1] == "다음은 주요 아이디어입니다:\n\n1. 타겟 고객 파악"  # Windows line ends made plain
    assert records[0]["meta"] == {"id": "QWJhYvA_0"}
    assert problem_lines(problems) == [
        "kovicuna.jsonl:2: conversations[1].from: unknown speaker 'robot'; expected human or gpt",
        "kovicuna.jsonl:3: conversations[0].from: expected a human turn here",
    ]


def test_korquad_paragraph_lines_and_official_file(tmp_path):
    context = "1994년 생애 최초로 세계 랭킹 10위권에 진입하였다. 1996년 9월 24일 최초로 은퇴를 선언하였다."
    start = context.index("1996년 9월 24일")
    path = jsonl(
        tmp_path,
        "korquad.jsonl",
        [
            {
                "qas": [
                    {
                        "question": "다테 기미코가 최초로 은퇴 선언을 한게 언제지",
                        "answers": [{"answer_start": start, "text": "1996년 9월 24일"}],
                        "id": "9_f2_wiki_2822-1",
                    },
                    {"question": "틀린 답", "answers": [{"answer_start": 0, "text": "2020년"}], "id": "x"},
                ],
                "context": context,
            },
        ],
    )
    records, problems = convert_file(path, "korquad")
    assert pairs(records[0]) == [
        ("user", f"다테 기미코가 최초로 은퇴 선언을 한게 언제지\n\n{context}"),
        ("assistant", "1996년 9월 24일"),
    ]
    assert problem_lines(problems) == [
        "korquad.jsonl:1: qas[1].answers[0]: answer '2020년' is not in the context (answer_start 0)"
    ]

    official = write(
        tmp_path,
        "KorQuAD_v1.0_train.json",
        json.dumps(
            {
                "version": "KorQuAD_v1.0_train",
                "data": [
                    {
                        "title": "다테 기미코",
                        "paragraphs": [
                            {
                                "context": context,
                                "qas": [
                                    {
                                        "question": "언제 랭킹 10위권에 들었나?",
                                        "answers": [{"answer_start": 0, "text": "1994년"}],
                                    },
                                    {"question": "", "answers": [{"answer_start": 0, "text": "1994년"}]},
                                ],
                            }
                        ],
                    }
                ],
            },
            ensure_ascii=False,
        ),
    )
    assert detect_format(official) == "korquad"
    records, problems = convert_file(official)
    assert pairs(records[0])[1] == ("assistant", "1994년")
    assert problem_lines(problems) == [
        "KorQuAD_v1.0_train.json:1: data[0].paragraphs[0].qas[1].question: missing or empty"
    ]


DOBAE_CSV = (
    "\ufeffid,질문_1,질문_2,category,답변_1,답변_2,답변_3,답변_4,답변_5\n"
    "TRAIN_000,면진장치가 뭐야?,면진장치에 사용되는 주요 기술은 무엇인가요?,건축구조,"
    '면진장치란 지반의 진동 에너지를 흡수하는 장치입니다.,"면진장치는 진동을 줄여\n건물을 보호합니다.",답3,답4,답5\n'
    "TRAIN_001,철골구조의 장점이 뭐야?,,건축구조,고층 건물의 건축이 가능합니다.,,,,\n"
    "TRAIN_002,답이 없는 질문,,건축구조,,,,,\n"
)


def test_dobae_csv_every_question_times_every_answer(tmp_path):
    path = write(tmp_path, "train.csv", DOBAE_CSV)
    assert detect_format(path) == "dobae"
    records, problems = convert_file(path)
    first = [r for r in records if r["meta"]["id"] == "TRAIN_000"]
    assert len(first) == 10  # 2 phrasings x 5 answers, as seed 002 expands them
    assert {pairs(r)[0][1] for r in first} == {"면진장치가 뭐야?", "면진장치에 사용되는 주요 기술은 무엇인가요?"}
    assert "면진장치는 진동을 줄여\n건물을 보호합니다." in {pairs(r)[1][1] for r in first}
    assert first[0]["meta"]["category"] == "건축구조" and first[0]["source"].endswith("train.csv:2")
    second = [r for r in records if r["meta"]["id"] == "TRAIN_001"]
    assert [pairs(r) for r in second] == [
        [("user", "철골구조의 장점이 뭐야?"), ("assistant", "고층 건물의 건축이 가능합니다.")]
    ]
    assert second[0]["source"].endswith("train.csv:4")  # the quoted cell of row 2 spans two lines
    assert problem_lines(problems) == ["train.csv:5: 답변_1: no answer"]


def test_aihub_emotion_csv_and_json_up_to_three_turns(tmp_path):
    csv_path = write(
        tmp_path,
        "감성대화말뭉치.csv",
        (
            "번호,감정_대분류,사람문장1,시스템응답1,사람문장2,시스템응답2,사람문장3,시스템응답3,사람문장4,시스템응답4\n"
            "1,불안,엄마한테 혼날 거 같아서 불안해,어머니께 혼날까 봐 불안하신가 봐요.,시험을 망쳤어,많이 속상하시겠어요.,"
            "내일 잘 보면 괜찮을 거 같아,좋은 생각이에요. 응원할게요.,네 번째 문장,네 번째 응답\n"
            "2,슬픔,오늘 시험 망쳐서 우울해,우울하셔서 정말 슬프시겠어요.,어떻게 하지?,,,,,\n"
            "3,기쁨,,,,,,,,\n"
        ),
    )
    records, problems = convert_file(csv_path)
    assert len(records[0]["messages"]) == 6  # three exchanges at most: the fourth is not used
    assert pairs(records[0])[-1] == ("assistant", "좋은 생각이에요. 응원할게요.")
    assert records[0]["meta"] == {"emotion": "불안"}
    assert pairs(records[1]) == [("user", "오늘 시험 망쳐서 우울해"), ("assistant", "우울하셔서 정말 슬프시겠어요.")]
    assert problem_lines(problems) == ["감성대화말뭉치.csv:4: 사람문장1: missing or empty: no complete exchange"]

    json_path = write(
        tmp_path,
        "Training.json",
        json.dumps(
            [
                {
                    "profile": {"emotion": {"type": "E18"}},
                    "talk": {
                        "content": {
                            "HS01": "일은 왜 해도 해도 끝이 없을까? 화가 난다.",
                            "SS01": "많이 힘드시겠어요.",
                            "HS02": "",
                            "SS02": "",
                        }
                    },
                },
                {"profile": {"emotion": {"type": "E30"}}, "talk": {"content": {"HS01": "", "SS01": "응답만 있음"}}},
            ],
            ensure_ascii=False,
            indent=2,
        ),
    )
    records, problems = convert_file(json_path)
    assert detect_format(json_path) == "emotion"
    assert pairs(records[0]) == [
        ("user", "일은 왜 해도 해도 끝이 없을까? 화가 난다."),
        ("assistant", "많이 힘드시겠어요."),
    ]
    assert records[0]["meta"] == {"emotion": "E18"}
    # The second element of the JSON array starts on line 12 of the indented file.
    start = json_path.read_text(encoding="utf-8").splitlines().index("  {", 2) + 1
    assert problem_lines(problems) == [
        f"Training.json:{start}: talk.content.HS01: missing or empty: no complete exchange"
    ]


def test_eval_set_jsonl_keeps_tool_calls_and_adds_reference_records(tmp_path):
    tool = "retrieve_fashion_text_knowledges_with_text_query"
    dialog = {
        "id": "fashion-coat-01",
        "eval_set": "t",
        "system": "당신은 패션 도우미입니다.",
        "tools": [{"type": "function", "function": {"name": tool, "parameters": {"type": "object"}}}],
        "turns": [
            {"role": "user", "content": "코트가 뭐야?"},
            {
                "role": "assistant",
                "tool_calls": [{"type": "function", "function": {"name": tool, "arguments": '{"text_query": "코트"}'}}],
            },
            {"role": "tool", "name": tool, "content": '[{"title": "코트"}]'},
            {"role": "assistant", "content": "코트는 프록 코트에서 유래된 의복입니다."},
            {"role": "user", "content": "고마워"},
        ],
        "references": {"3": ["겉옷의 하나입니다."]},
    }
    bad = {"id": "bad", "eval_set": "t", "turns": [{"role": "robot", "content": "?"}]}
    path = jsonl(tmp_path, "set.jsonl", [dialog, bad])
    assert detect_format(path) == "evalset"
    records, problems = convert_file(path)
    full, variant = records
    assert [m["role"] for m in full["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]  # open user turn dropped
    assert full["messages"][2]["tool_calls"][0]["function"]["name"] == tool and full["tools"] == dialog["tools"]
    assert variant["messages"][-1] == {"role": "assistant", "content": "겉옷의 하나입니다."}
    assert len(convert_file(path, references=False)[0]) == 1
    assert [(Path(p.file).name, p.line) for p in problems] == [("set.jsonl", 2)] and "unknown role" in problems[
        0
    ].message


def test_load_records_stops_on_bad_records_unless_skip_bad(tmp_path):
    good = jsonl(tmp_path, "a.jsonl", [{"instruction": "안녕?", "response": "안녕하세요."}])
    bad = jsonl(tmp_path, "b.jsonl", [{"instruction": "좋아", "output": "네."}, {"instruction": "빈 답", "output": ""}])
    with pytest.raises(DataError) as exc:
        load_records([str(good), f"alpaca:{bad}"])
    assert str(exc.value) == f"{bad}:2: output: missing or empty"
    data = load_records([str(good), f"alpaca:{bad}"], skip_bad=True)
    assert len(data.records) == 2 and len(data.problems) == 1
    assert [f["format"] for f in data.files] == ["dolly", "alpaca"] and data.files[1]["bad"] == 1
    import hashlib

    assert data.files[0]["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()


def test_data_source_spec_and_undetectable_format(tmp_path):
    assert DataSource.parse("kovicuna:data/x.json") == DataSource(Path("data/x.json"), "sharegpt")
    assert DataSource.parse("data/x.json") == DataSource(Path("data/x.json"), None)
    odd = jsonl(tmp_path, "odd.jsonl", [{"foo": 1}])
    with pytest.raises(ValueError, match="FORMAT:PATH"):
        detect_format(odd)


def test_cli_stops_before_training_on_bad_data_and_dry_run_reports(tmp_path, capsys):
    from arena.cli import main

    data = jsonl(tmp_path, "d.jsonl", [{"instruction": "질문", "response": "답"}, {"instruction": "질문2"}])
    out = tmp_path / "adapters"
    # A base model that does not exist proves nothing is loaded: the data check comes first.
    rc = main(["train", "--base_model", str(tmp_path / "no-model"), "--data", str(data), "--output_dir", str(out)])
    err = capsys.readouterr().err
    assert (
        rc == 2
        and "1 bad record(s), listed above; nothing was trained" in err
        and f"{data}:2: response: missing or empty" in err
    )
    assert not out.exists()
    rc = main(["train", "--base_model", "x", "--data", str(data), "--skip_bad", "--dry_run"])
    captured = capsys.readouterr()
    assert rc == 0 and "1 records in all" in captured.out and f"{data}:2" in captured.err

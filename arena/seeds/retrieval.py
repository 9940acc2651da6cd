"""Builds the shipped retrieval set: ``eval_sets/retrieval/fashion_docs.jsonl`` and ``eval_sets/fashion_retrieval.jsonl``.

The five real documents and dialogs come from the Select Star fashion examples in the seed report
(코트, 크록스, 크룩스 x2, 아크네 스튜디오). Everything else is synthetic and says so in its id
(``synthetic-...``): distractor documents combined from the fashion words of the seed's image tags,
and templated dialogs about them. Output is byte-identical on every run (fixed seed, sorted inputs).

Regenerate with ``arena seeds retrieval [--out eval_sets]``.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

EVAL_SET = "fashion_retrieval"
TOOL_NAME = "retrieve_fashion_text_knowledges_with_text_query"
TEXT_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "패션 지식 문서(제목과 설명)를 텍스트 쿼리로 검색합니다.",
        "parameters": {
            "type": "object",
            "properties": {"text_query": {"type": "string", "description": "검색할 내용"}},
            "required": ["text_query"],
        },
    },
}
SYSTEM = "당신은 패션 쇼핑 도우미입니다. 패션 지식이 필요하면 검색 도구를 사용해 답하세요."
SEED_SOURCE = "shared/seeds/000 (Select Star fashion aug.)"
N_DISTRACTORS = 300
RANDOM_SEED = 20241022

# The seed's tool results, verbatim (the seed spells the shoe brand 크룩스 in two of them).
SEED_DOCS = [
    {"id": "seed-crocs", "title": "크록스", "text": "미국의 신발 브랜드."},
    {"id": "seed-krooks-1", "title": "크룩스", "text": "여름철 바깥 활동이나 수상 레저 활동을 위해 만들어진 신발."},
    {
        "id": "seed-krooks-2",
        "title": "크룩스",
        "text": "젖어도 큰 상관이 없는 구조라 비 오는 날에는 은근히 자주 볼 수 있는 신발 중 하나.",
    },
    {
        "id": "seed-coat",
        "title": "코트",
        "text": "옛 유럽식 정장인 프록 코트에서 유래된 의복으로, 프로이센 군대를 위시한 19세기 중순부터 "
        "20세기 말까지 유럽의 군대에서는 모직 튜닉과 롱 코트를 군복으로 사용했다.",
    },
    {"id": "seed-acne-studios", "title": "아크네 스튜디오", "text": "스웨덴의 컨템포러리 패션 브랜드"},
]

# Words of the seed's k-fashion image tags and tool results.
COLORS = ["브라운", "블랙", "화이트", "오렌지", "스카이블루"]
FITS = ["오버사이즈", "노멀", "루즈"]
MATERIALS = ["울", "캐시미어", "저지", "우븐", "모직"]
DETAILS = ["더블브레스티드", "지퍼", "포켓", "단추", "드롭숄더", "스트링", "후드"]
COLLARS = ["테일러드칼라", "셔츠칼라", "라운드넥"]
STYLES = ["스트리트", "클래식", "모던", "스포티", "컨템포러리"]
CATEGORIES = ["코트", "짚업", "티셔츠", "조거팬츠", "신발", "튜닉", "정장"]
SEASONS = ["겨울", "가을", "여름철"]
LENGTHS = ["롱", "발목"]


def _has_batchim(word: str) -> bool:
    last = word[-1]
    return "가" <= last <= "힣" and (ord(last) - ord("가")) % 28 != 0


def _josa(word: str, with_batchim: str, without: str) -> str:
    """Word + the particle form its last syllable takes (코트를 / 짚업을)."""
    return word + (with_batchim if _has_batchim(word) else without)


def _candidate_titles() -> list[tuple[str, dict[str, str]]]:
    patterns: list[tuple[list[str], list[list[str]]]] = [
        (["color", "category"], [COLORS, CATEGORIES]),
        (["fit", "category"], [FITS, CATEGORIES]),
        (["season", "length", "category"], [SEASONS, LENGTHS, CATEGORIES]),
        (["style", "material", "category"], [STYLES, MATERIALS, CATEGORIES]),
        (["detail", "category"], [DETAILS, CATEGORIES]),
        (["collar", "category"], [COLLARS, CATEGORIES]),
        (["color", "fit", "category"], [COLORS, FITS, CATEGORIES]),
    ]
    out = []
    for keys, pools in patterns:
        for combo in itertools.product(*pools):
            out.append((" ".join(combo), dict(zip(keys, combo))))
    return out


def build_docs(n_distractors: int = N_DISTRACTORS) -> list[dict[str, Any]]:
    """The seed documents followed by ``n_distractors`` synthetic ones (with their attributes under ``_parts``)."""
    rng = random.Random(RANDOM_SEED)
    seed_titles = {d["title"] for d in SEED_DOCS}
    candidates = [c for c in _candidate_titles() if c[0] not in seed_titles]
    rng.shuffle(candidates)
    docs: list[dict[str, Any]] = [dict(d) for d in SEED_DOCS]
    for number, (title, parts) in enumerate(candidates[:n_distractors], start=1):
        style = parts.get("style") or rng.choice(STYLES)
        material = parts.get("material") or rng.choice(MATERIALS)
        detail = parts.get("detail") or rng.choice(DETAILS)
        season = parts.get("season") or rng.choice(SEASONS)
        text = (
            f"{style} 스타일에 어울리는 {material} 소재의 {parts['category']}. "
            f"{detail} 디테일이 특징이며 {season}에 입기 좋다."
        )
        docs.append({"id": f"synthetic-{number:04d}", "title": title, "text": text, "_parts": parts})
    return docs


def _tool_exchange(call_id: str, query: str, doc: dict[str, Any], answer: str) -> list[dict[str, Any]]:
    arguments = json.dumps({"text_query": query}, ensure_ascii=False)
    result = json.dumps([{"title": doc["title"], "text": doc["text"]}], ensure_ascii=False)
    return [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": TOOL_NAME, "arguments": arguments}}
            ],
        },
        {"role": "tool", "name": TOOL_NAME, "tool_call_id": call_id, "content": result},
        {"role": "assistant", "content": answer},
    ]


# Where `arena recall` finds the documents when no --index is given: relative to the eval-set file.
INDEX_HINT = "retrieval/fashion_docs.jsonl"


def _item(item_id: str, turns: list[dict[str, Any]], gold: list[str], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item_id,
        "eval_set": EVAL_SET,
        "category": "retrieval",
        "system": SYSTEM,
        "tools": [TEXT_TOOL],
        "turns": turns,
        "gold": gold,
        "meta": {**meta, "index": INDEX_HINT},
    }


def seed_items() -> list[dict[str, Any]]:
    """The five retrieval moments of the seed dialogs; ``reference_query`` is the seed's GT tool call."""
    by_id = {d["id"]: d for d in SEED_DOCS}
    hello = [{"role": "user", "content": "안녕."}, {"role": "assistant", "content": "안녕하세요. 무엇을 도와드릴까요?"}]
    crocs_q = {"role": "user", "content": "물어볼 게 있어. 크록스는 어느 나라 브랜드야?"}
    crocs = _tool_exchange("call_1", "크록스 브랜드 국가", by_id["seed-crocs"], "크록스는 미국의 신발 브랜드입니다.")
    use_q = {"role": "user", "content": "신발이 구멍이 나 있던데, 주로 어디에 신는 신발이야?"}
    use = _tool_exchange(
        "call_2",
        "크룩스 용도",
        by_id["seed-krooks-1"],
        "크룩스는 주로 여름철 바깥 활동이나 수상 레저 활동을 위한 신발입니다.",
    )
    outer = [
        {"role": "user", "content": "안녕?"},
        {"role": "assistant", "content": "안녕하세요. 무엇을 도와드릴까요?"},
        # The seed line is cut off after "따뜻한 아우"; completed here.
        {"role": "user", "content": "겨울이라 그런지 아침 저녁으로 날이 쌀쌀해서, 따뜻한 아우터를 하나 사고 싶어."},
        {"role": "assistant", "content": "어떤 종류의 아우터를 보여드릴까요?"},
        {"role": "user", "content": "음, 나는 코트가 잘 어울리니까 코트로 추천해줘."},
        {"role": "assistant", "content": "원하시는 핏이 있나요?"},
        {"role": "user", "content": "오버사이즈로 추천해줘. 오버사이즈하면 아크네 스튜디오잖아"},
    ]
    meta = {"source": SEED_SOURCE, "synthetic": False}
    note = {"note": "the seed's tool result for this 크록스 question is titled 크룩스"}
    return [
        _item(
            "fashion-retrieval-crocs-country",
            [*hello, crocs_q],
            ["크록스"],
            {**meta, "reference_query": "크록스 브랜드 국가"},
        ),
        _item(
            "fashion-retrieval-krooks-use",
            [*hello, crocs_q, *crocs, use_q],
            ["크룩스"],
            {**meta, **note, "reference_query": "크룩스 용도"},
        ),
        _item(
            "fashion-retrieval-krooks-features",
            [*hello, crocs_q, *crocs, use_q, *use, {"role": "user", "content": "크룩스의 특징도 알려줄래?"}],
            ["크룩스"],
            {**meta, "reference_query": "크룩스 특징"},
        ),
        _item(
            "fashion-retrieval-coat",
            [*hello, {"role": "user", "content": "궁금한 게 있는데, 코트가 정확히 어떤 건지 알려줘."}],
            ["코트"],
            {**meta, "reference_query": "코트"},
        ),
        _item(
            "fashion-retrieval-acne-studios", outer, ["아크네 스튜디오"], {**meta, "reference_query": "아크네 스튜디오"}
        ),
    ]


def synthetic_items(docs: list[dict[str, Any]], per_kind: int = 10) -> list[dict[str, Any]]:
    """Templated dialogs about distractor documents: direct, split over two turns, and by pronoun."""
    rng = random.Random(RANDOM_SEED + 1)
    synthetic = [d for d in docs if d["id"].startswith("synthetic-")]
    two_part = [d for d in synthetic if set(d["_parts"]) == {"color", "category"}]
    meta = {"source": "arena.seeds.retrieval", "synthetic": True}
    items: list[dict[str, Any]] = []
    for n, doc in enumerate(rng.sample(synthetic, per_kind), start=1):
        turns = [{"role": "user", "content": f"{_josa(doc['title'], '이', '가')} 어떤 옷인지 알려줘."}]
        items.append(
            _item(
                f"synthetic-retrieval-direct-{n:02d}", turns, [doc["title"]], {**meta, "reference_query": doc["title"]}
            )
        )
    for n, doc in enumerate(rng.sample(two_part, per_kind), start=1):
        parts = doc["_parts"]
        season = rng.choice(SEASONS)
        turns = [
            {"role": "user", "content": f"{season}에 입을 {_josa(parts['category'], '을', '를')} 찾고 있어."},
            {"role": "assistant", "content": "원하시는 색상이 있으신가요?"},
            {"role": "user", "content": f"{_josa(parts['color'], '으로', '로')} 된 건 어떤 옷인지 설명해 줄래?"},
        ]
        items.append(
            _item(
                f"synthetic-retrieval-context-{n:02d}", turns, [doc["title"]], {**meta, "reference_query": doc["title"]}
            )
        )
    for n, doc in enumerate(rng.sample(synthetic, per_kind), start=1):
        turns = [
            {"role": "user", "content": f"혹시 {doc['title']} 알아?"},
            {"role": "assistant", "content": "네, 알고 있어요. 어떤 점이 궁금하신가요?"},
            {"role": "user", "content": "그거 특징이 뭐야?"},
        ]
        items.append(
            _item(
                f"synthetic-retrieval-pronoun-{n:02d}", turns, [doc["title"]], {**meta, "reference_query": doc["title"]}
            )
        )
    return items


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_fashion_retrieval(out_dir: str | Path = "eval_sets") -> tuple[Path, Path]:
    """Write the index JSONL and the eval set; returns their paths."""
    out = Path(out_dir)
    docs = build_docs()
    items = seed_items() + synthetic_items(docs)
    index_path = out / INDEX_HINT  # kept out of eval_sets/*.jsonl, which holds dialogs only
    set_path = out / f"{EVAL_SET}.jsonl"
    _write_jsonl(index_path, [{"id": d["id"], "title": d["title"], "text": d["text"]} for d in docs])
    _write_jsonl(set_path, items)
    return index_path, set_path

"""`arena recall` end to end: the issue's must-show command with the tiny models, the store's query cache
(reuse, invalidation on an option change, retry of failures) and a model whose server is down."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from arena.cli import main
from arena.core.dialogs import load_dialogs
from arena.retrieval.recall import GenerationReport, retrieval_items
from arena.store import Store
from tests.browser import write_models_yaml

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SET = ROOT / "eval_sets" / "fashion_retrieval.jsonl"
SHIPPED_INDEX = ROOT / "eval_sets" / "retrieval" / "fashion_docs.jsonl"
TABLE_COLUMNS = ["system", "n", "no query", "R@1", "R@2", "R@4", "R@10", "MRR@10"]


def _rows(out: str) -> dict[str, list[str]]:
    """The markdown table's rows by system name."""
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == TABLE_COLUMNS
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]
    return {row[0]: row for row in cells}


def _stored(db: Path) -> list[tuple]:
    """(item_id, prompt_hash, status, created_at) of every recall_queries row."""
    with Store.open(db) as store, store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT item_id, prompt_hash, status, created_at FROM recall_queries ORDER BY item_id, prompt_hash"
                )
            )
        ]


def _small_set(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "small.jsonl"
    path.write_text("\n".join(SHIPPED_SET.read_text(encoding="utf-8").splitlines()[:n]) + "\n", encoding="utf-8")
    return path


def test_must_show_command_prints_both_rows(tiny_models, tmp_path: Path, monkeypatch, capsys) -> None:
    models = write_models_yaml(tmp_path / "models.yaml", tiny_models)
    db = tmp_path / "ratings.db"
    monkeypatch.chdir(ROOT)  # the command as the issue spells it, relative path included
    argv = [
        "recall",
        "--eval-set",
        "eval_sets/fashion_retrieval.jsonl",
        "--models",
        "llama-tiny",
        "--baseline",
        "last-utterance",
    ]
    assert main([*argv, "--config", str(models), "--db", str(db), "--cache-dir", str(tmp_path / "bm25")]) == 0
    captured = capsys.readouterr()
    rows = _rows(captured.out)
    assert {"last utterance + BM25", "llama-tiny + BM25"} <= set(rows)
    baseline, model = rows["last utterance + BM25"], rows["llama-tiny + BM25"]
    assert baseline[1] == model[1] == "35"
    assert baseline[3].startswith("0.514")  # R@1 of the last utterance on the shipped set (docs/recall.md)
    assert all(cell[0].isdigit() for cell in model[3:])  # every R@k and MRR cell has a value
    assert "llama-tiny: 0 from the store, 35 generated" in captured.err
    rows_in_store = _stored(db)
    assert len(rows_in_store) == 35 and {r[2] for r in rows_in_store} <= {"ok", "no_call", "wrong_tool", "malformed"}


def test_store_cache_reuse_and_invalidation(tiny_models, tmp_path: Path, capsys) -> None:
    items, db = _small_set(tmp_path), tmp_path / "ratings.db"
    base = [
        "recall",
        "--set",
        str(items),
        "--index",
        str(SHIPPED_INDEX),
        "--cache-dir",
        str(tmp_path / "bm25"),
        "--models",
        "llama-tiny",
        "--db",
        str(db),
        "--bootstrap",
        "0",
    ]
    models = write_models_yaml(tmp_path / "models.yaml", tiny_models, max_tokens=8)
    assert main([*base, "--config", str(models)]) == 0
    first = _stored(db)
    assert len(first) == 4 and len({r[1] for r in first}) == 4  # one row (and prompt hash) per item

    assert main([*base, "--config", str(models)]) == 0
    assert _stored(db) == first  # nothing regenerated: same rows, same timestamps
    assert "4 from the store, 0 generated" in capsys.readouterr().err

    models = write_models_yaml(tmp_path / "models.yaml", tiny_models, max_tokens=9)  # a sampling option changes
    assert main([*base, "--config", str(models)]) == 0
    after = _stored(db)
    assert len(after) == 8 and set(first) < set(after)
    assert {r[0] for r in after} == {r[0] for r in first}  # the same items, each under a second prompt hash
    assert "0 from the store, 4 generated" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failing_model_counts_errors_and_does_not_crash(tmp_path: Path, capsys) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        f"models:\n  - {{name: down, kind: openai, base_url: 'http://127.0.0.1:{_closed_port()}/v1'}}\n",
        encoding="utf-8",
    )
    db = tmp_path / "ratings.db"
    argv = [
        "recall",
        "--set",
        str(_small_set(tmp_path)),
        "--index",
        str(SHIPPED_INDEX),
        "--models",
        "down",
        "--config",
        str(models),
        "--db",
        str(db),
        "--cache-dir",
        str(tmp_path / "bm25"),
        "--format",
        "json",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    systems = {s["system"]: s for s in json.loads(captured.out)["systems"]}
    down = systems["down + BM25"]
    assert down["no_query_rate"] == 1.0 and down["status_counts"] == {"ok": 0, "error": 4}
    assert down["metrics"]["R@10"]["value"] == 0.0
    assert systems["last utterance + BM25"]["metrics"]["R@10"]["value"] > 0
    assert "4 failed" in captured.err
    assert [r[2] for r in _stored(db)] == ["error"] * 4  # on record, and retried next time:
    assert main(argv) == 0
    assert "0 from the store, 0 generated, 4 failed" in capsys.readouterr().err


def test_failed_rows_are_retried_and_replaced(tmp_path: Path) -> None:
    from arena.retrieval.runner import model_queries
    from backends.base import Backend, Error, Finish, ToolCall
    from backends.registry import ModelSpec, Registry

    items = retrieval_items(load_dialogs([SHIPPED_SET]))[:3]

    class Flaky(Backend):
        """Fails its first request, then searches for the item's reference query."""

        def __init__(self) -> None:
            super().__init__("flaky")
            self.requests = 0

        async def stream(self, messages, *, tools=None, options=None, cancel=None):  # type: ignore[override]
            self.requests += 1
            if self.requests == 1:
                yield Error(code="connection", message="refused")
                return
            query = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            yield Finish(
                finish_reason="tool_calls",
                tool_calls=[
                    ToolCall(index=0, name=tools[0]["function"]["name"], arguments=json.dumps({"text_query": query}))
                ],
            )

    backend = Flaky()
    registry = Registry([ModelSpec(name="flaky", kind="openai", base_url="http://127.0.0.1:9/v1")], {"flaky": backend})
    with Store.open(tmp_path / "r.db") as store:
        report = GenerationReport()
        first = asyncio.run(model_queries(store, registry, "flaky", items, concurrency=1, report=report))
        assert sorted(q.status for q in first.values()) == ["error", "ok", "ok"] and report.failed == 1
        failed_id = next(k for k, q in first.items() if q.status == "error")
        rows = store.get_recall_queries("flaky", items[0].eval_set)
        assert len(rows) == 3 and "refused" in next(r.error for (i, _), r in rows.items() if i == failed_id)

        report = GenerationReport()
        second = asyncio.run(model_queries(store, registry, "flaky", items, report=report))
        assert (report.cached, report.generated, report.failed) == (2, 1, 0) and backend.requests == 4
        assert second[failed_id].status == "ok"
        rows = store.get_recall_queries("flaky", items[0].eval_set)
        assert len(rows) == 3 and {r.status for r in rows.values()} == {"ok"}  # the error row was replaced
        # A late failure never overwrites a stored answer (two runs racing).
        (item_id, prompt), _ = next(iter(rows.items()))
        model_id = store.get_model("flaky").id
        store.save_recall_query(
            model_id=model_id,
            eval_set=items[0].eval_set,
            item_id=item_id,
            prompt_hash=prompt,
            query=None,
            status="error",
            error="late",
        )
        assert store.get_recall_queries(model_id, items[0].eval_set)[(item_id, prompt)].status == "ok"
        with pytest.raises(ValueError):
            store.save_recall_query(
                model_id=model_id, eval_set="x", item_id="y", prompt_hash="z", query=None, status="nonsense"
            )


def _strict(text: str) -> object:
    """json.loads that refuses NaN/Infinity, as JavaScript's JSON.parse and jq do."""

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_without_bootstrap_is_valid_json_with_nulls(tmp_path: Path, capsys) -> None:
    argv = ["recall", "--set", str(_small_set(tmp_path)), "--index", str(SHIPPED_INDEX)]
    argv += ["--db", str(tmp_path / "r.db"), "--cache-dir", str(tmp_path / "bm25"), "--format", "json"]
    assert main([*argv, "--bootstrap", "0"]) == 0
    doc = _strict(capsys.readouterr().out)
    metric = doc["systems"][0]["metrics"]["R@10"]
    assert metric["value"] > 0 and metric["lo"] is None and metric["hi"] is None

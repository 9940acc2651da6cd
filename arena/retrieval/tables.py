"""Recall summaries as Markdown or CSV tables (the CLI and the Leaderboard tab print the same)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from arena.core import jsonout
from arena.retrieval.recall import DEFAULT_KS, MRR_DEPTH

if TYPE_CHECKING:
    pass


def _cell(metric: dict[str, float], ci: bool) -> str:
    if np.isnan(metric["value"]):
        return "-"
    return f"{metric['value']:.3f} [{metric['lo']:.3f}, {metric['hi']:.3f}]" if ci else f"{metric['value']:.3f}"


def format_table(
    summaries: Sequence[dict[str, Any]], ks: Sequence[int] = DEFAULT_KS, fmt: str = "md", ci: bool = True
) -> str:
    """The side-by-side table: md (R@k = hit@k, with CIs), csv (every metric with lo/hi) or json."""
    if fmt == "json":
        return jsonout.dumps({"ks": list(ks), "systems": list(summaries)}, ensure_ascii=False, indent=2)
    if fmt == "csv":
        import csv
        import io

        names = [f"R@{k}" for k in ks] + [f"recall@{k}" for k in ks] + [f"MRR@{MRR_DEPTH}"]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["system", "n", "no_query_rate"] + [f"{n}{s}" for n in names for s in ("", "_lo", "_hi")])
        for s in summaries:
            m = s["metrics"]
            writer.writerow(
                [s["system"], s["n"], f"{s['no_query_rate']:.4f}"]
                + [f"{m[n][part]:.4f}" for n in names for part in ("value", "lo", "hi")]
            )
        return buf.getvalue()
    if fmt != "md":
        raise ValueError(f"unknown format {fmt!r}; expected md, csv or json")
    header = ["system", "n", "no query"] + [f"R@{k}" for k in ks] + [f"MRR@{MRR_DEPTH}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for s in summaries:
        m = s["metrics"]
        cells = [s["system"], str(s["n"]), f"{s['no_query_rate']:.1%}"]
        cells += [_cell(m[f"R@{k}"], ci) for k in ks] + [_cell(m[f"MRR@{MRR_DEPTH}"], ci)]
        lines.append("| " + " | ".join(cells) + " |")
    if summaries and ci:
        c = summaries[0]["ci"]
        lines.append("")
        lines.append(
            f"R@k = hit@k: share of items with any gold document in the top k (items without a query count as misses). "
            f"[lo, hi] = {c['level']:.0%} bootstrap CI ({c['n_boot']} resamples, seed {c['seed']}). "
            "Fraction-of-golds recall@k: --format csv/json."
        )
    return "\n".join(lines)

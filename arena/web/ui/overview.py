"""Overview tab: the eval sets and models this arena serves."""

from __future__ import annotations

from collections import Counter, defaultdict

import gradio as gr
import pandas as pd

from arena.core.dialogs import Dialog
from arena.core.i18n import t
from arena.web.policies import is_researcher, named_models
from arena.web.services import Services


def eval_set_table(dialogs: list[Dialog], lang: str) -> pd.DataFrame:
    """One row per eval set: dialogs, GT turns, categories."""
    counts: Counter[str] = Counter()
    turns: Counter[str] = Counter()
    categories: dict[str, set[str]] = defaultdict(set)
    for d in dialogs:
        counts[d.eval_set] += 1
        turns[d.eval_set] += len(d.assistant_indices())
        if d.category:
            categories[d.eval_set].add(d.category)
    rows = [[name, counts[name], turns[name], ", ".join(sorted(categories[name]))] for name in sorted(counts)]
    cols = [t(lang, k) for k in ("col_eval_set", "col_dialogs", "col_turns", "col_categories")]
    return pd.DataFrame(rows, columns=cols)


def model_table(services: Services, lang: str, username: str | None) -> pd.DataFrame:
    """The models this account may see: for researchers every model with its kind and where it lives;
    for annotators only the names they can pick in Replay and Live (paths, URLs and the models of
    their open blind rounds are not theirs to know)."""
    reg = services.registry
    if is_researcher(services.store, username):
        rows = [[name, spec.kind, spec.target()] for name, spec in reg.specs.items()]
        return pd.DataFrame(rows, columns=[t(lang, k) for k in ("col_model", "col_kind", "col_target")])
    names = named_models(reg, services.store, username)
    return pd.DataFrame([[n] for n in names], columns=[t(lang, "col_model")])


def build(app: gr.Blocks, services: Services, lang: str) -> None:
    """Render the overview tab's components inside the current Blocks context."""
    gr.Markdown(f"### {t(lang, 'eval_sets')}")
    gr.Dataframe(eval_set_table(services.dialogs, lang), interactive=False, elem_id="eval-sets-table")
    gr.Markdown(f"### {t(lang, 'models')}")
    # Filled per account on page load (runtime adapters included); built empty, since a component's
    # initial value is served to anyone in Gradio's /config.
    table = gr.Dataframe(pd.DataFrame(columns=[t(lang, "col_model")]), interactive=False, elem_id="models-table")

    def fill(request: gr.Request) -> pd.DataFrame:
        return model_table(services, lang, request.username)

    app.load(fill, None, [table], show_progress="hidden")

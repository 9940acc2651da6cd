"""ArenaBlocks answers skipped outputs cheaply and otherwise exactly as gr.Blocks does."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import gradio as gr
import pytest
from gradio.state_holder import SessionState

from arena.web.blocks import ArenaBlocks


def _app(cls: type[gr.Blocks]) -> tuple[gr.Blocks, dict[str, Any]]:
    with cls() as app:
        c = {
            "state": gr.State(0),
            "text": gr.Textbox("a", elem_id="t"),
            "md": gr.Markdown("m"),
            "html": gr.HTML("<b>h</b>"),
            "button": gr.Button("b", interactive=False),
            "radio": gr.Radio(["x", "y"], value="x"),
            "col": gr.Column(visible=True),
        }
        with c["col"]:
            gr.Markdown("inside")
        c["button"].click(lambda: None, None, list(c.values()))
    return app, c


# Each case: the updates one event's handler returns, step after step in one session (as a stream or
# successive events do): a dict of updates by name, or a list of values in output order.
CASES: list[list[Any]] = [
    [{"text": "새 값", "button": gr.update(interactive=True)}],
    [{"state": 5, "html": "<i>x</i>", "col": gr.update(visible=False)}],
    [{"md": gr.skip(), "radio": gr.update(value="y", interactive=False)}],
    [{"text": gr.update()}],  # an update with no props is not a skip: Gradio rebuilds the component
    [[gr.skip(), "리스트", gr.skip(), "<p/>", gr.update(interactive=True), gr.skip(), gr.skip()]],
    [[1, "t", "m", "h", gr.update(interactive=True), "y", gr.update(visible=False)]],
    [[gr.skip()] * 7],
    # flags set cheaply, then a full update of the same components rebuilt from the session's copy
    [
        {"radio": gr.update(interactive=False), "text": gr.update(visible=False, interactive=True)},
        {"radio": gr.update(choices=["x", "z"], value="z"), "text": gr.update(value="b", lines=3)},
        {"radio": gr.update(interactive=True), "html": gr.update(visible=False)},
    ],
    [
        {"button": gr.update(interactive=True)},
        {"button": gr.update(interactive=False)},
        {"button": gr.update(value="다음")},
    ],
    # values set with flags, as the arena clears its rating inputs (a Button's value stays Gradio's path)
    [
        {
            "radio": gr.update(value=None, interactive=False),
            "text": gr.update(value="", interactive=False),
            "md": gr.update(value="**굵게**", visible=True),
            "button": gr.update(value="b2", interactive=True),
        },
        {"radio": gr.update(value="y", interactive=True), "text": gr.update(value="다시", visible=False)},
    ],
]
NAMES = ["state", "text", "md", "html", "button", "radio", "col"]  # the event's outputs, in order


def _predictions(case: Any, c: dict[str, Any]) -> Any:
    case = copy.deepcopy(case)  # Gradio pops "value" out of the update dicts it is given
    return {c[k]: v for k, v in case.items()} if isinstance(case, dict) else list(case)


def _normal(value: Any) -> Any:
    """Gradio's answer for a skipped HTML output, ``{"props": {"__type__": "update"}, "__type__": "update"}``,
    changes nothing on the page either: it is the plain skip."""
    return gr.skip() if value == {"props": gr.skip(), **gr.skip()} else value


def _run(cls: type[gr.Blocks], steps: list[Any]) -> tuple[list[list[Any]], dict[str, Any], dict[str, Any], Any]:
    app, c = _app(cls)
    state = SessionState(app)
    outs = [asyncio.run(app.postprocess_data(app.fns[0], _predictions(step, c), state)) for step in steps]
    # Component ids differ between the two apps: compare the session's configs by name, ids left out.
    configs = {n: {k: v for k, v in state.config_values[c[n]._id].items() if k != "id"} for n in NAMES[1:]}
    flags = {n: (getattr(state[c[n]._id], "interactive", None), state[c[n]._id].visible) for n in NAMES[1:]}
    return outs, configs, flags, state[c["state"]._id] if c["state"]._id in state else None


def _given_values(steps: list[Any]) -> set[str]:
    """Names of the outputs some step gave a value to (or updated an HTML: that stays Gradio's path)."""
    named = set()
    for step in steps:
        values = step if isinstance(step, list) else [step.get(n, gr.skip()) for n in NAMES]
        for n, v in zip(NAMES, values):
            if not (isinstance(v, dict) and v.get("__type__") == "update" and "value" not in v) or (
                n == "html" and v != gr.skip()
            ):
                named.add(n)
    return named


@pytest.mark.parametrize("steps", CASES, ids=range(len(CASES)))
def test_the_same_answer_and_session_state_as_gradio(steps: list[Any]) -> None:
    expected = _run(gr.Blocks, steps)
    got = _run(ArenaBlocks, steps)
    assert got[0] == [[_normal(v) for v in out] for out in expected[0]]  # what the page receives
    assert got[2] == expected[2]  # the session's components: interactive and visible
    assert got[3] == expected[3]  # the session's State value
    # The session's copy of the config (what Gradio rebuilds a tab from): the same, except that Gradio
    # loses the value of a component it rebuilds for a skip or a props-only update; ArenaBlocks keeps it.
    initial = _run(ArenaBlocks, [[gr.skip()] * len(NAMES)])[1]
    for name in NAMES[1:]:
        if name not in _given_values(steps):
            assert got[1][name]["props"].get("value") == initial[name]["props"].get("value"), name
        # (where a value was set, Gradio's session copy is not consistent: some types keep it, some drop it)
        got[1][name]["props"].pop("value", None), expected[1][name]["props"].pop("value", None)
        assert got[1][name] == expected[1][name], name


def test_an_empty_dict_is_the_error_gradio_gives() -> None:
    for cls in (gr.Blocks, ArenaBlocks):
        with pytest.raises(ValueError, match="didn't return enough output values"):
            _run(cls, [{}])


def test_skipped_outputs_build_no_component() -> None:
    app, c = _app(ArenaBlocks)
    built: list[str] = []
    original = gr.Markdown.__init__

    def counting(self: gr.Markdown, *args: Any, **kwargs: Any) -> None:
        built.append("md")
        original(self, *args, **kwargs)

    gr.Markdown.__init__ = counting  # type: ignore[method-assign]
    try:
        out = asyncio.run(app.postprocess_data(app.fns[0], {c["text"]: "x"}, SessionState(app)))
    finally:
        gr.Markdown.__init__ = original  # type: ignore[method-assign]
    assert built == []
    assert out[1] == "x" and all(o == gr.skip() for i, o in enumerate(out) if i not in (0, 1))

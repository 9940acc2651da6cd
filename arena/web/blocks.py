"""``ArenaBlocks``: gr.Blocks without the cost Gradio puts on outputs an event leaves alone.

A handler that returns a dict of updates leaves every other output of its event untouched, and
Gradio fills them in with ``gr.skip()``. Gradio 6 then treats each skip like ``gr.update()``: it
builds a new component object from the old one's constructor arguments (``inspect.signature``
included) and rebuilds that component's config, only to send ``{"__type__": "update"}``, which the
page ignores. A replay turn has 37 outputs and streams dozens of updates that each change one or
two of them, so under load most of the server's time went there (docs/reliability.md).

``gr.update(interactive=...)`` and ``gr.update(visible=...)`` cost as much: a new component and its
config built twice (once for the old object, once for the new). The arena toggles a dozen of them
per turn (rating inputs cleared and locked while an answer streams), so those two props, and the
value of a plain-value component updated with them, are set on a copy of the session's component
instead. Every other update goes through Gradio unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

import gradio as gr
from gradio.blocks import Block, BlockFunction

# Props that are plain attributes of every component and layout block, with no effect on the others.
_FLAG_PROPS = frozenset({"interactive", "visible"})
# Components whose value is plain data (no files for Gradio to move into its cache), so a flag update
# may also carry "value": postprocessed by the component, as Gradio does.
_PLAIN_VALUE = (gr.Radio, gr.CheckboxGroup, gr.Textbox, gr.Markdown, gr.Number, gr.Checkbox)


def _flag_update(block: Block, value: Any) -> dict[str, Any] | None:
    """The props of an update that only sets interactive and/or visible (to True/False) and, on a
    plain-value component, its value; else None (Gradio's own path)."""
    if not (isinstance(value, dict) and value.get("__type__") == "update") or block.stateful:
        return None
    if isinstance(block, gr.HTML):  # Gradio answers HTML updates in its own shape
        return None
    props = {k: v for k, v in value.items() if k != "__type__"}
    flags = {k: v for k, v in props.items() if k != "value"}
    if not flags or not set(flags) <= _FLAG_PROPS or not all(isinstance(v, bool) for v in flags.values()):
        return None
    if "value" in props and not isinstance(block, _PLAIN_VALUE):
        return None
    return props


def _set_flags(block: Block, props: dict[str, Any], state: Any) -> dict[str, Any]:
    """Apply a flag update to the session's copy of ``block`` as Gradio would, without rebuilding it."""
    base = state.get(block._id, block)
    flags = {k: v for k, v in props.items() if k != "value"}
    new = copy.copy(base)
    for key, value in flags.items():
        setattr(new, key, value)
    # Later updates rebuild from constructor_args (Gradio's own path): they must carry the flags.
    new._constructor_args = [{**base.constructor_args, **flags}, *base._constructor_args[1:]]
    state.blocks_config.blocks[block._id] = new
    answer: dict[str, Any] = {**flags}
    if "value" in props:
        answer["value"] = new.postprocess(props["value"])
    config = state.config_values.get(block._id)
    if config is not None and "props" in config:
        state.config_values[block._id] = {**config, "props": {**config["props"], **answer}}
    return {**answer, "__type__": "update"}


def _is_skip(value: Any) -> bool:
    """Exactly what ``gr.skip()`` returns: an update that changes nothing."""
    return isinstance(value, dict) and len(value) == 1 and value.get("__type__") == "update"


class ArenaBlocks(gr.Blocks):
    """gr.Blocks that answers skipped outputs and flag updates without rebuilding their components."""

    async def postprocess_data(self, block_fn: BlockFunction, predictions: list | dict, state: Any) -> list[Any]:
        outputs = list(block_fn.outputs)
        if len(outputs) < 2 or block_fn.batch or block_fn.is_validator_function:
            return await super().postprocess_data(block_fn, predictions, state)
        if isinstance(predictions, dict) and predictions and all(isinstance(k, Block) for k in predictions):
            by_id = {k._id: v for k, v in predictions.items()}
            if set(by_id) - {b._id for b in outputs}:  # a stale or foreign component: Gradio's own matching
                return await super().postprocess_data(block_fn, predictions, state)
            values = [by_id.get(b._id, gr.skip()) for b in outputs]
        elif isinstance(predictions, (list, tuple)) and len(predictions) == len(outputs):
            values = list(predictions)
        else:  # a single skip for all, or a shape Gradio reports as an error
            return await super().postprocess_data(block_fn, predictions, state)
        if state is None:  # Gradio makes a throwaway one; flag updates need the same to write to
            from gradio.state_holder import SessionState

            state = SessionState(self)
        result: list[Any] = [gr.skip() for _ in outputs]
        kept = []
        for i, (block, value) in enumerate(zip(outputs, values)):
            if block.stateful:  # State outputs stay with Gradio: cheap there, and it keeps their bookkeeping
                kept.append(i)
            elif (flags := _flag_update(block, value)) is not None:
                result[i] = _set_flags(block, flags, state)
            elif not _is_skip(value):
                kept.append(i)
        if len(kept) == len(outputs):
            return await super().postprocess_data(block_fn, values, state)
        if kept:
            fn = copy.copy(block_fn)
            fn.outputs = [outputs[i] for i in kept]
            kept_values = [values[i] for i in kept]
            done = await super().postprocess_data(fn, kept_values if len(kept) > 1 else kept_values[0], state)
            for i, value in zip(kept, done):
                result[i] = value
        return result

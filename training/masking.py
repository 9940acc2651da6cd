"""Chat records -> token ids with an assistant mask, for any chat template (named, .jinja, or the tokenizer's).

trl's ``assistant_only_loss`` needs ``{% generation %}`` markers in the template; the KoAlpaca/SOLAR/Gemma
templates in ``backends.templates`` have none and Polyglot ships no template at all. So the assistant spans
are found by rendering: turn ``i``'s answer starts where the prompt rendered for it (``messages[:i]`` plus
the generation prompt) ends, and ends where ``messages[:i+1]`` stops agreeing with the full text. That is
exactly the text the arena asks the model to produce at inference, stop token included on the last turn.
"""

from __future__ import annotations

import os
from typing import Any

from backends import templates


class TemplateMismatch(ValueError):
    """The template renders a prompt that is not a prefix of the full dialog; assistant spans are undefined."""


def render(
    tokenizer: Any,
    template: str | None,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    *,
    add_generation_prompt: bool,
) -> str:
    """The prompt text exactly as ``LocalBackend.build_prompt`` builds it (template name/path, else the tokenizer's)."""
    if template is not None:
        return templates.render(
            template,
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            bos_token=tokenizer.bos_token or "",
            eos_token=tokenizer.eos_token or "",
        )
    if not tokenizer.chat_template:
        raise ValueError("the tokenizer has no chat template; set `template` (e.g. koalpaca for Polyglot)")
    return tokenizer.apply_chat_template(
        messages, tools=tools or None, add_generation_prompt=add_generation_prompt, tokenize=False
    )


def assistant_spans(
    tokenizer: Any, template: str | None, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """The full dialog text and the character span of every assistant answer in it."""
    full = render(tokenizer, template, messages, tools, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = render(tokenizer, template, messages[:i], tools, add_generation_prompt=True)
        if not full.startswith(prompt):
            raise TemplateMismatch(f"turn {i}: the rendered prompt is not a prefix of the rendered dialog")
        upto = render(tokenizer, template, messages[: i + 1], tools, add_generation_prompt=False)
        end = len(os.path.commonprefix([upto, full]))
        if end > len(prompt):
            spans.append((len(prompt), end))
    return full, spans


def tokenize_record(tokenizer: Any, template: str | None, record: dict[str, Any]) -> dict[str, list[int]]:
    """``input_ids`` of the rendered record and ``assistant_masks`` (1 on tokens that start inside an answer)."""
    text, spans = assistant_spans(tokenizer, template, record["messages"], record.get("tools"))
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("a fast tokenizer is needed (character offsets locate the assistant tokens)")
    # Special tokens are part of the rendered text already (as at inference in LocalBackend).
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(s <= start < e for s, e in spans)) for start, _ in enc["offset_mapping"]]
    return {"input_ids": list(enc["input_ids"]), "assistant_masks": mask}

"""HTML for dialogs, tool-call cards, answers and GT diffs. Pure functions: no Gradio here."""

from __future__ import annotations

import html
import json
from typing import Any

from arena.core.i18n import t
from arena.core.metrics import GenerationMetrics, diff_html
from backends.base import ToolCall

SIDE_LETTERS = "ABCD"  # sides are named by letter on screen; names only after a blind vote

ROLE_LABEL = {"user": "role_user", "assistant": "role_assistant", "tool": "role_tool", "system": "role_system"}


def _text(value: str | None) -> str:
    return html.escape(value or "").replace("\n", "<br>")


def _pretty_args(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return json.dumps(arguments, ensure_ascii=False, indent=1)


def tool_call_card(name: str, arguments: Any, lang: str) -> str:
    """A readable card for one tool call: function name and its arguments."""
    return (
        f'<div class="arena-toolcall"><span class="arena-tag">{t(lang, "tool_call")}</span> '
        f"<code>{html.escape(name)}</code><pre>{html.escape(_pretty_args(arguments))}</pre></div>"
    )


def tool_result_card(name: str | None, content: str | None, lang: str) -> str:
    """The scripted tool response, shown as a card."""
    body = content or ""
    try:
        body = json.dumps(json.loads(body), ensure_ascii=False, indent=1)
    except (json.JSONDecodeError, TypeError):
        pass
    label = f"{t(lang, 'tool_result')}" + (f" · <code>{html.escape(name)}</code>" if name else "")
    return f'<div class="arena-toolresult"><span class="arena-tag">{label}</span><pre>{html.escape(body)}</pre></div>'


def message_html(message: dict[str, Any], lang: str, *, reference: bool = True) -> str:
    """One OpenAI chat message as a bubble (tool calls and results as cards)."""
    role = message.get("role", "user")
    parts = []
    if message.get("content"):
        if role == "tool":
            parts.append(tool_result_card(message.get("name"), message["content"], lang))
        else:
            parts.append(f'<div class="arena-text">{_text(message["content"])}</div>')
    for call in ToolCall.list_from_openai(message.get("tool_calls")):
        parts.append(tool_call_card(call.name, call.arguments, lang))
    key = ROLE_LABEL.get(role, "role_user")
    label = t(lang, "role_model" if key == "role_assistant" and not reference else key)
    return f'<div class="arena-msg arena-{role}"><div class="arena-role">{label}</div>{"".join(parts)}</div>'


def dialog_html(messages: list[dict[str, Any]], lang: str, *, reference: bool = True) -> str:
    """A history of messages (system prompts are shown elsewhere, collapsed); ``reference`` labels
    assistant turns as the scripted GT rather than as a model's own earlier answers."""
    shown = [m for m in messages if m.get("role") != "system"]
    return '<div class="arena-dialog">' + "".join(message_html(m, lang, reference=reference) for m in shown) + "</div>"


def answer_html(text: str, tool_calls: list[ToolCall], lang: str, *, streaming: bool = False) -> str:
    """A model's answer so far: text plus any tool calls as cards.

    While streaming text alone, the HTML is left open (the browser closes the element) and the cursor is
    drawn by CSS (``.arena-cursor::after``), so each update starts with the previous one: Gradio then
    sends only the new characters (an "append" diff) instead of the whole answer every time.
    """
    cards = "".join(tool_call_card(c.name, c.arguments, lang) for c in tool_calls)
    if streaming:
        return f'<div class="arena-answer arena-cursor">{_text(text)}' + (f"{cards}</div>" if cards else "")
    if not text and not cards:
        return f'<div class="arena-answer arena-empty">{t(lang, "empty_answer")}</div>'
    return f'<div class="arena-answer">{_text(text)}{cards}</div>'


def error_html(message: str, lang: str) -> str:
    """This side failed: the error, and why it cannot be rated."""
    return (
        f'<div class="arena-error"><b>{t(lang, "side_error")}</b><br>{_text(message)}'
        f"<br><i>{t(lang, 'side_error_excluded')}</i></div>"
    )


def gt_html(gt_text: str | None, gt_calls: list[ToolCall], metrics: GenerationMetrics | None, lang: str) -> str:
    """The GT turn with the word/morpheme diff against the answer, and the figures under it."""
    if gt_text is None and not gt_calls:
        return f'<div class="arena-gt arena-empty">{t(lang, "no_gt")}</div>'
    parts = [f'<div class="arena-gt"><div class="arena-role">{t(lang, "gt")}</div>']
    if gt_text:
        parts.append(
            f'<div class="arena-diff">{diff_html(metrics.diff) if metrics and metrics.diff else _text(gt_text)}</div>'
        )
    for call in gt_calls:
        parts.append(tool_call_card(call.name, call.arguments, lang))
    if metrics is not None:
        parts.append(f'<div class="arena-figures">{metrics_line(metrics, lang)}</div>')
    parts.append("</div>")
    return "".join(parts)


def _yes_no(value: bool | None, lang: str) -> str:
    return "—" if value is None else ("✓ " + t(lang, "match") if value else "✗ " + t(lang, "mismatch"))


def metrics_line(metrics: GenerationMetrics, lang: str) -> str:
    """Similarity, tool-call match and repetition in one line."""
    items = []
    if metrics.similarity is not None:
        items.append(f"{t(lang, 'similarity')} {metrics.similarity:.2f}")
    if metrics.tool_name_match is not None:
        items.append(f"{t(lang, 'tool_name')} {_yes_no(metrics.tool_name_match, lang)}")
        items.append(f"{t(lang, 'tool_args')} {_yes_no(metrics.tool_args_match, lang)}")
    if metrics.repeats_earlier_turn:
        items.append(f"⚠ {t(lang, 'repeats_earlier')} ({metrics.repetition:.2f})")
    return " · ".join(items)


def timings_line(ttft_s: float | None, tokens_per_s: float | None, tokens: int | None, lang: str) -> str:
    """Time to first token and speed, as the seed reports them (ms/token and tokens/s)."""
    bits = []
    if ttft_s is not None:
        bits.append(f"TTFT {ttft_s * 1000:.0f} ms")
    if tokens_per_s:
        bits.append(f"{1000 / tokens_per_s:.2f} ms/token ({tokens_per_s:.1f} tokens/s)")
    if tokens is not None:
        bits.append(f"{tokens} {t(lang, 'tokens')}")
    return " · ".join(bits)

"""Chat templates (Jinja) for models that ship none, matched to the formats in the seed documents.

The same text is written to ``backends/chat_templates/<name>.jinja`` for ``vllm serve --chat-template``,
so the arena's local backend and a vLLM server build byte-identical prompts. Rendering follows
transformers' conventions (sandboxed Jinja, ``trim_blocks``/``lstrip_blocks``, ``tojson`` without
ASCII escaping), so a template behaves the same here, in ``apply_chat_template`` and in vLLM.

Formats without a tool role (KoAlpaca, SOLAR, Gemma) skip ``tool`` messages and render an assistant
tool call as its JSON, because those models were never trained on tool results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).parent / "chat_templates"

# Shared macro: an assistant message's text, or its tool calls as JSON when it has no text.
_ASSISTANT_TEXT = (
    "{%- macro assistant_text(m) -%}"
    "{%- if m.content -%}{{- m.content -}}"
    "{%- elif m.tool_calls -%}"
    "{%- for c in m.tool_calls -%}{%- if not loop.first %}; {% endif -%}"
    '{"name": "{{ c.function.name }}", "parameters": '
    "{%- if c.function.arguments is string %} {{ c.function.arguments }}"
    "{%- else %} {{ c.function.arguments | tojson }}{%- endif -%}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}\n"
)

# KoAlpaca / Polyglot-ko: "### 질문: ...\n\n### 답변: ..." (seed 004). The last answer of a training
# text ends with the EOS token (<|endoftext|>); earlier turns are separated by a blank line.
KOALPACA = _ASSISTANT_TEXT + (
    "{%- for message in messages -%}\n"
    "{%- if message.role == 'system' -%}{{- message.content + '\\n\\n' -}}\n"
    "{%- elif message.role == 'user' -%}{{- '### 질문: ' + message.content + '\\n\\n' -}}\n"
    "{%- elif message.role == 'assistant' -%}{{- '### 답변: ' + assistant_text(message) -}}\n"
    "{%- if loop.last and not add_generation_prompt -%}{{- eos_token or '' -}}"
    "{%- else -%}{{- '\\n\\n' -}}{%- endif -%}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '### 답변:' -}}{%- endif -%}\n"
)

# SOLAR instruct (upstage/SOLAR-10.7B-Instruct, LDCC-SOLAR-10.7B): "### User:\n...\n\n### Assistant:\n...".
SOLAR = _ASSISTANT_TEXT + (
    "{{- bos_token or '' -}}\n"
    "{%- for message in messages -%}\n"
    "{%- if message.role == 'system' and message.content -%}{{- '### System:\\n' + message.content + '\\n\\n' -}}\n"
    "{%- elif message.role == 'user' -%}{{- '### User:\\n' + message.content + '\\n\\n' -}}\n"
    "{%- elif message.role == 'assistant' -%}{{- '### Assistant:\\n' + assistant_text(message) -}}\n"
    "{%- if loop.last and not add_generation_prompt -%}{{- eos_token or '' -}}"
    "{%- else -%}{{- '\\n\\n' -}}{%- endif -%}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '### Assistant:\\n' -}}{%- endif -%}\n"
)

# Gemma (seed 003): "<start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n...<end_of_turn>\n".
# Gemma has no system role; as in Google's template the system text opens the first user turn.
GEMMA = _ASSISTANT_TEXT + (
    "{{- bos_token or '' -}}\n"
    "{%- set ns = namespace(system='') -%}\n"
    "{%- for message in messages -%}\n"
    "{%- if message.role == 'system' -%}{%- set ns.system = message.content + '\\n\\n' -%}\n"
    "{%- elif message.role == 'user' -%}"
    "{{- '<start_of_turn>user\\n' + ns.system + message.content + '<end_of_turn>\\n' -}}"
    "{%- set ns.system = '' -%}\n"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<start_of_turn>model\\n' + assistant_text(message) + '<end_of_turn>\\n' -}}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}\n"
)

# Llama 3.1 with JSON tool calling (Meta's format): tools go into the first user message, a call is
# {"name": ..., "parameters": {...}}, a tool result is an "ipython" turn. The date is fixed (not "today")
# so that a replayed prompt is the same on every run. Parsed by vLLM's `llama3_json` tool parser.
LLAMA31 = (
    "{{- bos_token or '' -}}\n"
    "{%- if date_string is not defined -%}{%- set date_string = '26 Jul 2024' -%}{%- endif -%}\n"
    "{%- set has_tools = tools is defined and tools -%}\n"
    "{%- set ns = namespace(system='', first_user=true) -%}\n"
    "{%- set rest = messages -%}\n"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set ns.system = messages[0].content | trim -%}{%- set rest = messages[1:] -%}{%- endif -%}\n"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' -}}\n"
    "{%- if has_tools -%}{{- 'Environment: ipython\\n' -}}{%- endif -%}\n"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n' -}}\n"
    "{{- ns.system + '<|eot_id|>' -}}\n"
    "{%- for message in rest -%}\n"
    "{%- if message.role == 'user' -%}\n"
    "{{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
    "{%- if has_tools and ns.first_user -%}"
    "{{- 'Given the following functions, please respond with a JSON for a function call '"
    " + 'with its proper arguments that best answers the given prompt.\\n\\n'"
    ' + \'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. \''
    " + 'Do not use variables.\\n\\n' -}}"
    "{%- for t in tools -%}{{- t | tojson(indent=4) + '\\n\\n' -}}{%- endfor -%}"
    "{%- set ns.first_user = false -%}"
    "{%- endif -%}\n"
    "{{- message.content | trim + '<|eot_id|>' -}}\n"
    "{%- elif message.role == 'assistant' and message.tool_calls -%}\n"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "{%- for c in message.tool_calls -%}{%- if not loop.first %}; {% endif -%}"
    '{"name": "{{ c.function.name }}", "parameters": '
    "{%- if c.function.arguments is string %} {{ c.function.arguments }}"
    "{%- else %} {{ c.function.arguments | tojson }}{%- endif -%}}"
    "{%- endfor -%}\n"
    "{{- '<|eot_id|>' -}}\n"
    "{%- elif message.role == 'assistant' -%}\n"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' + message.content | trim + '<|eot_id|>' -}}\n"
    "{%- elif message.role in ('tool', 'ipython') -%}\n"
    "{{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' -}}\n"
    "{%- if message.content is string -%}{{- message.content -}}{%- else -%}{{- message.content | tojson -}}{%- endif -%}\n"
    "{{- '<|eot_id|>' -}}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}\n"
)

TEMPLATES: dict[str, str] = {"koalpaca": KOALPACA, "solar": SOLAR, "gemma": GEMMA, "llama31": LLAMA31}

# Text after which a model of this format is answering the next turn itself: cut the answer there.
STOP_STRINGS: dict[str, list[str]] = {
    "koalpaca": ["### 질문:", "<|endoftext|>"],
    "solar": ["### User:", "</s>"],
    "gemma": ["<end_of_turn>", "<start_of_turn>"],
    "llama31": ["<|eot_id|>", "<|eom_id|>", "<|start_header_id|>"],
}


def get_template(name_or_path: str) -> str:
    """A template by name (``koalpaca``, ``solar``, ``gemma``, ``llama31``) or from a ``.jinja`` file."""
    problem = check_template(name_or_path)
    if problem:
        raise KeyError(problem)
    return TEMPLATES.get(name_or_path) or Path(name_or_path).read_text(encoding="utf-8")


def is_jinja_source(text: str) -> bool:
    """Whether ``text`` is template source rather than a template name or path (it has a Jinja tag)."""
    return "{{" in text or "{%" in text


def check_template(name_or_path: str) -> str | None:
    """Why ``name_or_path`` is not a usable template (unknown name, missing .jinja file), or None if it is."""
    if name_or_path in TEMPLATES:
        return None
    known = f"known: {', '.join(sorted(TEMPLATES))}, or a path ending in .jinja"
    if not name_or_path.endswith(".jinja"):
        return f"unknown chat template {name_or_path!r}; {known}"
    if not Path(name_or_path).is_file():
        return f"no template file at {name_or_path}"
    return None


def stop_strings(name_or_path: str | None) -> list[str]:
    """Default stop strings for a named template (none for files or unknown names)."""
    return list(STOP_STRINGS.get(name_or_path or "", []))


def render(
    template: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    **extra: Any,
) -> str:
    """Render a template (a name from ``TEMPLATES``, a .jinja path, or Jinja source) for a dialog.

    Raises KeyError for anything else: a misspelt name (``koalpca``) rendered as Jinja would be its own
    text, the same constant prompt for every dialog."""
    source = template if is_jinja_source(template) else get_template(template)
    context: dict[str, Any] = {
        "messages": messages,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token,
        "eos_token": eos_token,
        **extra,
    }
    if tools:
        context["tools"] = tools
    return _environment().from_string(source).render(**context)


def _environment():
    """A sandboxed Jinja environment configured like transformers' chat-template renderer."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys=False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def write_template_files(directory: Path = TEMPLATE_DIR) -> list[Path]:
    """Write every template to ``<directory>/<name>.jinja`` (for ``vllm serve --chat-template``)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, source in TEMPLATES.items():
        path = directory / f"{name}.jinja"
        path.write_text(source, encoding="utf-8")
        paths.append(path)
    return paths

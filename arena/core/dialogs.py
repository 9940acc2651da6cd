"""Eval-set schema (OpenAI chat messages, one dialog per JSONL line), loading and validation.

Every problem is reported as ``file:line: field: message`` so an annotator can fix the file by hand.
Loading never writes anything; callers get either every dialog or every problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backends.base import ToolCall

Role = Literal["system", "user", "assistant", "tool"]


class FunctionCall(BaseModel):
    """The function part of an OpenAI tool call; ``arguments`` is a JSON-encoded object."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: str = "{}"

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_json(cls, value: Any) -> str:
        # Some exporters write arguments as an object; normalise to the OpenAI wire form (a string).
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        if not isinstance(value, str):
            raise ValueError(f"expected a JSON string, got {type(value).__name__}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON ({exc.msg} at char {exc.pos})") from None
        if not isinstance(parsed, dict):
            raise ValueError("arguments must encode a JSON object")
        return value

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments decoded into a dict."""
        return json.loads(self.arguments)


class WireToolCall(BaseModel):
    """A tool call as an eval-set file writes it (the OpenAI shape), validated where it is read so that an
    error names ``tool_calls[0].function.arguments`` as written; ``call()`` gives the one ``ToolCall``."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall

    def call(self, index: int = 0) -> ToolCall:
        return ToolCall(index=index, id=self.id, name=self.function.name, arguments=self.function.arguments)


class Turn(BaseModel):
    """One chat message. Assistant turns are ground truth (GT) in replay."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str | None = None
    tool_calls: list[WireToolCall] | None = None
    name: str | None = None
    tool_call_id: str | None = None

    def calls(self) -> list[ToolCall]:
        """This turn's tool calls (none for a plain message)."""
        return [c.call(i) for i, c in enumerate(self.tool_calls or [])]

    @model_validator(mode="after")
    def _shape(self) -> Turn:
        if self.role == "assistant" and not self.content and not self.tool_calls:
            raise ValueError("assistant turn needs content or tool_calls")
        if self.role != "assistant" and self.tool_calls:
            raise ValueError(f"only assistant turns may carry tool_calls, not {self.role!r}")
        if self.role in ("user", "system") and self.content is None:
            raise ValueError(f"{self.role} turn needs content")
        if self.role == "tool" and self.content is None:
            raise ValueError("tool turn needs content (the scripted tool response)")
        return self

    def to_message(self) -> dict[str, Any]:
        """The OpenAI chat message dict (no null fields)."""
        return self.model_dump(exclude_none=True)


class Dialog(BaseModel):
    """One eval item: an optional system prompt, tools, and the scripted turns."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    eval_set: str = Field(min_length=1)
    category: str | None = None
    system: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    turns: list[Turn] = Field(min_length=1)
    references: dict[str, list[str]] = Field(default_factory=dict)
    gold: list[str] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tools")
    @classmethod
    def _tool_shape(cls, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Templates and servers read tools[i].function.name; a tool without one fails at generation time.
        for i, tool in enumerate(tools):
            function = tool["function"] if "function" in tool else None
            if tool.get("type", "function") != "function":
                raise _FieldError(f"[{i}].type", f"expected 'function', not {tool.get('type')!r}")
            if not isinstance(function, dict):
                raise _FieldError(
                    f"[{i}].function",
                    'missing: each tool is {"type": "function", "function": {"name": ..., "parameters": {...}}}',
                )
            if not isinstance(function.get("name"), str) or not function["name"]:
                raise _FieldError(f"[{i}].function.name", "missing or empty: the tool's name")
        return tools

    @model_validator(mode="after")
    def _consistency(self) -> Dialog:
        first = next((i for i, t in enumerate(self.turns) if t.role != "system"), None)
        if first is None:
            raise _FieldError("turns", "no user turn: a dialog needs at least one user turn")
        if self.turns[first].role != "user":
            raise _FieldError(f"turns[{first}].role", f"a dialog starts with a user turn, not {self.turns[first].role}")
        pending = 0  # tool results still owed to the last assistant tool-call turn
        for i, turn in enumerate(self.turns):
            if turn.role == "tool":
                if pending <= 0:
                    raise _FieldError(f"turns[{i}]", "tool message without a preceding assistant tool call")
                pending -= 1
            elif turn.role == "assistant" and turn.tool_calls:
                pending = len(turn.tool_calls)
            else:
                pending = 0
        for key in self.references:
            if not key.isdigit() or int(key) >= len(self.turns) or self.turns[int(key)].role != "assistant":
                raise _FieldError(f"references.{key}", "key must be the index of an assistant turn")
        return self

    def assistant_indices(self) -> list[int]:
        """Indices of the GT turns a model answers in replay."""
        return [i for i, t in enumerate(self.turns) if t.role == "assistant"]

    def gt_answers(self, index: int) -> list[str]:
        """The GT text of assistant turn ``index`` followed by any extra reference answers."""
        turn = self.turns[index]
        first = [turn.content] if turn.content else []
        return first + self.references.get(str(index), [])


class _FieldError(ValueError):
    """A model-level error that knows which field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One validation problem, located precisely."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class EvalSetError(Exception):
    """Raised when one or more eval-set lines are invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _loc_to_field(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(line)"


def _problems_from_validation(file: str, line: int, exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        ctx_err = (err.get("ctx") or {}).get("error")
        field = _loc_to_field(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if isinstance(ctx_err, _FieldError):
            sep = "" if ctx_err.field.startswith("[") else "."  # tools[0], not tools.[0]
            field = f"{field}{sep}{ctx_err.field}" if field != "(line)" else ctx_err.field
            message = ctx_err.message
        if err["type"] == "literal_error" and field.endswith(".role"):
            message = f"unknown role {err['input']!r}; expected one of system, user, assistant, tool"
        problems.append(Problem(file, line, field, message))
    return problems


def iter_lines(path: Path) -> Iterator[tuple[int, str | Problem]]:
    """Yield (1-based line number, text) for each non-blank line of a JSONL file; a line that is not
    UTF-8 comes as a Problem, so one bad byte costs its line and is reported where it is."""
    with path.open("rb") as fh:
        for number, data in enumerate(fh, start=1):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield (
                    number,
                    Problem(
                        str(path),
                        number,
                        "(line)",
                        f"not UTF-8: byte 0x{data[exc.start]:02x} at column {exc.start + 1}; save the file as UTF-8",
                    ),
                )
                continue
            if text.strip():
                yield number, text


def parse_file(path: str | Path) -> tuple[list[tuple[int, Dialog]], list[Problem]]:
    """Parse one JSONL eval set into (line, dialog) pairs and the problems found; never raises on content."""
    path = Path(path)
    dialogs: list[tuple[int, Dialog]] = []
    problems: list[Problem] = []
    try:
        lines = list(iter_lines(path))
    except OSError as exc:
        return [], [Problem(str(path), 0, "(file)", f"cannot read: {exc}")]
    if not lines:
        return [], [
            Problem(str(path), 1, "(file)", "no dialogs: the file is empty (one JSON dialog per line expected)")
        ]
    for number, text in lines:
        if isinstance(text, Problem):
            problems.append(text)
            continue
        try:
            # Without its line end, so that an error at the end of the line reports that line's column.
            raw = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            problems.append(Problem(str(path), number, "(json)", f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        except RecursionError:
            problems.append(Problem(str(path), number, "(json)", "JSON nested too deeply"))
            continue
        if not isinstance(raw, dict):
            problems.append(Problem(str(path), number, "(line)", f"expected a JSON object, got {type(raw).__name__}"))
            continue
        try:
            dialogs.append((number, Dialog.model_validate(raw)))
        except ValidationError as exc:
            problems.extend(_problems_from_validation(str(path), number, exc))
    return dialogs, problems


def validate_paths(paths: Iterable[str | Path]) -> tuple[list[Dialog], list[Problem]]:
    """Validate several files together; dialog ids must be unique across all of them."""
    seen: dict[str, str] = {}
    dialogs: list[Dialog] = []
    problems: list[Problem] = []
    for path in paths:
        parsed, found = parse_file(path)
        problems.extend(found)
        for number, dialog in parsed:
            where = f"{path}:{number}"
            if dialog.id in seen:
                problems.append(
                    Problem(str(path), number, "id", f"duplicate id {dialog.id!r} (first at {seen[dialog.id]})")
                )
                continue
            seen[dialog.id] = where
            dialogs.append(dialog)
    return dialogs, problems


def load_dialogs(paths: Iterable[str | Path]) -> list[Dialog]:
    """Load eval sets, raising :class:`EvalSetError` listing every problem if any line is bad."""
    dialogs, problems = validate_paths(paths)
    if problems:
        raise EvalSetError(problems)
    return dialogs


def eval_set_files(directory: str | Path) -> list[Path]:
    """The eval-set files of a directory (retrieval indexes live in its retrieval/ subfolder)."""
    return sorted(Path(directory).glob("*.jsonl"))

"""One formatter for pydantic validation errors, shared by the CLI and the UI."""

from __future__ import annotations

from pydantic import ValidationError


def validation_problems(exc: ValidationError, root: str = "config") -> list[str]:
    """One ``field.path: what is wrong`` line per problem; ``root`` names a problem of the whole object."""
    return [f"{'.'.join(map(str, e['loc'])) or root}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]

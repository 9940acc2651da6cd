"""Refusals from the store and the workflows, worded in the page's language (the CLI prints their English)."""

from __future__ import annotations

from arena.core.i18n import STRINGS, t


def error_text(lang: str, exc: Exception) -> str:
    """``⚠️`` and the refusal in ``lang``: its ``code`` when the raiser gave one, else the text as raised,
    said to be the server's (an error nobody planned for is still shown, never hidden)."""
    code = getattr(exc, "code", None)
    params = dict(getattr(exc, "params", None) or {})
    if code and f"err_{code}" in STRINGS:
        if "status" in params:
            params["status"] = t(lang, f"round_status_{params['status']}")
        return "⚠️ " + t(lang, f"err_{code}", **params)
    return "⚠️ " + t(lang, "err_unexpected", detail=str(exc))

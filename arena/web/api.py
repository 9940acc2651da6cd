"""The arena's HTTP API beside the Gradio app: ``POST /api/adapters`` (researchers only)."""

# No `from __future__ import annotations` here: FastAPI reads the endpoint's annotations at run time,
# and the endpoint is defined inside mount_api.

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from arena.adapters.hotload import AdapterError, add_adapter
from arena.web.policies import is_researcher


class AddAdapterRequest(BaseModel):
    """Body of ``POST /api/adapters``."""

    path: str = Field(description="adapter directory on the arena's machine (a vLLM base's server reads the same path)")
    base: str = Field(description="arena model the adapter goes over, e.g. llama-tiny")
    name: str | None = Field(None, description="adapter name (default: the directory name)")


def mount_api(app: Any, services: Any, auth: Any = None) -> None:
    """Add ``POST /api/adapters`` (HTTP Basic, researcher accounts only) to the FastAPI ``app``.

    ``auth`` is the server's ``arena.web.security.Authenticator``: Basic auth is throttled like the login page.
    """
    from fastapi import Depends, HTTPException, Request
    from fastapi.security import HTTPBasic, HTTPBasicCredentials

    from arena.web.security import Authenticator

    basic = HTTPBasic()
    auth = auth or Authenticator(services.store)

    @app.post("/api/adapters")
    async def post_adapter(
        body: AddAdapterRequest, request: Request, credentials: HTTPBasicCredentials = Depends(basic)
    ) -> dict:
        client = request.client.host if request.client else "?"
        result = await auth.login(credentials.username, credentials.password, client)
        if result.reason in ("locked", "throttled"):
            raise HTTPException(
                429,
                f"too many failed logins: try again in {result.retry_after_s:.0f} s",
                headers={"Retry-After": str(int(result.retry_after_s) + 1)},
            )
        if not result.ok:
            raise HTTPException(401, "wrong user name or password", headers={"WWW-Authenticate": "Basic"})
        if not await asyncio.to_thread(is_researcher, services.store, credentials.username):
            raise HTTPException(403, "only researcher accounts may add models")
        try:
            added = await add_adapter(services.registry, body.base, body.path, body.name)
        except AdapterError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return {"model": added, "models": services.registry.names()}

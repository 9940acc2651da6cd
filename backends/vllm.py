"""vLLM extras over the OpenAI backend: runtime LoRA load/unload and a per-request chat template.

A vLLM server started with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True --enable-lora`` loads an adapter on
``POST /v1/load_lora_adapter {"lora_name", "lora_path"}`` (200, plain-text body) and drops it on
``POST /v1/unload_lora_adapter {"lora_name"}``; failures come back as JSON (``{"error": {"message"}}``,
older servers ``{"message"}``). A request picks an adapter with ``"model": lora_name`` and
``/v1/models`` lists it with ``parent`` = the base. Unloading does not free vLLM's adapter id, so each
trained version belongs in a new directory under a new name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from backends import templates
from backends.base import CancelToken, Error, Event, Health, Message, Options, Tool
from backends.openai import OpenAIBackend, error_message


class VLLMError(RuntimeError):
    """A vLLM management call that failed; ``message`` is the server's own text, unchanged."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message if status is None else f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class VLLMBackend(OpenAIBackend):
    """An OpenAI backend that can load LoRA adapters into its vLLM server (its own on first use, or others)."""

    supports_adapters = True

    def __init__(
        self,
        *args: Any,
        adapter: str | Path | None = None,
        template: str | None = None,
        api_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, api_key=api_key, **kwargs)
        self.adapter = str(adapter) if adapter else None
        self.template = template
        self._api_key = api_key
        if template is not None:
            # Sent per request (the same text as `--chat-template FILE`); vLLM accepts it only from a
            # server started with --trust-request-chat-template. Launched servers get --chat-template.
            self.extra_body.setdefault("chat_template", templates.get_template(template))
        self._adapter_ready = False

    def _root(self, path: str) -> str:
        return str(httpx.URL(self.base_url).copy_with(path=path))

    async def _post(self, path: str, body: dict[str, Any]) -> str:
        """POST a management call; the success text, or VLLMError with the server's message verbatim."""
        try:
            response = await self._client().post(self._root(path), json=body, timeout=self.timeouts.first_token)
        except httpx.HTTPError as exc:
            raise VLLMError(None, f"cannot reach {self._root(path)}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise VLLMError(response.status_code, error_message(response.content))
        return response.text.strip()

    async def load_adapter(self, lora_name: str, lora_path: str | Path) -> VLLMBackend:
        """Load a LoRA into this backend's server; the arena model ``<name>:<lora_name>`` that serves it.

        Raises VLLMError with vLLM's message (rank above --max-lora-rank, no adapter at the path, name
        already loaded, LoRA not enabled) as the server wrote it.
        """
        await self._post("/v1/load_lora_adapter", {"lora_name": lora_name, "lora_path": str(lora_path)})
        return self.adapter_backend(lora_name, lora_path)

    async def unload_adapter(self, lora_name: str) -> str:
        """Remove a runtime-loaded LoRA from the server; the server's success text (VLLMError otherwise)."""
        return await self._post("/v1/unload_lora_adapter", {"lora_name": lora_name})

    async def adapters(self) -> list[dict[str, Any]]:
        """The adapters the server lists on top of this backend's model (``/v1/models`` with that parent)."""
        return [m for m in await self.list_models() if m.get("parent") == self.model]

    def adapter_backend(self, lora_name: str, lora_path: str | Path | None = None) -> VLLMBackend:
        """A backend for an adapter already on the server, named ``<this name>:<lora_name>``."""
        backend = VLLMBackend(
            f"{self.name}:{lora_name}",
            self.base_url,
            lora_name,
            api_key=self._api_key,
            timeouts=self.timeouts,
            default_options=self.default_options,
            extra_body=self.extra_body,
            wire_options=self.wire_options,
        )
        # It is loaded already; keep the path for listings without re-loading it on first use.
        backend.adapter = str(lora_path) if lora_path else None
        backend._adapter_ready = True
        return backend

    def describe(self) -> str:
        return super().describe() + (f" + LoRA {self.adapter}" if self.adapter else "")

    async def ensure_adapter(self) -> str | None:
        """Load the adapter into the server unless it is listed already; an error message or None."""
        if self.adapter is None or self._adapter_ready:
            return None
        try:
            if self.model not in [m.get("id") for m in await self.list_models()]:
                try:
                    await self._post("/v1/load_lora_adapter", {"lora_name": self.model, "lora_path": self.adapter})
                except VLLMError as exc:
                    # A concurrent request may have loaded it first: then it is listed now.
                    if exc.status is None or self.model not in [m.get("id") for m in await self.list_models()]:
                        return f"loading LoRA {self.adapter} as {self.model!r} failed: {exc}"
        except httpx.HTTPError as exc:
            return f"cannot load LoRA {self.adapter} into {self.base_url}: {type(exc).__name__}: {exc}"
        self._adapter_ready = True
        return None

    async def health(self) -> Health:
        problem = await self.ensure_adapter()
        return Health(ok=False, detail=problem) if problem else await super().health()

    async def stream(
        self,
        messages: list[Message],
        *,
        tools: list[Tool] | None = None,
        options: Options | None = None,
        cancel: CancelToken | None = None,
    ) -> AsyncIterator[Event]:
        problem = await self.ensure_adapter()
        if problem:
            yield Error(code="adapter", message=problem)
            return
        async for event in super().stream(messages, tools=tools, options=options, cancel=cancel):
            yield event

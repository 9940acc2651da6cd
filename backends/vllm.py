"""vLLM extras over the OpenAI backend: runtime LoRA loading and a per-request chat template.

A vLLM server started with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True --enable-lora`` loads an adapter on
``POST /v1/load_lora_adapter {"lora_name", "lora_path"}`` (200, plain-text body); a request then picks
it with ``"model": lora_name`` and ``/v1/models`` lists it with ``parent`` = the base.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from backends import templates
from backends.base import CancelToken, Error, Event, Health, Message, Options, Tool
from backends.openai import OpenAIBackend, error_message


class VLLMBackend(OpenAIBackend):
    """An OpenAI backend that can load its LoRA adapter into the server on first use."""

    supports_adapters = True

    def __init__(self, *args, adapter: str | Path | None = None, template: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.adapter = str(adapter) if adapter else None
        if template is not None:
            # vLLM accepts a chat template per request; the same text as `--chat-template FILE`.
            self.extra_body.setdefault("chat_template", templates.get_template(template))
        self._adapter_ready = False

    async def ensure_adapter(self) -> str | None:
        """Load the adapter into the server unless it is listed already; an error message or None."""
        if self.adapter is None or self._adapter_ready:
            return None
        try:
            ids = [m.get("id") for m in await self.list_models()]
            if self.model not in ids:
                response = await self._client().post(
                    f"{httpx.URL(self.base_url).copy_with(path='/v1/load_lora_adapter')}",
                    json={"lora_name": self.model, "lora_path": self.adapter},
                    timeout=self.timeouts.first_token,
                )
                # A concurrent request may have loaded it first: then it is listed now.
                if response.status_code >= 400 and self.model not in [m.get("id") for m in await self.list_models()]:
                    return f"loading LoRA {self.adapter} as {self.model!r} failed: HTTP {response.status_code}: " + (
                        error_message(response.content)
                    )
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

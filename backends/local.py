"""transformers in-process (CPU by default, CUDA when present), with peft LoRA adapters over a shared base.

Generation runs in a worker thread: ``model.generate`` pushes tokens into a TextIteratorStreamer whose
text is handed to the event loop with ``call_soon_threadsafe``, and a StoppingCriteria polls a stop flag
every decoding step, so cancelling stops within one step. Several ``LocalBackend``s over the same weights
share one ``LocalModel``: adapters are loaded once (``load_adapter``) and switched per request
(``set_adapter``, or ``disable_adapter`` for the base) under a lock, never by reloading the base.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from backends import templates
from backends.base import (
    Backend,
    CancelToken,
    Error,
    Event,
    Finish,
    Health,
    Message,
    Options,
    Stopwatch,
    Tool,
    ToolCall,
    Usage,
)
from backends.textstream import StopMatcher, ToolSink

DEFAULT_MAX_TOKENS = 256
# transformers resolves its lazy modules on first attribute access, which is not thread-safe:
# two models loading at once in worker threads can fail with "cannot import name ...".
_IMPORT_LOCK = threading.Lock()


def resolve_device(device: str | None) -> str:
    """``None``/``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | None, device: str) -> Any:
    """``None``/``"auto"`` -> float32 on CPU, bfloat16 (or float16) on CUDA; else ``torch.<dtype>``."""
    import torch

    if dtype and dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class LocalModel:
    """One base model in memory plus the peft adapters loaded onto it; shared by backends."""

    def __init__(self, path: str | Path, *, device: str | None = None, dtype: str | None = None) -> None:
        self.path = Path(path)
        self.device_request = device
        self.dtype_request = dtype
        self.device: str | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        # Held for a whole generation: the active adapter is state of the shared model.
        self.lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._adapters: dict[str, str] = {}  # resolved adapter dir -> peft adapter name

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def ensure_loaded(self) -> None:
        """Load tokenizer and weights once (blocking; call from a worker thread)."""
        with self._load_lock:
            if self.model is not None:
                return
            with _IMPORT_LOCK:
                from transformers import AutoModelForCausalLM, AutoTokenizer

            device = resolve_device(self.device_request)
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=resolve_dtype(self.dtype_request, device))
            self.model, self.tokenizer, self.device = model.to(device).eval(), tokenizer, device

    def load_adapter(self, adapter_dir: str | Path) -> str:
        """The peft name of ``adapter_dir``, loading it onto the base the first time (lock held)."""
        key = str(Path(adapter_dir).resolve())
        if key in self._adapters:
            return self._adapters[key]
        from peft import PeftModel

        name = f"adapter_{len(self._adapters)}"
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(key, adapter_name=name)
        else:
            # Wraps the base in place; the base stays reachable through disable_adapter().
            self.model = PeftModel.from_pretrained(self.model, key, adapter_name=name)
        self.model.eval()
        self._adapters[key] = name
        return name

    @contextlib.contextmanager
    def activated(self, adapter_dir: str | Path | None) -> Iterator[Any]:
        """The model with ``adapter_dir`` active, or with every adapter off for ``None`` (lock held)."""
        from peft import PeftModel

        if adapter_dir is not None:
            name = self.load_adapter(adapter_dir)
            self.model.set_adapter(name)
            yield self.model
        elif isinstance(self.model, PeftModel):
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.model


class LocalBackend(Backend):
    """A local transformers model, optionally with one LoRA adapter over a (shared) base."""

    supports_tools = True
    supports_adapters = True

    def __init__(
        self,
        name: str,
        path: str | Path | None = None,
        *,
        base: LocalModel | None = None,
        adapter: str | Path | None = None,
        template: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        default_options: Options | None = None,
    ) -> None:
        super().__init__(name, default_options)
        if base is None:
            if path is None:
                raise ValueError("LocalBackend needs a model path or a shared LocalModel")
            base = LocalModel(path, device=device, dtype=dtype)
        self.base = base
        self.adapter = Path(adapter) if adapter else None
        self.template = template

    def describe(self) -> str:
        return f"{self.base.path}" + (f" + {self.adapter}" if self.adapter else "")

    async def load(self) -> None:
        """Load weights (and this backend's adapter) now rather than on the first request."""

        def work() -> None:
            self.base.ensure_loaded()
            if self.adapter is not None:
                with self.base.lock:
                    self.base.load_adapter(self.adapter)

        await asyncio.to_thread(work)

    async def health(self) -> Health:
        problems = []
        if not (self.base.path / "config.json").is_file():
            problems.append(f"no model at {self.base.path} (config.json missing)")
        if self.adapter is not None and not (self.adapter / "adapter_config.json").is_file():
            problems.append(f"no adapter at {self.adapter} (adapter_config.json missing)")
        if self.template is not None:
            try:
                templates.get_template(self.template)
            except KeyError as exc:
                problems.append(str(exc.args[0]))
        elif not problems and not _has_own_template(self.base.path):
            problems.append(f"{self.base.path} has no chat template; set `template:`")
        if problems:
            return Health(ok=False, detail="; ".join(problems))
        where = f"loaded on {self.base.device}" if self.base.loaded else "files ok, not loaded yet"
        return Health(ok=True, detail=where)

    def build_prompt(self, messages: list[Message], tools: list[Tool] | None = None) -> str:
        """The prompt text: the configured template, else the tokenizer's own chat template."""
        tok = self.base.tokenizer
        if self.template is not None:
            return templates.render(
                self.template, messages, tools=tools, bos_token=tok.bos_token or "", eos_token=tok.eos_token or ""
            )
        if not tok.chat_template:
            raise ValueError(f"{self.base.path} has no chat template; set `template:` for {self.name}")
        return tok.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True, tokenize=False)

    async def stream(
        self,
        messages: list[Message],
        *,
        tools: list[Tool] | None = None,
        options: Options | None = None,
        cancel: CancelToken | None = None,
    ) -> AsyncIterator[Event]:
        opts = self._options(options)
        watch = Stopwatch()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()  # set by cancel, by a stop string, or when the consumer goes away
        cancel = cancel or CancelToken()
        stops = templates.stop_strings(self.template) + list(opts.stop or [])
        matcher = StopMatcher(stops)
        sink = ToolSink(active=bool(tools))
        progress = _Progress()
        worker = threading.Thread(
            target=self._work,
            args=(loop, queue, stop, cancel, progress, messages, tools, opts, stops),
            name=f"arena-local-{self.name}",
            daemon=True,
        )
        watcher = asyncio.create_task(cancel.wait())
        watcher.add_done_callback(lambda t: t.cancelled() or queue.put_nowait(("cancel", None)))
        prompt_tokens, completion_tokens, reason = 0, None, "stop"
        try:
            worker.start()
            while True:
                kind, value = await queue.get()
                if kind == "prompt":
                    prompt_tokens = value
                elif kind == "first_token":
                    watch.first = value
                elif kind == "text":
                    visible, hit = matcher.feed(value)
                    for event in sink.feed(visible):
                        yield event
                    if hit:
                        stop.set()  # the model is answering past its turn: stop it at the next step
                        break
                elif kind == "done":
                    completion_tokens, reason = value
                    break
                elif kind == "cancel":
                    reason = "cancelled"
                    break
                elif kind == "error":
                    yield Error(
                        code="model",
                        message=f"{self.name}: {type(value).__name__}: {value}",
                        partial_text=sink.text,
                        timings=watch.timings(None),
                    )
                    return
            for event in sink.feed(matcher.flush()):
                yield event
            # A cut-short answer is shown as it stands; a finished one may turn out to be tool calls.
            tail = sink.finish(parse=reason != "cancelled")
            for event in tail:
                yield event
            calls = [e for e in tail if isinstance(e, ToolCall)]
            if calls:
                reason = "tool_calls"
            if completion_tokens is None:
                completion_tokens = progress.generated
            yield Finish(
                finish_reason=reason,
                text="" if calls else sink.text,
                tool_calls=calls,
                usage=Usage(
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens,
                ),
                timings=watch.timings(completion_tokens),
            )
        finally:
            stop.set()
            watcher.cancel()

    def _work(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue,
        stop: threading.Event,
        cancel: CancelToken,
        progress: _Progress,
        messages: list[Message],
        tools: list[Tool] | None,
        opts: Options,
        stops: list[str],
    ) -> None:
        """Worker thread: load, build the prompt, generate with a streamer; report via ``queue``."""

        def send(kind: str, value: Any = None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        try:
            self.base.ensure_loaded()
            with self.base.lock:
                if stop.is_set() or cancel.cancelled:  # cancelled while another request held the model
                    send("done", (0, "cancelled"))
                    return
                with self.base.activated(self.adapter) as model:
                    self._generate(model, send, stop, cancel, progress, messages, tools, opts, stops)
        except Exception as exc:  # noqa: BLE001 - a model failure is an event, never a crash of the UI
            send("error", exc)

    def _generate(self, model, send, stop, cancel, progress, messages, tools, opts, stops) -> None:  # noqa: PLR0913
        """Run ``model.generate`` for one request (lock held, adapter active), streaming through ``send``."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        tok = self.base.tokenizer
        prompt = self.build_prompt(messages, tools)
        inputs = tok(prompt, return_tensors="pt", add_special_tokens=False).to(self.base.device)
        prompt_len = int(inputs["input_ids"].shape[1])
        send("prompt", prompt_len)

        class Streamer(TextIteratorStreamer):
            """Hands text to the event loop (not a blocking queue) token by token; counts tokens."""

            def put(self, value: Any) -> None:
                if value.dim() > 1:
                    value = value[0]
                if self.skip_prompt and self.next_tokens_are_prompt:
                    self.next_tokens_are_prompt = False
                    return
                if progress.generated == 0:
                    send("first_token", time.perf_counter())
                progress.generated += int(value.numel())
                self.token_cache.extend(value.tolist())
                text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
                # Unlike TextStreamer, do not wait for a space (Korean answers stream per token);
                # only an incomplete UTF-8 character waits for the rest of its bytes.
                if text.endswith("\ufffd"):
                    return
                printable = text[self.print_len :]
                if text.endswith("\n"):
                    self.token_cache, self.print_len = [], 0  # keeps re-decoding cheap
                else:
                    self.print_len = len(text)
                self.on_finalized_text(printable)

            def end(self) -> None:
                # A cut-off answer (max_tokens) may end inside a character: drop the fragment.
                text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs) if self.token_cache else ""
                self.on_finalized_text(text[self.print_len :].rstrip("\ufffd"))
                self.token_cache, self.print_len, self.next_tokens_are_prompt = [], 0, True

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    send("text", text)

        class Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                flag = stop.is_set() or cancel.cancelled
                return torch.full((input_ids.shape[0],), flag, dtype=torch.bool, device=input_ids.device)

        streamer = Streamer(tok, skip_prompt=True, skip_special_tokens=True)
        max_new = opts.max_tokens or DEFAULT_MAX_TOKENS
        kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": max_new,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([Stop()]),
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        }
        eos = _eos_ids(model, tok, stops)
        if eos:
            kwargs["eos_token_id"] = eos
        if opts.temperature:
            kwargs.update(do_sample=True, temperature=opts.temperature)
            if opts.top_p is not None:
                kwargs["top_p"] = opts.top_p
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if opts.no_repeat_ngram_size:
            kwargs["no_repeat_ngram_size"] = opts.no_repeat_ngram_size
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
        with torch.inference_mode():
            output = model.generate(**kwargs)
        generated = int(output.shape[1]) - prompt_len
        last = int(output[0, -1]) if generated else None
        if stop.is_set() or cancel.cancelled:
            reason = "cancelled" if cancel.cancelled else "stop"
        elif last is not None and last in eos:
            reason = "stop"
        else:
            reason = "length" if generated >= max_new else "stop"
        send("done", (generated, reason))


class _Progress:
    """Tokens generated so far by one request's worker (read when a request is cut short)."""

    generated = 0


def _eos_ids(model: Any, tok: Any, stops: list[str]) -> list[int]:
    """End-of-sequence ids: the model's, the tokenizer's, and stop strings that are single special tokens."""
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    for value in (configured, tok.eos_token_id):
        ids.extend(value if isinstance(value, list) else [value] if value is not None else [])
    added = getattr(tok, "added_tokens_encoder", {}) or {}
    ids.extend(added[s] for s in stops if s in added)
    return list(dict.fromkeys(ids))


def _has_own_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file():
        return True
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(config.get("chat_template"))

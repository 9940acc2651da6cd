"""Build the tiny default models ("polyglot-tiny", "llama-tiny") locally from the shipped eval sets.

Nothing may come from a model hub here, so the demo and the tests train their own: one byte-level BPE
tokenizer on the eval-set text, then a small GPT-NeoX (Polyglot-like, no chat template) and a small
Llama (Llama-3.1-style chat template with tools), each trained for a bounded time on the eval-set
dialogs so replies look Korean. Builds are cached by a key over profile, corpus and code version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backends.base import ToolCall

# Bump when anything that changes the built models changes (template, rendering, training loop).
CODE_VERSION = "4"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIRS = {"demo": PROJECT_ROOT / "models", "test": PROJECT_ROOT / ".cache" / "tiny-test"}
MODEL_NAMES = ("polyglot-tiny", "llama-tiny")
MANIFEST = "tiny.json"
MAX_POSITIONS = 4096  # rotary, so this only bounds prompt length (persona prompts reach ~2k tokens)

# GPT-NeoX / Polyglot specials.
ENDOFTEXT = "<|endoftext|>"
PADDING = "<|padding|>"
# Llama 3.1 specials (the subset the chat template and tool calling use).
BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
EOM = "<|eom_id|>"
PYTHON_TAG = "<|python_tag|>"
LLAMA_PAD = "<|finetune_right_pad_id|>"
SPECIAL_TOKENS = [
    ENDOFTEXT,
    PADDING,
    BEGIN_OF_TEXT,
    END_OF_TEXT,
    START_HEADER,
    END_HEADER,
    EOT,
    EOM,
    PYTHON_TAG,
    LLAMA_PAD,
]

# KoAlpaca prompt markers (Polyglot ships no template; backends apply this format).
KOALPACA_QUESTION = "### 질문: "
KOALPACA_ANSWER = "### 답변: "

TOOLS_INSTRUCTION = (
    "You have access to the following functions. To call a function, please respond with JSON for a function call. "
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. '
    "Do not use variables.\n\n"
)
TOOLS_IN_USER_INSTRUCTION = (
    "Given the following functions, please respond with a JSON for a function call with its proper arguments "
    'that best answers the given prompt.\n\nRespond in the format {"name": function name, "parameters": '
    "dictionary of argument name and its value}. Do not use variables.\n\n"
)

# Llama-3.1-style template. Departures from Meta's, each deliberate: tools go in the system header by
# default (pass tools_in_user_message=true for Meta's placement) so a dialog need not start with a user
# turn; string arguments/tool results are emitted verbatim (Meta's re-encodes strings as JSON strings);
# several tool calls are joined with "; " (what vLLM's llama3_json parser reads); no knowledge-date
# lines; assistant text is wrapped in {% generation %} so trainers can mask to assistant tokens.
LLAMA_CHAT_TEMPLATE = (
    """{%- macro text(content) -%}
    {%- if content is none -%}
    {%- elif content is string -%}{{- content -}}
    {%- elif content is mapping -%}{{- content | tojson -}}
    {%- else -%}{%- for part in content -%}
        {%- if part is mapping and part.text is defined -%}{{- part.text -}}{%- elif part is string -%}{{- part -}}{%- endif -%}
    {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{{- bos_token }}
{%- if custom_tools is defined and custom_tools %}{%- set tools = custom_tools %}{%- endif %}
{%- if tools is not defined or not tools %}{%- set tools = none %}{%- endif %}
{%- if tools_in_user_message is not defined %}{%- set tools_in_user_message = false %}{%- endif %}
{%- if messages and messages[0].role == 'system' %}
    {%- set system_message = text(messages[0].content) | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = '' %}
{%- endif %}
{%- if tools_in_user_message and not (messages and messages[0].role == 'user') %}
    {%- set tools_in_user_message = false %}
{%- endif %}
{%- if system_message or (tools is not none and not tools_in_user_message) %}
    {{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}
    {%- if tools is not none %}{{- 'Environment: ipython\\n' }}{%- endif %}
    {%- if tools is not none and not tools_in_user_message %}
        {{- '"""
    + TOOLS_INSTRUCTION.replace("\n", "\\n")
    + """' }}
        {%- for t in tools %}{{- t | tojson(indent=4) }}{{- '\\n\\n' }}{%- endfor %}
    {%- endif %}
    {{- system_message + '<|eot_id|>' }}
{%- endif %}
{%- if tools is not none and tools_in_user_message %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' }}
    {{- '"""
    + TOOLS_IN_USER_INSTRUCTION.replace("\n", "\\n")
    + """' }}
    {%- for t in tools %}{{- t | tojson(indent=4) }}{{- '\\n\\n' }}{%- endfor %}
    {{- text(messages[0].content) | trim + '<|eot_id|>' }}
    {%- set messages = messages[1:] %}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'assistant' and message.tool_calls %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
        {%- generation %}
        {%- for call in message.tool_calls %}
            {%- set fn = call.function if call.function is defined else call %}
            {%- if not loop.first %}{{- '; ' }}{%- endif %}
            {{- '{"name": "' + fn.name + '", "parameters": ' }}
            {%- if fn.arguments is string %}{{- fn.arguments }}{%- else %}{{- fn.arguments | tojson }}{%- endif %}
            {{- '}' }}
        {%- endfor %}
        {{- '<|eot_id|>' }}
        {%- endgeneration %}
    {%- elif message.role == 'tool' or message.role == 'ipython' %}
        {{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' + text(message.content) + '<|eot_id|>' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
        {%- generation %}{{- text(message.content) | trim + '<|eot_id|>' }}{%- endgeneration %}
    {%- else %}
        {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + text(message.content) | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}
"""
)


@dataclass(frozen=True)
class Profile:
    """Sizes and training budget of one build profile; every field enters the cache key."""

    name: str
    vocab_size: int
    hidden_size: int  # head_dim is fixed at 64 (vLLM CPU needs it), so heads = hidden_size // 64
    num_layers: int
    intermediate_size: int
    seq_len: int
    batch_size: int
    min_steps: int  # quality floor: a busy machine trains longer than max_seconds rather than ship noise
    max_steps: int
    max_seconds: float  # wall-clock budget per model, honoured between min_steps and max_steps
    hard_seconds: float  # absolute limit per model, even below min_steps (bounded start-up on any machine)
    lr: float
    warmup_steps: int
    seed: int = 1234


PROFILES: dict[str, Profile] = {
    # ~1.3M params each; both models in well under 5 minutes on 2 CPU cores, then cached. The eval sets are
    # ~30k tokens, so 300 steps of 2k tokens is ~20 epochs: enough for replies in fluent-looking Korean.
    # Two idle cores do 300 steps in about a minute; on a machine busy with other jobs training runs past
    # the budget up to 150 steps, but never past hard_seconds.
    "demo": Profile(
        "demo",
        vocab_size=4096,
        hidden_size=128,
        num_layers=2,
        intermediate_size=256,
        seq_len=256,
        batch_size=8,
        min_steps=150,
        max_steps=300,
        max_seconds=60.0,
        hard_seconds=120.0,
        lr=6e-3,
        warmup_steps=20,
    ),
    # Seconds: the test suite only needs real, loadable, slightly trained models. Step-capped, so deterministic.
    "test": Profile(
        "test",
        vocab_size=2000,
        hidden_size=64,
        num_layers=2,
        intermediate_size=128,
        seq_len=64,
        batch_size=8,
        min_steps=40,
        max_steps=40,
        max_seconds=60.0,
        hard_seconds=120.0,
        lr=1e-2,
        warmup_steps=5,
    ),
}


# ---------------------------------------------------------------------------------------------- corpus


def default_corpus_files() -> list[Path]:
    """The shipped eval sets (eval_sets/*.jsonl, retrieval indexes excluded)."""
    from arena.core.dialogs import eval_set_files

    return eval_set_files(PROJECT_ROOT / "eval_sets")


def read_dialogs(files: Iterable[Path]) -> list[dict[str, Any]]:
    """Raw dialog dicts from JSONL files; lines that are not JSON objects with turns are skipped."""
    dialogs = []
    for path in files:
        with Path(path).open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    raw = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    continue
                if isinstance(raw, dict) and isinstance(raw.get("turns"), list):
                    dialogs.append(raw)
    return dialogs


def corpus_hash(files: Iterable[Path]) -> str:
    """Hash of the corpus files' names and bytes, in a stable order."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in files):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _message(turn: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI message dict without null fields, tool-call arguments as JSON strings."""
    msg = {
        k: v
        for k, v in turn.items()
        if v is not None and k in ("role", "content", "tool_calls", "name", "tool_call_id")
    }
    if msg.get("tool_calls"):
        # Without ids: the tiny models' template has no place for them.
        msg["tool_calls"] = [c.to_openai(with_id=False) for c in ToolCall.list_from_openai(msg["tool_calls"])]
    return msg


def dialog_variants(dialog: dict[str, Any]) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]]:
    """(messages, tools) for the full dialog and for each extra reference answer (truncated after it)."""
    head = [{"role": "system", "content": dialog["system"]}] if dialog.get("system") else []
    turns = [_message(t) for t in dialog["turns"] if isinstance(t, dict) and t.get("role")]
    tools = dialog.get("tools") or None
    yield head + turns, tools
    for key, answers in (dialog.get("references") or {}).items():
        if not str(key).isdigit() or int(key) >= len(turns):
            continue
        for answer in answers if isinstance(answers, list) else []:
            if isinstance(answer, str) and answer.strip():
                yield head + turns[: int(key)] + [{"role": "assistant", "content": answer}], tools


def tokenizer_texts(dialogs: list[dict[str, Any]]) -> Iterator[str]:
    """Every piece of text the models will see: contents, system prompts, tool names, arguments, schemas."""
    # The fixed template strings recur in every prompt; giving them weight makes them cheap tokens.
    for _ in range(20):
        yield TOOLS_INSTRUCTION + TOOLS_IN_USER_INSTRUCTION + "Environment: ipython\n"
        yield f"{KOALPACA_QUESTION}\n\n{KOALPACA_ANSWER}"
        yield '{"name": "", "parameters": {}}; [{"title": "", "text": ""}]'
    for dialog in dialogs:
        for messages, tools in dialog_variants(dialog):
            if tools:
                yield json.dumps(tools, ensure_ascii=False, indent=4)
            for msg in messages:
                if isinstance(msg.get("content"), str):
                    yield msg["content"]
                if msg.get("name"):
                    yield msg["name"]
                for call in msg.get("tool_calls") or []:
                    yield call["function"]["name"]
                    yield call["function"]["arguments"]


def koalpaca_samples(messages: list[dict[str, Any]]) -> list[str]:
    """One KoAlpaca text per assistant answer, ending in <|endoftext|>, exactly as the backends prompt Polyglot."""
    from backends.templates import KOALPACA, render

    # The serving template itself, so training text and replay prompts cannot drift apart.
    return [
        render(KOALPACA, messages[: i + 1], add_generation_prompt=False, eos_token=ENDOFTEXT)
        for i, msg in enumerate(messages)
        if msg.get("role") == "assistant"
    ]


# ------------------------------------------------------------------------------------------- tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts``; every string round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # Byte-level, no prefix space: decode(encode(s)) == s for any Unicode string, Korean included.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def wrap_tokenizer(raw: Any, family: str) -> Any:
    """The trained tokenizer as a transformers fast tokenizer for ``family`` ("polyglot" or "llama")."""
    from transformers import PreTrainedTokenizerFast

    common = {"tokenizer_object": raw, "clean_up_tokenization_spaces": False, "model_max_length": MAX_POSITIONS}
    if family == "polyglot":
        return PreTrainedTokenizerFast(bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, pad_token=PADDING, **common)
    return PreTrainedTokenizerFast(
        bos_token=BEGIN_OF_TEXT,
        eos_token=EOT,  # like Llama-3.1-Instruct: a chat turn ends with <|eot_id|>
        pad_token=LLAMA_PAD,
        add_bos_token=True,
        chat_template=LLAMA_CHAT_TEMPLATE,
        **common,
    )


# ----------------------------------------------------------------------------------------------- models


def _model_and_config(name: str, profile: Profile, tokenizer: Any) -> Any:
    """A freshly initialised tiny model for ``name`` sized by ``profile``."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

    heads = profile.hidden_size // 64
    ids = tokenizer.convert_tokens_to_ids
    # Rope settings stay at library defaults so older transformers (e.g. in a vLLM venv) read them the same.
    if name == "polyglot-tiny":
        config = GPTNeoXConfig(
            vocab_size=len(tokenizer),
            hidden_size=profile.hidden_size,
            num_hidden_layers=profile.num_layers,
            num_attention_heads=heads,
            intermediate_size=profile.intermediate_size,
            max_position_embeddings=MAX_POSITIONS,
            bos_token_id=ids(ENDOFTEXT),
            eos_token_id=ids(ENDOFTEXT),
            pad_token_id=ids(PADDING),
            tie_word_embeddings=False,
        )
        return GPTNeoXForCausalLM(config)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=profile.hidden_size,
        num_hidden_layers=profile.num_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=64,
        intermediate_size=profile.intermediate_size,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=ids(BEGIN_OF_TEXT),
        eos_token_id=[ids(END_OF_TEXT), ids(EOM), ids(EOT)],
        pad_token_id=ids(LLAMA_PAD),
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def training_texts(name: str, dialogs: list[dict[str, Any]], tokenizer: Any) -> list[str]:
    """The dialogs rendered as each model will be prompted: chat template (llama) or KoAlpaca (polyglot)."""
    texts: dict[str, None] = {}  # ordered set: reference variants repeat earlier prefixes
    for dialog in dialogs:
        for messages, tools in dialog_variants(dialog):
            if name == "polyglot-tiny":
                texts.update(dict.fromkeys(koalpaca_samples(messages)))
            else:
                texts[tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)] = None
    return list(texts)


def train_model(
    name: str, profile: Profile, tokenizer: Any, texts: list[str], *, progress: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Train a fresh tiny model on ``texts`` within the profile's step bounds and time budget."""
    import math

    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(profile.seed)
    model = _model_and_config(name, profile, tokenizer)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    stream = torch.tensor([t for seq in ids for t in seq], dtype=torch.long)
    window = profile.seq_len + 1
    if len(stream) < window + 1:  # a very small corpus: repeat it rather than fail
        stream = stream.repeat(window // max(1, len(stream)) + 2)
    gen = torch.Generator().manual_seed(profile.seed)

    def batch(g: Any, n: int) -> Any:
        starts = torch.randint(0, len(stream) - window, (n,), generator=g)
        return torch.stack([stream[s : s + window] for s in starts.tolist()])

    def eval_loss(x: Any) -> float:
        model.eval()
        with torch.no_grad():
            loss = model(input_ids=x, labels=x).loss.item()
        model.train()
        return loss

    held = batch(torch.Generator().manual_seed(profile.seed + 1), profile.batch_size)
    initial = eval_loss(held)
    opt = torch.optim.AdamW(model.parameters(), lr=profile.lr, betas=(0.9, 0.95), weight_decay=0.01)
    model.train()
    step, last = 0, initial
    start = time.monotonic()
    with tqdm(total=profile.max_steps, desc=f"training {name}", unit="step", disable=not progress, leave=True) as bar:
        planned = profile.max_steps
        while True:
            elapsed = time.monotonic() - start
            if step >= 5:  # re-plan from the measured rate: as many steps as the budget allows, within bounds
                rate = step / max(elapsed, 1e-6)
                planned = min(profile.max_steps, max(profile.min_steps, int(rate * profile.max_seconds)))
                planned = min(planned, max(step + 1, int(rate * profile.hard_seconds)))
                if bar.total != planned:
                    bar.total = planned
                    bar.refresh()
            if step >= planned or elapsed >= profile.hard_seconds:
                break
            done = step / planned
            warm = min(1.0, (step + 1) / profile.warmup_steps)
            lr = profile.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))
            for group in opt.param_groups:
                group["lr"] = lr
            x = batch(gen, profile.batch_size)
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            last = loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{last:.3f}")
    model.eval()
    stats = {
        "steps": step,
        "initial_loss": round(initial, 4),
        "final_loss": round(eval_loss(held), 4),
        "last_train_loss": round(last, 4),
        "train_seconds": round(time.monotonic() - start, 2),
        "corpus_tokens": len(stream),
        "params": sum(p.numel() for p in model.parameters()),
    }
    return model, stats


def _generation_config(model: Any, tokenizer: Any) -> Any:
    """Greedy by default (reproducible replays); callers pass sampling options per request."""
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=128,
    )


def _portable_tokenizer_config(model_dir: Path) -> None:
    """Name the tokenizer class both transformers 4.x and 5.x resolve (5.x writes "TokenizersBackend")."""
    path = model_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    # Without an explicit class, AutoTokenizer would pick LlamaTokenizer from config.json and rebuild the pipeline.
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------ cache


def cache_key(profile: Profile, corpus_digest: str) -> str:
    """Key over everything that determines the built models."""
    from backends.templates import KOALPACA

    templates = hashlib.sha256((LLAMA_CHAT_TEMPLATE + KOALPACA).encode()).hexdigest()
    payload = json.dumps(
        {"profile": asdict(profile), "corpus": corpus_digest, "code": CODE_VERSION, "templates": templates},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    """The tiny.json manifest of a built model dir, or None if missing or unreadable."""
    try:
        return json.loads((Path(model_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _is_current(model_dir: Path, key: str) -> bool:
    manifest = read_manifest(model_dir)
    return bool(manifest and manifest.get("key") == key and (model_dir / "model.safetensors").exists())


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache dir so concurrent starts build once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, builds are still atomic
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` with renames only, so a reader never sees a half-written model."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def ensure_tiny_models(
    cache_dir: Path | None = None,
    profile: str = "demo",
    *,
    corpus_files: Iterable[Path] | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Return {"polyglot-tiny": dir, "llama-tiny": dir}, building (atomically) only what is missing or stale."""
    prof = PROFILES[profile]
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIRS[profile]
    files = sorted(Path(p) for p in (corpus_files if corpus_files is not None else default_corpus_files()))
    if not files:
        raise FileNotFoundError(f"no corpus: no eval-set files in {PROJECT_ROOT / 'eval_sets'} (or given)")
    digest = corpus_hash(files)
    key = cache_key(prof, digest)
    dirs = {name: cache_dir / name for name in MODEL_NAMES}
    if not force and all(_is_current(d, key) for d in dirs.values()):
        return dirs
    with _locked(cache_dir):
        # Leftovers of interrupted builds; safe to remove while we hold the lock.
        for stale in [*cache_dir.glob(".*.tmp-*"), *cache_dir.glob(".*.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        todo = [n for n, d in dirs.items() if force or not _is_current(d, key)]
        if not todo:
            return dirs
        threads = training_threads()  # measured once, before our own training raises the load average
        with _torch_threads(threads):
            _build(todo, dirs, prof, key, digest, files, threads=threads, progress=progress)
    return dirs


def training_threads() -> int:
    """Intra-op threads for training: every core that other jobs leave free, at least one."""
    import torch

    n = torch.get_num_threads()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return n
    # Tiny matmuls make OpenMP workers wait on each other; on cores shared with other jobs that
    # costs 2-3x per step (measured here), so a busy machine gets one thread.
    return max(1, min(n, round((os.cpu_count() or n) - load)))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block, then restore (the caller may go on serving)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build(
    todo: list[str],
    dirs: dict[str, Path],
    prof: Profile,
    key: str,
    digest: str,
    files: list[Path],
    *,
    threads: int,
    progress: bool,
) -> None:
    """Train the tokenizer once, then each model in ``todo``, each saved to a temp dir and swapped in."""
    import tokenizers
    import torch
    import transformers

    t0 = time.monotonic()
    dialogs = read_dialogs(files)
    raw = train_tokenizer(tokenizer_texts(dialogs), prof.vocab_size)
    tokenizer_seconds = time.monotonic() - t0
    for name in todo:
        started = time.monotonic()
        family = "polyglot" if name == "polyglot-tiny" else "llama"
        tokenizer = wrap_tokenizer(raw, family)
        texts = training_texts(name, dialogs, tokenizer)
        model, stats = train_model(name, prof, tokenizer, texts, progress=progress)
        model.generation_config = _generation_config(model, tokenizer)
        tmp = dirs[name].with_name(f".{name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _portable_tokenizer_config(tmp)
        manifest = {
            "name": name,
            "architecture": type(model).__name__,
            "profile": prof.name,
            "key": key,
            "code_version": CODE_VERSION,
            "corpus_hash": digest,
            "corpus_files": [p.name for p in files],
            "dialogs": len(dialogs),
            "training_texts": len(texts),
            "vocab_size": len(tokenizer),
            **stats,
            "tokenizer_seconds": round(tokenizer_seconds, 2),
            "threads": threads,
            "seconds": round(time.monotonic() - started, 2),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
            },
        }
        # The manifest goes in last: a dir with a matching tiny.json is complete by construction.
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        _swap_in(tmp, dirs[name])

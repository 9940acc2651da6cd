"""Retrieval over an index JSONL: tokenizers (Kiwi morphemes, whitespace), the corpus, and the on-disk BM25 cache.

``open_retriever(path)`` reads ``{"id", "title", "text"}`` lines, tokenizes every title once (identical
titles once), builds ``arena.retrieval.bm25.BM25Index`` and caches it under ``.cache/bm25``; the next open with
the same corpus bytes, field, tokenizer and parameters memory-maps the cached arrays instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from arena.retrieval.bm25 import FORMAT_VERSION, BM25Index, BM25Params, Hits

# --------------------------------------------------------------------------- tokenizers


class Tokenizer(Protocol):
    """Turns text into index terms; the same object must serve documents and queries."""

    name: str

    def __call__(self, text: str) -> list[str]: ...

    def batch(self, texts: Iterable[str]) -> Iterator[list[str]]: ...

    def spec(self) -> dict[str, Any]: ...


class WhitespaceTokenizer:
    """Lower-cased whitespace words (no morphology): the simple option."""

    name = "whitespace"

    def __call__(self, text: str) -> list[str]:
        return text.lower().split()

    def batch(self, texts: Iterable[str]) -> Iterator[list[str]]:
        """Tokenize many texts lazily."""
        return (self(text) for text in texts)

    def spec(self) -> dict[str, Any]:
        """What identifies this tokenizer in an index manifest."""
        return {"name": self.name, "lower": True}


class KiwiTokenizer:
    """Kiwi content morphemes: particles and endings dropped, so "코트는" and "코트가" both index "코트"."""

    name = "kiwi"
    # Nouns, foreign words, numbers, roots and web tokens carry a title's meaning.
    NOUN_TAGS = frozenset({"NNG", "NNP", "NR", "SL", "SH", "SN", "XR", "W_URL", "W_EMAIL", "W_HASHTAG", "W_SERIAL"})
    # Verb/adjective stems keep their tag so "신/VV" (to wear) never matches the noun "신".
    STEM_TAGS = frozenset({"VV", "VA"})

    def __init__(self, num_workers: int = -1) -> None:
        self.num_workers = num_workers
        self._kiwi: Any = None

    def _get(self) -> Any:
        if self._kiwi is None:
            from kiwipiepy import Kiwi  # heavy (~1 s model load): only when first used

            # num_workers >= 1 is needed for the threaded batch API; -1 = one thread per core.
            self._kiwi = Kiwi(num_workers=self.num_workers)
        return self._kiwi

    def _terms(self, tokens: Iterable[Any]) -> list[str]:
        out: list[str] = []
        for token in tokens:
            tag = token.tag.split("-", 1)[0]  # "VV-R" (irregular) -> "VV"
            if tag in self.NOUN_TAGS:
                # Kiwi's multi-word proper nouns ("아크네 스튜디오") split so "아크네" alone still matches.
                out.extend(token.form.lower().split())
            elif tag in self.STEM_TAGS:
                out.append(f"{token.form.lower()}/{tag}")
        return out

    def __call__(self, text: str) -> list[str]:
        return self._terms(self._get().tokenize(text)) if text.strip() else []

    def batch(self, texts: Iterable[str]) -> Iterator[list[str]]:
        """Tokenize many texts with Kiwi's threaded iterable API, in input order."""
        for tokens in self._get().tokenize(iter(texts)):
            yield self._terms(tokens)

    def spec(self) -> dict[str, Any]:
        """What identifies this tokenizer in an index manifest (a Kiwi upgrade invalidates the cache)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            model = version("kiwipiepy_model")
        except PackageNotFoundError:
            model = None
        return {
            "name": self.name,
            "kiwipiepy": version("kiwipiepy"),
            "kiwipiepy_model": model,
            "nouns": sorted(self.NOUN_TAGS),
            "stems": sorted(self.STEM_TAGS),
        }


TOKENIZERS = ("kiwi", "whitespace")


def make_tokenizer(name: str) -> Tokenizer:
    """A tokenizer by name: ``kiwi`` (default everywhere) or ``whitespace``."""
    if name == "kiwi":
        return KiwiTokenizer()
    if name == "whitespace":
        return WhitespaceTokenizer()
    raise ValueError(f"unknown tokenizer {name!r}; expected one of {', '.join(TOKENIZERS)}")


def tokenize_unique(tokenizer: Tokenizer, texts: Iterable[str]) -> list[list[str]]:
    """Token lists for ``texts`` in order; equal texts are tokenized once and share one list."""
    texts = list(texts)
    unique = list(dict.fromkeys(texts))
    tokens = dict(zip(unique, tokenizer.batch(unique)))
    return [tokens[text] for text in texts]


# --------------------------------------------------------------------------- corpus + cache

FIELDS = ("title", "title_text")


@dataclass
class Corpus:
    """Document ids and titles of an index JSONL (``{"id", "title", "text"}`` per line)."""

    path: Path
    ids: list[str]
    titles: list[str]
    sha256: str

    def texts(self, field: str) -> Iterator[str]:
        """The indexed text of every document, in order: the title, or title + text."""
        if field == "title":
            yield from self.titles
            return
        for _, raw in _iter_docs(self.path):
            yield f"{raw['title']} {raw.get('text') or ''}"


def _iter_docs(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based line, parsed JSON) per non-blank line; ValueError naming ``file:line`` for a bad line
    (json's own message counts lines of the one line it was given, so it always said line 1)."""
    with path.open("rb") as fh:
        for number, data in enumerate(fh, start=1):
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{path}:{number}: not UTF-8: byte 0x{data[exc.start]:02x} at column {exc.start + 1}; "
                    "save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON: {exc.msg} at column {exc.colno}") from None
            except RecursionError:
                raise ValueError(f"{path}:{number}: JSON nested too deeply") from None


def file_sha256(path: str | Path) -> str:
    """Content hash of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_corpus(path: str | Path) -> Corpus:
    """Read an index JSONL; raises ValueError naming file:line on a bad or duplicate document."""
    path = Path(path)
    ids: list[str] = []
    titles: list[str] = []
    seen: set[str] = set()
    for number, raw in _iter_docs(path):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("title"), str):
            raise ValueError(f"{path}:{number}: a document needs string fields 'id' and 'title'")
        if raw["id"] in seen:
            raise ValueError(f"{path}:{number}: duplicate document id {raw['id']!r}")
        seen.add(raw["id"])
        ids.append(raw["id"])
        titles.append(raw["title"])
    if not ids:
        raise ValueError(f"{path}: no documents")
    return Corpus(path, ids, titles, file_sha256(path))


@dataclass
class Retriever:
    """A corpus, its BM25 index and the tokenizer that built it; ``built`` says if this open rebuilt it."""

    corpus: Corpus
    index: BM25Index
    tokenizer: Tokenizer
    field: str = "title"
    built: bool = False
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)

    def search_many(self, queries: Sequence[str | None], k: int = 10) -> list[Hits]:
        """Top-k documents for raw query strings (None or empty -> no hits)."""
        texts = [q or "" for q in queries]
        tokens = list(self.tokenizer.batch(texts))
        return self.index.search_many(tokens, k)

    def search(self, query: str, k: int = 10) -> list[tuple[str, str, float]]:
        """(doc id, title, score) of the top-k documents for one query string."""
        hits = self.search_many([query], k)[0]
        return [(self.corpus.ids[i], self.corpus.titles[i], float(s)) for i, s in zip(hits.indices, hits.scores)]


def _manifest(corpus: Corpus, tokenizer: Tokenizer, field: str, params: BM25Params) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "corpus": str(corpus.path),
        "corpus_sha256": corpus.sha256,
        "field": field,
        "tokenizer": tokenizer.spec(),
        "params": asdict(params),
    }


def _cache_key_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get(k) for k in ("format", "corpus_sha256", "field", "tokenizer", "params")}


def open_retriever(
    index_path: str | Path,
    tokenizer: Tokenizer | str = "kiwi",
    *,
    field: str = "title",
    cache_dir: str | Path | None = ".cache/bm25",
    params: BM25Params = BM25Params(),
    rebuild: bool = False,
) -> Retriever:
    """Load the cached BM25 index of ``index_path`` or build (and cache) it if corpus/tokenizer changed."""
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; expected one of {', '.join(FIELDS)}")
    tok = make_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    corpus = load_corpus(index_path)
    wanted = _manifest(corpus, tok, field, params)
    target = None if cache_dir is None else Path(cache_dir) / f"{Path(index_path).name}.{field}.{tok.name}"
    if target is not None and not rebuild:
        manifest_file = target / "manifest.json"
        if manifest_file.exists():
            try:
                found = json.loads(manifest_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                found = {}
            if _cache_key_fields(found) == _cache_key_fields(wanted):
                index = BM25Index.load(target, found["stats"])
                return Retriever(corpus, index, tok, field, built=False, manifest=found)
    index = BM25Index.build(tokenize_unique(tok, corpus.texts(field)), params)
    if index.n_docs != len(corpus.ids):
        raise ValueError("tokenizer returned a different number of documents than the corpus holds")
    manifest = {**wanted, "stats": index.stats}
    if target is not None:
        _write_cache(target, index, manifest)
    return Retriever(corpus, index, tok, field, built=True, manifest=manifest)


def _write_cache(target: Path, index: BM25Index, manifest: dict[str, Any]) -> None:
    # Build beside the target and swap in; the manifest is written last, so a half-written dir never loads.
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    index.save(tmp)
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process swapped its own build in first; both are equivalent
        shutil.rmtree(tmp, ignore_errors=True)

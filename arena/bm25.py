"""BM25 title retrieval: tokenizers, a sparse-matrix BM25Okapi engine, and an on-disk index cache.

Scores follow rank_bm25's ``BM25Okapi`` exactly (k1, b, epsilon and its idf with the negative-idf
floor ``epsilon * mean(idf)``), but every per-document weight is computed once at build time and
stored in a term-major CSR matrix, so scoring a query is a sparse row-sum over its terms' postings
instead of rank_bm25's Python loop over every document. Ties break by document order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse

FORMAT_VERSION = 1
# Postings gathered per sparse product in search_many: bounds the memory of one batch of results.
MAX_BATCH_POSTINGS = 4_000_000


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


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class BM25Params:
    """rank_bm25's BM25Okapi parameters."""

    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25


class Hits(NamedTuple):
    """Top documents of one query: indices into the corpus and their scores, best first."""

    indices: np.ndarray
    scores: np.ndarray


def top_k(indices: np.ndarray, scores: np.ndarray, k: int) -> Hits:
    """The k best positive-scoring entries ordered by (score desc, index asc): deterministic ties."""
    keep = scores > 0
    indices, scores = indices[keep], scores[keep]
    if k <= 0:
        return Hits(indices[:0].astype(np.int64), scores[:0])
    if len(scores) > k:
        threshold = scores[np.argpartition(-scores, k - 1)[:k]].min()
        above = np.flatnonzero(scores > threshold)
        tied = np.flatnonzero(scores == threshold)
        tied = tied[np.argsort(indices[tied], kind="stable")][: k - len(above)]
        chosen = np.concatenate([above, tied])
        indices, scores = indices[chosen], scores[chosen]
    order = np.lexsort((indices, -scores))
    return Hits(indices[order].astype(np.int64), scores[order])


class BM25Index:
    """BM25Okapi weights as a (terms x documents) CSR matrix; a query's scores are a sparse row-sum."""

    def __init__(self, matrix: "scipy.sparse.csr_matrix", vocab: dict[str, int], stats: dict[str, Any]) -> None:
        self.matrix = matrix
        self.vocab = vocab
        self.stats = stats

    @property
    def n_docs(self) -> int:
        return int(self.matrix.shape[1])

    @classmethod
    def build(cls, corpus: Iterable[Sequence[str]], params: BM25Params = BM25Params()) -> "BM25Index":
        """Index tokenized documents (one token list per document, in corpus order)."""
        import scipy.sparse as sp

        vocab: dict[str, int] = {}
        # Typed arrays: at 1.5M titles a list of Python ints would cost ~10x the memory.
        term_ids = array("q")
        doc_len = array("q")
        for tokens in corpus:
            doc_len.append(len(tokens))
            term_ids.extend(vocab.setdefault(t, len(vocab)) for t in tokens)
        n_docs = len(doc_len)
        if n_docs == 0 or not term_ids:
            raise ValueError("cannot index an empty corpus (no documents or no tokens)")
        lengths = np.frombuffer(doc_len, dtype=np.int64)
        rows = np.frombuffer(term_ids, dtype=np.int64)
        cols = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        # COO -> CSR sums duplicate (term, doc) pairs: data becomes the term frequency.
        tf = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(vocab), n_docs)).tocsr()
        tf.sum_duplicates()
        tf.sort_indices()
        df = np.diff(tf.indptr).astype(np.float64)
        # rank_bm25: idf = log(N - df + 0.5) - log(df + 0.5); negatives floored to epsilon * mean(idf).
        idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
        average_idf = float(idf.mean())
        eps = params.epsilon * average_idf
        idf[idf < 0] = eps
        avgdl = float(lengths.sum()) / n_docs
        term_of_entry = np.repeat(np.arange(len(vocab)), np.diff(tf.indptr))
        freq = tf.data
        dl = lengths[tf.indices].astype(np.float64)
        # Same operation order as rank_bm25's get_scores, so scores agree to the last few ulps.
        weights = idf[term_of_entry] * (freq * (params.k1 + 1) / (freq + params.k1 * (1 - params.b + params.b * dl / avgdl)))
        index_dtype = np.int32 if max(tf.nnz, n_docs) < 2**31 - 1 else np.int64
        matrix = sp.csr_matrix(
            (weights, tf.indices.astype(index_dtype), tf.indptr.astype(index_dtype)), shape=tf.shape
        )
        stats = {
            "n_docs": n_docs,
            "vocab_size": len(vocab),
            "nnz": int(matrix.nnz),
            "avgdl": avgdl,
            "average_idf": average_idf,
            "idf_floor": eps,
            "params": asdict(params),
        }
        return cls(matrix, vocab, stats)

    def query_matrix(self, queries: Sequence[Sequence[str]]) -> "scipy.sparse.csr_matrix":
        """Queries as a (queries x terms) matrix of term counts; unknown terms are dropped."""
        import scipy.sparse as sp

        rows: list[int] = []
        cols: list[int] = []
        for i, tokens in enumerate(queries):
            for token in tokens:
                term = self.vocab.get(token)
                if term is not None:
                    rows.append(i)
                    cols.append(term)
        # A repeated query term counts twice, as in rank_bm25's loop over query tokens.
        q = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(queries), len(self.vocab))).tocsr()
        q.sum_duplicates()
        return q

    def get_scores(self, query: Sequence[str]) -> np.ndarray:
        """Every document's score for one query (dense, like rank_bm25's ``get_scores``)."""
        return np.asarray((self.query_matrix([query]) @ self.matrix).todense()).ravel()

    def search(self, query: Sequence[str], k: int = 10) -> Hits:
        """The top k documents for one tokenized query."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[Sequence[str]], k: int = 10) -> list[Hits]:
        """The top k documents for each tokenized query, batched as sparse products."""
        q = self.query_matrix(queries)
        postings = np.diff(self.matrix.indptr)
        # Work per query ~ the postings of its terms; cut batches so one product stays small.
        cost = np.asarray(q @ postings.astype(np.float64)).ravel() if q.nnz else np.zeros(len(queries))
        results: list[Hits] = []
        start = 0
        while start < len(queries):
            stop, budget = start + 1, cost[start]
            while stop < len(queries) and budget + cost[stop] <= MAX_BATCH_POSTINGS:
                budget += cost[stop]
                stop += 1
            scores = q[start:stop] @ self.matrix
            for row in range(stop - start):
                a, b = scores.indptr[row], scores.indptr[row + 1]
                results.append(top_k(scores.indices[a:b], scores.data[a:b], k))
            start = stop
        return results

    def nbytes(self) -> int:
        """Bytes held by the weight matrix (the vocabulary dict not counted)."""
        m = self.matrix
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)

    def save(self, directory: str | Path) -> None:
        """Write the matrix as .npy files plus the vocabulary (term order = row order)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "data.npy", self.matrix.data)
        np.save(directory / "indices.npy", self.matrix.indices)
        np.save(directory / "indptr.npy", self.matrix.indptr)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        (directory / "vocab.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, stats: dict[str, Any], mmap: bool = True) -> "BM25Index":
        """Read a saved index; with ``mmap`` the arrays stay on disk until touched."""
        import scipy.sparse as sp

        directory = Path(directory)
        mode = "r" if mmap else None
        data = np.load(directory / "data.npy", mmap_mode=mode)
        indices = np.load(directory / "indices.npy", mmap_mode=mode)
        indptr = np.load(directory / "indptr.npy", mmap_mode=mode)
        terms = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        matrix = sp.csr_matrix((data, indices, indptr), shape=(len(terms), stats["n_docs"]), copy=False)
        return cls(matrix, {t: i for i, t in enumerate(terms)}, stats)


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


def _iter_docs(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, json.loads(line)


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
    index = BM25Index.build(tok.batch(corpus.texts(field)), params)
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

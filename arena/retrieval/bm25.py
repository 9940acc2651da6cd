"""BM25Okapi over tokenized titles: precomputed weights in a term-major CSR matrix, exact top-k search.

Scores follow rank_bm25's ``BM25Okapi`` exactly (k1, b, epsilon and its idf with the negative-idf floor
``epsilon * mean(idf)``); every (term, document) weight is computed once at build time. Ties break by
document order (lower index first). Tokenizers and the on-disk cache live in ``arena.retrieval.retriever``.

Search, exact, per query (numpy only; bm25s's numba kernel scores every document and then scans all of
them for the top k, which costs O(documents) a query): let ``z`` be the query term with the longest
posting list. Every document that holds another query term is enumerated and scored in full (a
scatter-add into a scratch vector, then ``z``'s weight added by lookup). Every other document holds
``z`` alone, so its score is ``z``'s weight and the best of them are the first entries of ``z``'s
postings in (weight desc, doc asc) order — kept at build time for frequent terms (``HEAD`` entries).
So a frequent term costs nothing beyond its head, and the work per query is the postings of its rarer
terms, not every document.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse

FORMAT_VERSION = 2
# Best postings kept per frequent term, in (weight desc, doc asc) order; serves k <= HEAD - overlap.
HEAD = 64
# Postings gathered per sparse product in the fallback search (non-positive weights).
MAX_BATCH_POSTINGS = 4_000_000
# Look a term's weights up by binary search when the candidates are this many times fewer than its postings.
LOOKUP_RATIO = 16


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


@dataclass
class Heads:
    """The best ``HEAD`` postings of each term longer than that: ``row[term]`` (-1 = none) into docs/weights."""

    row: np.ndarray
    docs: np.ndarray
    weights: np.ndarray

    @classmethod
    def build(cls, matrix: scipy.sparse.csr_matrix, size: int = HEAD) -> Heads:
        """Per long row: the ``size`` largest weights, ties to the lower document index."""
        lengths = np.diff(matrix.indptr)
        long_rows = np.flatnonzero(lengths > size)
        row = np.full(len(lengths), -1, dtype=np.int32)
        row[long_rows] = np.arange(len(long_rows), dtype=np.int32)
        docs = np.zeros((len(long_rows), size), dtype=matrix.indices.dtype)
        weights = np.zeros((len(long_rows), size), dtype=matrix.data.dtype)
        for r, term in enumerate(long_rows):
            a, b = matrix.indptr[term], matrix.indptr[term + 1]
            best = top_k(np.asarray(matrix.indices[a:b]), np.asarray(matrix.data[a:b]), size)
            docs[r, : len(best.indices)] = best.indices
            weights[r, : len(best.scores)] = best.scores
        return cls(row, docs, weights)


class BM25Index:
    """BM25Okapi weights as a (terms x documents) CSR matrix with per-term heads for exact fast top-k."""

    def __init__(
        self, matrix: scipy.sparse.csr_matrix, vocab: dict[str, int], stats: dict[str, Any], heads: Heads | None = None
    ) -> None:
        self.matrix = matrix
        self.vocab = vocab
        self.stats = stats
        self.heads = heads if heads is not None else Heads.build(matrix)
        # The enumeration marks "seen" by a non-zero partial score, which needs positive weights.
        self._positive = bool(len(matrix.data) == 0 or float(np.min(matrix.data)) > 0)
        lengths = np.diff(matrix.indptr)
        self.max_weight = np.zeros(len(lengths))
        filled = lengths > 0
        if filled.any():
            self.max_weight[filled] = np.maximum.reduceat(matrix.data, matrix.indptr[:-1][filled])

    @property
    def n_docs(self) -> int:
        return int(self.matrix.shape[1])

    @classmethod
    def build(cls, corpus: Iterable[Sequence[str]], params: BM25Params = BM25Params()) -> BM25Index:
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
        del rows, cols
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
        weights = idf[term_of_entry] * (
            freq * (params.k1 + 1) / (freq + params.k1 * (1 - params.b + params.b * dl / avgdl))
        )
        index_dtype = np.int32 if max(tf.nnz, n_docs) < 2**31 - 1 else np.int64
        matrix = sp.csr_matrix((weights, tf.indices.astype(index_dtype), tf.indptr.astype(index_dtype)), shape=tf.shape)
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

    # ----------------------------------------------------------------------------------- scoring

    def term_counts(self, query: Sequence[str]) -> dict[int, int]:
        """Known query terms -> how often each occurs (a repeated term counts twice, as in rank_bm25)."""
        counts: dict[int, int] = {}
        for token in query:
            term = self.vocab.get(token)
            if term is not None:
                counts[term] = counts.get(term, 0) + 1
        return counts

    def query_matrix(self, queries: Sequence[Sequence[str]]) -> scipy.sparse.csr_matrix:
        """Queries as a (queries x terms) matrix of term counts; unknown terms are dropped."""
        import scipy.sparse as sp

        rows: list[int] = []
        cols: list[int] = []
        values: list[int] = []
        for i, tokens in enumerate(queries):
            for term, count in self.term_counts(tokens).items():
                rows.append(i)
                cols.append(term)
                values.append(count)
        return sp.csr_matrix((np.array(values, dtype=np.float64), (rows, cols)), shape=(len(queries), len(self.vocab)))

    def get_scores(self, query: Sequence[str]) -> np.ndarray:
        """Every document's score for one query (dense, like rank_bm25's ``get_scores``)."""
        return np.asarray((self.query_matrix([query]) @ self.matrix).todense()).ravel()

    def search(self, query: Sequence[str], k: int = 10) -> Hits:
        """The top k documents for one tokenized query."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[Sequence[str]], k: int = 10) -> list[Hits]:
        """The top k documents for each tokenized query."""
        if not self._positive:
            return self._search_sparse(queries, k)
        scratch = np.zeros(self.n_docs)  # per call, not per index: searches may run in several threads
        return [self._search_one(self.term_counts(q), k, scratch) for q in queries]

    def _postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.matrix.indptr[term], self.matrix.indptr[term + 1]
        return self.matrix.indices[a:b], self.matrix.data[a:b]

    def _search_one(self, counts: dict[int, int], k: int, acc: np.ndarray) -> Hits:
        """Exact top k of one query (see the module docstring); leaves ``acc`` all zeros again."""
        if not counts or k <= 0:
            return Hits(np.zeros(0, dtype=np.int64), np.zeros(0))
        indptr, heads = self.matrix.indptr, self.heads
        bound = {t: float(self.max_weight[t]) * c for t, c in counts.items()}  # most a term adds to any score
        tail = max(counts, key=lambda t: (indptr[t + 1] - indptr[t], t))
        head_row = int(heads.row[tail]) if k <= HEAD else -1
        front = sorted((t for t in counts if t != tail or head_row < 0), key=lambda t: (-bound[t], t))
        # A lower bound on the k-th best score: k documents weigh at least this in one term alone.
        theta = max(
            (
                float(heads.weights[heads.row[t], k - 1]) * c
                for t, c in counts.items()
                if k <= HEAD and heads.row[t] >= 0
            ),
            default=-np.inf,
        )
        unseen_max = sum(bound[t] for t in front) + (bound[tail] if head_row >= 0 else 0.0)
        seen = np.zeros(0, dtype=np.int64)
        done = 0
        for term in front:
            if unseen_max < theta:
                break  # MaxScore: no document outside ``seen`` can reach the k-th best score any more
            idx, w = self._postings(term)
            w = w * counts[term] if counts[term] != 1 else w
            unseen_max -= bound[term]
            # A document first met here scores at most w + unseen_max: below theta it can never make the top k
            # (nor displace a document that does, whatever partial score it may pick up later), so skip it.
            entry = theta - unseen_max
            if done == 0:
                if entry > 0:
                    keep = w >= entry
                    idx, w = idx[keep], w[keep]
                acc[idx] = w
                seen = np.asarray(idx)
            else:
                before = acc[idx]
                fresh = before == 0
                if entry > 0:
                    keep = ~fresh | (w >= entry)
                    idx, w, before, fresh = idx[keep], w[keep], before[keep], fresh[keep]
                acc[idx] = before + w
                seen = np.concatenate([seen, idx[fresh]])
            done += 1
            if len(seen) >= k:
                partial = acc[seen]
                theta = max(theta, float(np.partition(partial, len(partial) - k)[len(partial) - k]))
        touched = seen
        later = front[done:] + ([tail] if head_row >= 0 else [])
        if later and len(seen):
            # Partial scores are lower bounds; drop documents that cannot reach theta even with every later term.
            seen = seen[acc[seen] + sum(bound[t] for t in later) >= theta]
            for term in later:
                self._add_to(seen, term, counts[term], acc)
        alone_docs, alone_w = np.zeros(0, dtype=np.int64), np.zeros(0)
        if head_row >= 0 and done == len(front) and bound[tail] >= theta:
            head_docs, head_w = heads.docs[head_row], heads.weights[head_row]
            alone = acc[head_docs] == 0  # documents whose only query term is the tail
            alone_docs, alone_w = head_docs[alone][:k], head_w[alone][:k] * counts[tail]
            if len(alone_docs) < k:
                acc[touched] = 0
                return self._search_one_full(counts, k, acc)  # the head ran out: enumerate the tail too
        scores = acc[seen]
        acc[touched] = 0
        return top_k(np.concatenate([seen, alone_docs]), np.concatenate([scores, alone_w]), k)

    def _add_to(self, docs: np.ndarray, term: int, count: int, acc: np.ndarray) -> None:
        """Add ``term``'s weight to the given (distinct, already positive) documents' partial scores."""
        idx, w = self._postings(term)
        if len(docs) * LOOKUP_RATIO < len(idx):
            pos = np.searchsorted(idx, docs)
            np.minimum(pos, len(idx) - 1, out=pos)
            hit = idx[pos] == docs
            acc[docs[hit]] += w[pos[hit]] * count
        else:
            mine = np.zeros(len(acc), dtype=bool) if len(docs) else None
            if mine is not None:
                mine[docs] = True
                hit = mine[idx]
                acc[idx[hit]] += w[hit] * count

    def _search_one_full(self, counts: dict[int, int], k: int, acc: np.ndarray) -> Hits:
        seen = np.zeros(0, dtype=np.int64)
        for term, count in counts.items():
            idx, w = self._postings(term)
            before = acc[idx]
            seen = np.concatenate([seen, idx[before == 0]])
            acc[idx] = before + (w * count if count != 1 else w)
        scores = acc[seen]
        acc[seen] = 0
        return top_k(seen, scores, k)

    def _search_sparse(self, queries: Sequence[Sequence[str]], k: int) -> list[Hits]:
        """Batched sparse products: correct for any weights, slower (used when some weight is <= 0)."""
        q = self.query_matrix(queries)
        postings = np.diff(self.matrix.indptr)
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

    # ----------------------------------------------------------------------------------- storage

    def nbytes(self) -> int:
        """Bytes held by the weight matrix and the heads (the vocabulary dict not counted)."""
        m, h = self.matrix, self.heads
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + h.row.nbytes + h.docs.nbytes + h.weights.nbytes)

    def save(self, directory: str | Path) -> None:
        """Write the matrix and heads as .npy files plus the vocabulary (term order = row order)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {
            "data": self.matrix.data,
            "indices": self.matrix.indices,
            "indptr": self.matrix.indptr,
            "head_row": self.heads.row,
            "head_docs": self.heads.docs,
            "head_weights": self.heads.weights,
        }
        for name, values in arrays.items():
            np.save(directory / f"{name}.npy", values)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        (directory / "vocab.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, stats: dict[str, Any], mmap: bool = True) -> BM25Index:
        """Read a saved index; with ``mmap`` the arrays stay on disk until touched."""
        import scipy.sparse as sp

        directory = Path(directory)
        mode = "r" if mmap else None
        arrays = {
            name: np.load(directory / f"{name}.npy", mmap_mode=mode)
            for name in ("data", "indices", "indptr", "head_row", "head_docs", "head_weights")
        }
        terms = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        matrix = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(len(terms), stats["n_docs"]), copy=False
        )
        heads = Heads(arrays["head_row"], arrays["head_docs"], arrays["head_weights"])
        return cls(matrix, {t: i for i, t in enumerate(terms)}, stats, heads)

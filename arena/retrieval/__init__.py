"""Retrieval recall: BM25 over morphemes, the retriever and its index cache, recall@k scoring, one runner, tables, plots."""

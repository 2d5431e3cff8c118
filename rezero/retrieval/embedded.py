"""The embedded default backend: BM25 over a persistent tantivy index in a local folder; for the dense and
hybrid modes, the chunk embeddings in a NumPy file beside it, searched by brute-force cosine."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import tantivy

from rezero.core.config import IndexParams
from rezero.core.errors import PipelineError
from rezero.retrieval.base import Document, Hit, check_snippet_chars, clip, fit_window, query_terms
from rezero.retrieval.dense import Embedder, cosine_top_k, fuse_many, has_words

log = logging.getLogger(__name__)

EMBEDDINGS = "embeddings.npy"  # row i embeds the document whose `row` field is i


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("doc_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("chunk_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("text", stored=True, tokenizer_name="default")
    builder.add_boolean_field("original", stored=True, indexed=True)
    # Insertion order, so a row of the embeddings file maps back to its document.
    builder.add_integer_field("row", stored=True)
    return builder.build()


def build_tantivy_index(documents: Iterable[Document], folder: Path, embedder: Embedder | None = None) -> int:
    """Write all documents into a new tantivy index in `folder` (which must be empty); returns the count.

    With an `embedder` (dense and hybrid modes), their embeddings go to `folder/embeddings.npy` too.
    """
    documents = list(documents)
    # Convert first: a document tantivy refuses then fails the build before a writer exists (a live writer's
    # threads write segment files into the folder even after the failed build has removed it).
    entries = [
        tantivy.Document(
            doc_id=doc.doc_id, chunk_id=doc.chunk_id, text=doc.text, original=doc.original, row=row
        )
        for row, doc in enumerate(documents)
    ]
    index = tantivy.Index(_schema(), path=str(folder))
    writer = index.writer(heap_size=50_000_000, num_threads=1)
    for entry in entries:
        writer.add_document(entry)
    writer.commit()
    writer.wait_merging_threads()
    if embedder is not None:
        np.save(folder / EMBEDDINGS, embedder.encode([doc.text for doc in documents]))
    return len(documents)


class TantivyRetriever:
    """Search over an index folder written by `build_tantivy_index`, in the mode `params.mode` names."""

    def __init__(self, folder: str | Path, params: IndexParams | None = None) -> None:
        folder = Path(folder)
        if not tantivy.Index.exists(str(folder)):
            raise PipelineError(f"{folder}: no search index there. Run `dvc repro index` to build it.")
        self._params = params or IndexParams()
        self._index = tantivy.Index.open(str(folder))
        self._searcher = self._index.searcher()
        if self._params.mode != "bm25":
            self._vectors, self._rows, documents = self._load_dense(folder)
            # The stored documents by id (unique: chunk ids and noise-NNNNN), so the window of a dense or
            # fused hit comes from its own stored document.
            self._documents = {doc["doc_id"][0]: doc for doc in documents}
            self._embedder = Embedder(self._params.embedding_model, self._params.embedding_batch_size)

    @property
    def size(self) -> int:
        return self._searcher.num_docs

    def search(self, query: str, k: int, snippet_chars: int | None = None) -> list[Hit]:
        return self.search_many([query], k, snippet_chars)[0]

    def search_many(
        self, queries: Sequence[str], k: int, snippet_chars: int | None = None
    ) -> list[list[Hit]]:
        check_snippet_chars(snippet_chars)
        mode = self._params.mode
        if k <= 0:
            return [[] for _ in queries]
        if mode == "bm25":
            return [self._bm25(query, k, snippet_chars) for query in queries]
        depth = k if mode == "dense" else max(k, self._params.hybrid_depth)
        results = self._dense_many(queries, depth)
        if mode == "hybrid":
            results = fuse_many([self._bm25(q, depth) for q in queries], results, k, self._params.rrf_k)
        if snippet_chars is None:
            return results
        # Windows for the final hits only (a fused list keeps k of 2 * depth candidates).
        return [
            self._with_windows(query, hits, snippet_chars)
            for query, hits in zip(queries, results, strict=True)
        ]

    def _parse(self, query: str) -> tantivy.Query | None:
        terms = query_terms(query)
        # Lower-case words only, so the parser sees plain terms OR-ed together and can never fail.
        return self._index.parse_query(" ".join(terms), ["text"]) if terms else None

    def _bm25(self, query: str, k: int, snippet_chars: int | None = None) -> list[Hit]:
        parsed = self._parse(query)
        if parsed is None:
            return []
        docs = [
            (self._searcher.doc(address), float(score))
            for score, address in self._searcher.search(parsed, limit=k).hits
        ]
        windows = self._windows(query, [doc for doc, _ in docs], snippet_chars)
        return [_hit(doc, score, window) for (doc, score), window in zip(docs, windows, strict=True)]

    def _with_windows(self, query: str, hits: Sequence[Hit], snippet_chars: int) -> list[Hit]:
        documents = [self._documents[hit.doc_id] for hit in hits]
        windows = self._windows(query, documents, snippet_chars)
        return [replace(hit, snippet=window) for hit, window in zip(hits, windows, strict=True)]

    def _windows(
        self, query: str, documents: Sequence[tantivy.Document], snippet_chars: int | None
    ) -> list[str | None]:
        """Per document, tantivy's best-scoring fragment for the query's words (the same parsed query BM25
        ranks with), or the text's first characters when no query word is in it, as Elasticsearch's
        `no_match_size` does. None everywhere when no window was asked for."""
        if snippet_chars is None:
            return [None] * len(documents)
        parsed, generator = self._parse(query), None
        if parsed is not None:
            generator = tantivy.SnippetGenerator.create(self._searcher, parsed, self._index.schema, "text")
            # tantivy counts this limit in UTF-8 bytes, so a non-ASCII fragment comes out shorter.
            generator.set_max_num_chars(snippet_chars)
        terms = set(query_terms(query))
        windows: list[str | None] = []
        for doc in documents:
            fragment = generator.snippet_from_doc(doc).fragment().strip() if generator else ""
            # fit_window: tantivy returns a single word longer than the limit whole.
            windows.append(
                fit_window(fragment, snippet_chars, terms)
                if fragment
                else clip(doc["text"][0], snippet_chars)
            )
        return windows

    def _dense_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        wanted = [i for i, query in enumerate(queries) if has_words(query)]
        results: list[list[Hit]] = [[] for _ in queries]
        vectors = self._embedder.encode([queries[i] for i in wanted])  # one batched call for all queries
        for i, hits in zip(wanted, cosine_top_k(self._vectors, vectors, k), strict=True):
            results[i] = [replace(self._rows[row], score=score) for row, score in hits]
        return results

    def _load_dense(self, folder: Path) -> tuple[np.ndarray, list[Hit], list[tantivy.Document]]:
        path = folder / EMBEDDINGS
        if not path.is_file():
            raise PipelineError(
                f"{path} is missing: the index was built for BM25 only. Rebuild it with index.mode "
                f"{self._params.mode!r} (`dvc repro index`)."
            )
        vectors = np.load(path)
        count = self._searcher.num_docs
        found = self._searcher.search(tantivy.Query.all_query(), limit=max(count, 1)).hits
        docs = sorted((self._searcher.doc(address) for _, address in found), key=lambda doc: doc["row"][0])
        rows = [_hit(doc, 0.0) for doc in docs]
        if len(rows) != len(vectors):
            raise PipelineError(
                f"{path}: {len(vectors)} embeddings for {len(rows)} documents. Rebuild: `dvc repro index`."
            )
        return vectors, rows, docs


def _hit(doc: tantivy.Document, score: float, snippet: str | None = None) -> Hit:
    return Hit(
        chunk_id=doc["chunk_id"][0],
        text=doc["text"][0],
        score=score,
        original=bool(doc["original"][0]),
        doc_id=doc["doc_id"][0],
        snippet=snippet,
    )

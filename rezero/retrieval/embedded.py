"""The embedded default backend: BM25 over a persistent tantivy index in a local folder; for the dense and
hybrid modes, the chunk embeddings in a NumPy file beside it, searched by brute-force cosine."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import tantivy

from rezero.config import IndexParams
from rezero.errors import PipelineError
from rezero.retrieval.base import Document, Hit
from rezero.retrieval.dense import Embedder, cosine_top_k, fuse_many, has_words

log = logging.getLogger(__name__)

# tantivy's "default" tokenizer (split on non-alphanumerics, lower case) matches Elasticsearch's standard
# analyzer closely enough for both backends to rank alike.
WORD = re.compile(r"\w+", re.UNICODE)
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


def query_terms(query: str) -> list[str]:
    """The query's words in lower case: no query syntax survives (quotes, AND/OR, colons, parentheses)."""
    return [word.lower() for word in WORD.findall(query or "")]


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
            self._vectors, self._rows = self._load_dense(folder)
            self._embedder = Embedder(self._params.embedding_model, self._params.embedding_batch_size)

    @property
    def size(self) -> int:
        return self._searcher.num_docs

    def search(self, query: str, k: int) -> list[Hit]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        mode = self._params.mode
        if k <= 0:
            return [[] for _ in queries]
        if mode == "bm25":
            return [self._bm25(query, k) for query in queries]
        depth = k if mode == "dense" else max(k, self._params.hybrid_depth)
        dense = self._dense_many(queries, depth)
        if mode == "dense":
            return dense
        return fuse_many([self._bm25(q, depth) for q in queries], dense, k, self._params.rrf_k)

    def _bm25(self, query: str, k: int) -> list[Hit]:
        terms = query_terms(query)
        if not terms:
            return []
        # Lower-case words only, so the parser sees plain terms OR-ed together and can never fail.
        parsed = self._index.parse_query(" ".join(terms), ["text"])
        return [
            _hit(self._searcher.doc(address), float(score))
            for score, address in self._searcher.search(parsed, limit=k).hits
        ]

    def _dense_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        wanted = [i for i, query in enumerate(queries) if has_words(query)]
        results: list[list[Hit]] = [[] for _ in queries]
        vectors = self._embedder.encode([queries[i] for i in wanted])  # one batched call for all queries
        for i, hits in zip(wanted, cosine_top_k(self._vectors, vectors, k), strict=True):
            results[i] = [replace(self._rows[row], score=score) for row, score in hits]
        return results

    def _load_dense(self, folder: Path) -> tuple[np.ndarray, list[Hit]]:
        path = folder / EMBEDDINGS
        if not path.is_file():
            raise PipelineError(
                f"{path} is missing: the index was built for BM25 only. Rebuild it with index.mode "
                f"{self._params.mode!r} (`dvc repro index`)."
            )
        vectors = np.load(path)
        count = self._searcher.num_docs
        found = self._searcher.search(tantivy.Query.all_query(), limit=max(count, 1)).hits
        docs = [self._searcher.doc(address) for _, address in found]
        rows = [_hit(doc, 0.0) for doc in sorted(docs, key=lambda doc: doc["row"][0])]
        if len(rows) != len(vectors):
            raise PipelineError(
                f"{path}: {len(vectors)} embeddings for {len(rows)} documents. Rebuild: `dvc repro index`."
            )
        return vectors, rows


def _hit(doc: tantivy.Document, score: float) -> Hit:
    return Hit(
        chunk_id=doc["chunk_id"][0],
        text=doc["text"][0],
        score=score,
        original=bool(doc["original"][0]),
        doc_id=doc["doc_id"][0],
    )

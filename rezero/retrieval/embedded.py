"""The embedded default backend: BM25 over a persistent tantivy index in a local folder."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import tantivy

from rezero.errors import PipelineError
from rezero.retrieval.base import Document, Hit

log = logging.getLogger(__name__)

# tantivy's "default" tokenizer (split on non-alphanumerics, lower case) matches Elasticsearch's standard
# analyzer closely enough for both backends to rank alike.
WORD = re.compile(r"\w+", re.UNICODE)


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("doc_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("chunk_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("text", stored=True, tokenizer_name="default")
    builder.add_boolean_field("original", stored=True, indexed=True)
    return builder.build()


def build_tantivy_index(documents: Iterable[Document], folder: Path) -> int:
    """Write all documents into a new tantivy index in `folder` (which must be empty); returns the count."""
    index = tantivy.Index(_schema(), path=str(folder))
    writer = index.writer(heap_size=50_000_000, num_threads=1)
    count = 0
    for doc in documents:
        writer.add_document(
            tantivy.Document(doc_id=doc.doc_id, chunk_id=doc.chunk_id, text=doc.text, original=doc.original)
        )
        count += 1
    writer.commit()
    writer.wait_merging_threads()
    return count


def query_terms(query: str) -> list[str]:
    """The query's words in lower case: no query syntax survives (quotes, AND/OR, colons, parentheses)."""
    return [word.lower() for word in WORD.findall(query or "")]


class TantivyRetriever:
    """BM25 search over an index folder written by `build_tantivy_index`."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        if not tantivy.Index.exists(str(folder)):
            raise PipelineError(f"{folder}: no search index there. Run `dvc repro index` to build it.")
        self._index = tantivy.Index.open(str(folder))
        self._searcher = self._index.searcher()

    @property
    def size(self) -> int:
        return self._searcher.num_docs

    def search(self, query: str, k: int) -> list[Hit]:
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        # Lower-case words only, so the parser sees plain terms OR-ed together and can never fail.
        parsed = self._index.parse_query(" ".join(terms), ["text"])
        hits = []
        for score, address in self._searcher.search(parsed, limit=k).hits:
            doc = self._searcher.doc(address)
            hits.append(
                Hit(
                    chunk_id=doc["chunk_id"][0],
                    text=doc["text"][0],
                    score=float(score),
                    original=bool(doc["original"][0]),
                    doc_id=doc["doc_id"][0],
                )
            )
        return hits

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return [self.search(query, k) for query in queries]

"""Retrieval: one `Retriever` interface, an embedded BM25 backend by default, Elasticsearch by configuration;
BM25, dense or hybrid ranking in either (`index.mode`).

`build_index` writes the index the `index` stage declares; `open_retriever` opens whichever backend and
mode the manifest names, so training, evaluation and `ask` never need to know which one it is.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rezero.core.config import IndexParams
from rezero.core.errors import PipelineError
from rezero.core.io import atomic_directory, read_json, write_json
from rezero.data.chunking import collapse_whitespace
from rezero.retrieval.base import Document, Hit, Retriever
from rezero.retrieval.dense import Embedder

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"

__all__ = [
    "Document",
    "Hit",
    "Retriever",
    "build_index",
    "chunk_documents",
    "load_distractors",
    "open_retriever",
]


def chunk_documents(chunks: Sequence[dict]) -> list[Document]:
    return [Document(doc_id=c["chunk_id"], chunk_id=c["chunk_id"], text=c["text"]) for c in chunks]


def load_distractors(path: str | Path, chunks: Sequence[dict], sha256: str | None = None) -> list[Document]:
    """Paraphrased distractors (the paper's noise) from a CSV with `paraphrased_text` and, optionally,
    `original_paragraph`, matched to this project's chunks by paragraph text (not by the paper's chunk
    number, which need not agree). Unmatched rows keep an id of their own; all are non-original."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: distractors file not found. Fix `index.distractors` or set it to null.")
    data = path.read_bytes()
    if sha256 and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise PipelineError(f"{path}: sha256 mismatch with `index.distractors_sha256`.")
    rows = list(csv.DictReader(data.decode("utf-8").splitlines()))
    if not rows or "paraphrased_text" not in rows[0]:
        raise PipelineError(f"{path}: expected a CSV with a `paraphrased_text` column.")
    paragraph_to_chunk = {
        collapse_whitespace(block): c["chunk_id"] for c in chunks for block in c["text"].split("\n\n")
    }
    documents, matched = [], 0
    for number, row in enumerate(rows):
        text = (row["paraphrased_text"] or "").strip()
        if not text:
            continue
        chunk_id = paragraph_to_chunk.get(collapse_whitespace(row.get("original_paragraph") or ""))
        matched += chunk_id is not None
        documents.append(
            Document(
                doc_id=f"noise-{number:05d}",
                chunk_id=chunk_id or f"noise-{number:05d}",
                text=text,
                original=False,
            )
        )
    log.info("loaded %d distractors from %s (%d matched to a chunk)", len(documents), path, matched)
    return documents


def build_index(params: IndexParams, documents: Sequence[Document], folder: str | Path) -> dict:
    """Index `documents` with the configured backend and mode; `folder` gets the manifest (and, for the
    embedded backend, the index itself). Returns the summary the `index` stage writes as its metrics.

    The folder is replaced atomically and Elasticsearch rebuilds swap an alias: a failed build leaves the
    previous index serving.
    """
    originals = sum(d.original for d in documents)
    summary: dict[str, Any] = {
        "backend": params.backend,
        "mode": params.mode,
        "documents": len(documents),
        "originals": originals,
        "distractors": len(documents) - originals,
    }
    embedder = (
        Embedder(params.embedding_model, params.embedding_batch_size) if params.mode != "bm25" else None
    )
    started = time.perf_counter()
    with atomic_directory(folder) as tmp:
        if params.backend == "embedded":
            from rezero.retrieval.embedded import build_tantivy_index

            build_tantivy_index(documents, tmp, embedder)
        else:
            from rezero.retrieval.es_build import build_es_index

            summary.update(build_es_index(params, documents, embedder))
        # The search settings travel with the index, so `open_retriever(folder)` needs nothing else; the
        # Elasticsearch connection is not among them (it comes from the environment, see es_connection).
        write_json(tmp / MANIFEST, {**summary, "settings": _search_settings(params)})
    seconds = time.perf_counter() - started
    log.info("indexed %d documents (%s, %s) in %.2f s", len(documents), params.backend, params.mode, seconds)
    return summary


def _search_settings(params: IndexParams) -> dict[str, Any]:
    skip = {"backend", "distractors", "distractors_sha256"}
    return {k: v for k, v in dataclasses.asdict(params).items() if k not in skip}


def open_retriever(folder: str | Path) -> Retriever:
    """Open the index the `index` stage wrote in `folder`, whatever its backend and mode."""
    path = Path(folder) / MANIFEST
    manifest = read_json(path)
    backend = manifest.get("backend")
    if backend not in ("embedded", "elasticsearch"):
        raise PipelineError(f"{path}: unknown backend {backend!r}; rebuild the index (`dvc repro index`).")
    # Manifests written before modes existed hold no settings: they are embedded BM25 indexes.
    settings = manifest.get("settings") or {}
    known = {f.name for f in dataclasses.fields(IndexParams)}
    try:
        params = IndexParams(backend=backend, **{k: v for k, v in settings.items() if k in known})
    except (TypeError, ValueError) as err:
        raise PipelineError(f"{path}: bad settings ({err}); rebuild the index (`dvc repro index`).") from err
    if backend == "embedded":
        from rezero.retrieval.embedded import TantivyRetriever

        return TantivyRetriever(folder, params)
    from rezero.retrieval.elasticsearch import ElasticsearchRetriever

    return ElasticsearchRetriever(params, expected_index=manifest.get("es_concrete_index"))

"""Retrieval: one `Retriever` interface, an embedded BM25 backend by default, Elasticsearch by configuration.

`build_index` writes the index the `index` stage declares; `open_retriever` opens whichever backend the
manifest names, so training, evaluation and `ask` never need to know which one it is.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from rezero.chunking import collapse_whitespace
from rezero.config import IndexParams
from rezero.errors import PipelineError
from rezero.io import atomic_directory, read_json, write_json
from rezero.retrieval.base import Document, Hit, Retriever

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
    """Index `documents` with the configured backend; `folder` gets the manifest (and the embedded index).

    The folder is replaced atomically: a failed build leaves the previous index serving.
    """
    originals = sum(d.original for d in documents)
    manifest = {
        "backend": params.backend,
        "documents": len(documents),
        "originals": originals,
        "distractors": len(documents) - originals,
    }
    with atomic_directory(folder) as tmp:
        if params.backend == "embedded":
            from rezero.retrieval.embedded import build_tantivy_index

            build_tantivy_index(documents, tmp)
        else:
            raise PipelineError(
                "index.backend 'elasticsearch' is not available yet in this version; use 'embedded'."
            )
        write_json(tmp / MANIFEST, manifest)
    return manifest


def open_retriever(folder: str | Path) -> Retriever:
    """Open the index the `index` stage wrote in `folder`, whatever its backend."""
    manifest = read_json(Path(folder) / MANIFEST)
    if manifest.get("backend") == "embedded":
        from rezero.retrieval.embedded import TantivyRetriever

        return TantivyRetriever(folder)
    raise PipelineError(
        f"{folder}/{MANIFEST}: unknown backend {manifest.get('backend')!r}; rebuild the index."
    )

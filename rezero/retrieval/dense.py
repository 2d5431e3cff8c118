"""Shared by both backends: sentence embeddings (dense retrieval), cosine ranking and reciprocal rank fusion.

Dense and hybrid modes are this project's additions; the paper searches with BM25 only.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rezero.core.errors import PipelineError
from rezero.external.models import PACKAGE_SCHEME, package_path
from rezero.retrieval.base import Hit

log = logging.getLogger(__name__)


def has_words(query: str) -> bool:
    """Whether a query has anything to search for: text without letters or digits returns no hits in every
    mode (BM25 finds no term in it; an embedding of punctuation would rank the corpus arbitrarily)."""
    return any(ch.isalnum() for ch in query or "")


def resolve_model(spec: str) -> str:
    """A folder or model name sentence-transformers can load: `pkg://package/folder` becomes a path."""
    if not spec.startswith(PACKAGE_SCHEME):
        return spec
    path = package_path(spec, "embedding model")
    if not (path / "config.json").is_file():
        raise PipelineError(f"embedding model {spec}: no model folder (config.json) at {path}.")
    return str(path)


@functools.lru_cache(maxsize=2)
def _load_model(spec: str) -> Any:
    # Cached: loading takes ~20 s on 2 cores, and training, evaluation and tests open retrievers repeatedly.
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    try:
        model = SentenceTransformer(resolve_model(spec))
    except OSError as err:
        raise PipelineError(
            f"embedding model {spec}: cannot load it ({err}). Offline, index.embedding_model must be a local "
            "folder, a pkg:// path or a model already in the Hugging Face cache."
        ) from err
    log.info("loaded embedding model %s in %.1f s", spec, time.perf_counter() - started)
    return model


class Embedder:
    """Unit-length sentence embeddings, computed in batches (index time and query time alike)."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        self.model_name = model
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return int(_load_model(self.model_name).get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dim) float32 array of L2-normalised vectors, so a dot product is the cosine."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = _load_model(self.model_name).encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def cosine_top_k(matrix: np.ndarray, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """For each query vector, the (row, cosine) of the k nearest rows of `matrix` (both unit-length).

    Brute force: a few thousand chunks take well under a millisecond a query, so no ANN index is needed.
    Ties keep the lower row first (a stable sort), which keeps results reproducible.

    >>> m = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    >>> [[(row, round(score, 2)) for row, score in hits] for hits in cosine_top_k(m, m[:1], 2)]
    [[(0, 1.0), (2, 0.6)]]
    """
    if k <= 0 or len(matrix) == 0 or len(queries) == 0:
        return [[] for _ in range(len(queries))]
    scores = queries @ matrix.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[(int(row), float(scores[q, row])) for row in rows] for q, rows in enumerate(order)]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int, rrf_k: int = 60) -> list[Hit]:
    """Fuse rankings of the same corpus: each hit scores sum(1 / (rrf_k + rank)) over the rankings it is in
    (Cormack, Clarke and Büttcher 2009). The k best come back with that score; equal scores keep the order
    in which the hits were first seen, so the first ranking wins ties. Hits are matched by `doc_id`
    (`chunk_id` when empty): distractors share their chunk's id but are different documents.

    >>> a, b, c = (Hit(chunk_id=x, text=x, score=0.0, original=True, doc_id=x) for x in "abc")
    >>> [(h.doc_id, round(h.score, 4)) for h in reciprocal_rank_fusion([[a, b], [b, c]], k=3, rrf_k=60)]
    [('b', 0.0325), ('a', 0.0164), ('c', 0.0161)]
    """
    scores: dict[str, float] = {}
    first_seen: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = hit.doc_id or hit.chunk_id
            scores[key] = scores.get(key, 0.0) + 1.0 / (rrf_k + rank)
            first_seen.setdefault(key, hit)
    order = sorted(scores, key=lambda key: -scores[key])  # sorted() is stable: ties keep first-seen order
    return [replace(first_seen[key], score=scores[key]) for key in order[: max(k, 0)]]


def fuse_many(
    bm25: Sequence[Sequence[Hit]], dense: Sequence[Sequence[Hit]], k: int, rrf_k: int
) -> list[list[Hit]]:
    """Hybrid results for a batch: per query, the BM25 and dense rankings fused (BM25 first on ties)."""
    return [
        reciprocal_rank_fusion([lexical, semantic], k, rrf_k)
        for lexical, semantic in zip(bm25, dense, strict=True)
    ]

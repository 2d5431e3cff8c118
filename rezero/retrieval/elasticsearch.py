"""The Elasticsearch backend's searches: msearch batches of BM25, kNN or hybrid (client-side reciprocal
rank fusion) queries on the alias `es_build` swaps, with highlighted result windows. Connection settings
come from the environment (see `es_connection`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from rezero.core.config import IndexParams
from rezero.core.errors import PipelineError
from rezero.retrieval.base import Hit, check_snippet_chars, fit_window, query_terms
from rezero.retrieval.dense import Embedder, fuse_many, has_words
from rezero.retrieval.es_connection import (
    TRANSIENT_STATUS,
    ConnectionSettings,
    connect,
    explained,
    retry_wait_s,
    settings_from_env,
)

log = logging.getLogger(__name__)

SOURCE_FIELDS = ["doc_id", "chunk_id", "text", "original"]  # the vectors stay on the server


class ElasticsearchRetriever:
    """Search the alias `params.es_index` (BM25, kNN or hybrid, as `params.mode` says)."""

    def __init__(
        self,
        params: IndexParams,
        settings: ConnectionSettings | None = None,
        expected_index: str | None = None,
    ) -> None:
        """`expected_index`: the concrete index the manifest recorded; a warning says when the alias has
        since moved (another checkout or run rebuilt the same alias)."""
        self._params = params
        self._settings = settings or settings_from_env()
        self._client = connect(self._settings, params)
        self._alias = params.es_index
        # Cheap to create: the model loads on the first dense query only.
        self._embedder = Embedder(params.embedding_model, params.embedding_batch_size)
        with explained(self._settings, f"opening index {self._alias}"):
            self._check_alias(expected_index)

    def _check_alias(self, expected_index: str | None) -> None:
        if not self._client.indices.exists(index=self._alias):
            raise PipelineError(
                f"Elasticsearch at {self._settings.host} has no index or alias {self._alias!r}. Build it "
                "with `dvc repro index` (index.backend: elasticsearch; `dvc repro -f index` to rebuild)."
            )
        current = list(self._client.indices.get_alias(name=self._alias)) if expected_index else []
        if expected_index and expected_index not in current:
            log.warning(
                "alias %s now points at %s, not at %s recorded in the manifest: it was rebuilt elsewhere",
                self._alias,
                ", ".join(current) or "nothing",
                expected_index,
            )

    @property
    def size(self) -> int:
        with explained(self._settings, f"counting documents in {self._alias}"):
            return int(self._client.count(index=self._alias)["count"])

    def search(self, query: str, k: int, snippet_chars: int | None = None) -> list[Hit]:
        return self.search_many([query], k, snippet_chars)[0]

    def search_many(
        self, queries: Sequence[str], k: int, snippet_chars: int | None = None
    ) -> list[list[Hit]]:
        """All queries in one msearch request (two searches per query in hybrid mode); with
        `snippet_chars`, each search asks the server's highlighter for the hits' windows."""
        check_snippet_chars(snippet_chars)
        if k <= 0 or not queries:
            return [[] for _ in queries]
        mode = self._params.mode
        depth = k if mode != "hybrid" else max(k, self._params.hybrid_depth)
        bodies: list[dict | None] = []
        if mode in ("bm25", "hybrid"):
            bodies += [self._match_body(query, depth, snippet_chars) for query in queries]
        if mode in ("dense", "hybrid"):
            bodies += self._knn_bodies(queries, depth, snippet_chars)
        # Each body's query, to trim its hits' windows to the end that holds the query's words.
        results = self._msearch(bodies, [*queries] * (len(bodies) // len(queries)), snippet_chars)
        if mode != "hybrid":
            return results
        return fuse_many(results[: len(queries)], results[len(queries) :], k, self._params.rrf_k)

    @staticmethod
    def _match_body(query: str, size: int, snippet_chars: int | None) -> dict:
        # `match` analyses the text as plain words: no query syntax exists in it, so no input can fail.
        body = {"query": {"match": {"text": {"query": query or ""}}}, "size": size, "_source": SOURCE_FIELDS}
        if snippet_chars is not None:
            body["highlight"] = highlight(snippet_chars)
        return body

    def _knn_bodies(self, queries: Sequence[str], size: int, snippet_chars: int | None) -> list[dict | None]:
        wanted = [query for query in queries if has_words(query)]
        vectors = iter(self._embedder.encode(wanted))  # one batched call for all queries
        candidates = max(size, self._params.knn_candidates)
        return [
            {
                "knn": {
                    "field": "embedding",
                    "query_vector": next(vectors).tolist(),
                    "k": size,
                    "num_candidates": candidates,
                },
                "size": size,
                "_source": SOURCE_FIELDS,
                # kNN matches no words, so the window is picked by a match query of the same text.
                **({"highlight": highlight(snippet_chars, query)} if snippet_chars is not None else {}),
            }
            if has_words(query)
            else None  # nothing to embed: no hits, as in BM25 mode
            for query in queries
        ]

    def _msearch(
        self, bodies: Sequence[dict | None], queries: Sequence[str], snippet_chars: int | None
    ) -> list[list[Hit]]:
        searches = [part for body in bodies if body is not None for part in ({}, body)]
        answers = iter(self._responses(searches) if searches else [])
        return [
            self._hits(next(answers), query, snippet_chars) if body is not None else []
            for body, query in zip(bodies, queries, strict=True)
        ]

    def _responses(self, searches: list[dict]) -> list[dict]:
        """The msearch answers, retried like the client's own requests while some search answers 503 (or
        another TRANSIENT_STATUS) inside an HTTP 200: a restarted node does so until its shards have
        recovered (measured: 1.8 s after its port opened, tests/services/test_elasticsearch_faults.py)."""
        retries, retry = self._params.es_max_retries, 0
        while True:
            with explained(self._settings, f"searching {self._alias}"):
                responses = self._client.msearch(index=self._alias, searches=searches)["responses"]
            busy = [r for r in responses if "error" in r and r.get("status") in TRANSIENT_STATUS]
            if not busy or retry == retries:
                return responses  # `_hits` turns a remaining error into a PipelineError
            retry += 1
            log.warning(
                "Elasticsearch could not run %d of %d searches yet (HTTP %s, %s); retry %d of %d",
                len(busy),
                len(responses),
                busy[0]["status"],
                busy[0]["error"].get("type"),
                retry,
                retries,
            )
            time.sleep(retry_wait_s(self._params, retry))

    def _hits(self, response: dict, query: str, snippet_chars: int | None) -> list[Hit]:
        # One failed search fails the batch: a missing result would look like "no hits".
        if "error" in response:
            error = response["error"]
            raise PipelineError(
                f"Elasticsearch at {self._settings.host} (ES_URL) failed a search on {self._alias}"
                f"{', even after retries' if response.get('status') in TRANSIENT_STATUS else ''}: "
                f"HTTP {response.get('status')} {error.get('type')}: {error.get('reason')}"
            )
        return [
            Hit(
                chunk_id=hit["_source"]["chunk_id"],
                text=hit["_source"]["text"],
                score=float(hit["_score"]),
                original=bool(hit["_source"]["original"]),
                doc_id=hit["_source"]["doc_id"],
                snippet=window(hit, query, snippet_chars),
            )
            for hit in response["hits"]["hits"]
        ]


def highlight(snippet_chars: int, query: str | None = None) -> dict[str, Any]:
    """The `highlight` section of a search body: the one best window of the `text` field as plain text.

    The unified highlighter, not the plain one: it scores sentence-bounded passages with BM25, shows the
    gold answer more often and overshoots `fragment_size` by a word at most (docs/operations.md,
    "Elasticsearch backend"). `query` sets a `highlight_query` for searches that match no words themselves
    (kNN).
    """
    text: dict[str, Any] = {
        "type": "unified",
        "fragment_size": snippet_chars,
        "number_of_fragments": 1,
        "order": "score",  # the best passage, not the first one
        "no_match_size": snippet_chars,  # a hit without a query word still shows the start of its text
        "pre_tags": [""],  # plain text: the agent sees the words, not markup
        "post_tags": [""],
    }
    if query is not None:
        text["highlight_query"] = {"match": {"text": {"query": query}}}
    return {"fields": {"text": text}}


def window(hit: dict, query: str, snippet_chars: int | None) -> str | None:
    """A hit's window: the server's fragment, trimmed to `snippet_chars`. The unified highlighter ends a
    long sentence at the next word boundary past `fragment_size` (and `no_match_size`), so up to a word over
    it; the trim keeps the end that holds more of the query's words."""
    if snippet_chars is None:
        return None
    fragments = hit.get("highlight", {}).get("text") or [hit["_source"]["text"]]  # an empty text has none
    return fit_window(fragments[0], snippet_chars, set(query_terms(query)))

"""Building an Elasticsearch index: an explicit mapping, bulk indexing and an atomic alias swap.

A build writes a new concrete index `<alias>-<UTC time>-<id>` and only then moves the alias onto it, in one
atomic `update_aliases` call: searches keep hitting the previous index until the new one is complete. A
build that fails deletes its half-built index; one that is killed (kill -9, power loss) cannot, so every
successful build then removes such orphans of its alias (`remove_orphans`). Connection settings come from
the environment (see `es_connection`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from elasticsearch import Elasticsearch, helpers

from rezero.core.config import IndexParams
from rezero.core.errors import PipelineError
from rezero.retrieval.base import Document
from rezero.retrieval.dense import Embedder
from rezero.retrieval.es_connection import ConnectionSettings, connect, explained, settings_from_env

log = logging.getLogger(__name__)

MAX_LISTED_FAILURES = 20  # a PipelineError lists this many rejected documents, then counts the rest


def index_name(alias: str) -> str:
    """A new concrete index of `alias`: `<alias>-<UTC yyyymmdd-hhmmss>-<6 hex digits>`."""
    return f"{alias}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def index_pattern(alias: str) -> re.Pattern[str]:
    """The names `index_name(alias)` makes, and no others: `rezero-chunks-v2-…` is not `rezero-chunks`'s."""
    return re.compile(rf"{re.escape(alias)}-\d{{8}}-\d{{6}}-[0-9a-f]{{6}}")


def index_body(dims: int | None, alias: str) -> dict[str, Any]:
    """Settings and mapping of a new index; `dims` adds the dense_vector field (dense and hybrid modes)."""
    properties: dict[str, Any] = {
        "doc_id": {"type": "keyword"},
        "chunk_id": {"type": "keyword"},
        # The standard analyzer (Unicode word boundaries, lower case, no stemming or stop words) ranks close
        # to the embedded index's tokenizer, so both backends agree on the top chunk (tests/services).
        "text": {"type": "text", "analyzer": "standard"},
        "original": {"type": "boolean"},
    }
    if dims:
        properties["embedding"] = {
            "type": "dense_vector",
            "dims": dims,
            "index": True,
            "similarity": "cosine",
        }
    # Who is building it: a later build removes it as an orphan only once that process is gone.
    builder = {"alias": alias, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    return {
        # One shard keeps BM25's term statistics global like the embedded index's; one node has no replicas.
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        # strict: a document with an unexpected field is rejected (and reported), never silently mapped.
        "mappings": {"dynamic": "strict", "_meta": {"rezero_builder": builder}, "properties": properties},
    }


def build_es_index(
    params: IndexParams, documents: Sequence[Document], embedder: Embedder | None = None
) -> dict[str, Any]:
    """Index `documents` into a new index and point the alias `params.es_index` at it; returns its names."""
    settings = settings_from_env()
    client = connect(settings, params)
    alias = params.es_index
    name = index_name(alias)
    # Embed before touching the server: a model failure then leaves nothing behind.
    vectors = embedder.encode([doc.text for doc in documents]) if embedder else None
    started = time.perf_counter()
    with explained(settings, f"building index {name}"):
        _check_alias_name(client, settings, alias)
        dims = vectors.shape[1] if vectors is not None else None
        client.indices.create(index=name, **index_body(dims, alias))
        try:
            _bulk_index(client, name, alias, documents, vectors, params)
            client.indices.refresh(index=name)
            previous = _swap_alias(client, alias, name)
        except BaseException:
            _delete_quietly(client, name)
            raise
        for old in previous:
            client.indices.delete(index=old)
        orphans = remove_orphans(client, alias)
    log.info(
        "indexed %d documents into Elasticsearch index %s (alias %s) at %s in %.2f s; removed %s",
        len(documents),
        name,
        alias,
        settings.host,
        time.perf_counter() - started,
        [*previous, *orphans] or "nothing",
    )
    return {"es_alias": alias, "es_concrete_index": name}


def remove_orphans(client: Elasticsearch, alias: str) -> list[str]:
    """Delete the indices killed builds of `alias` left: named by `index_name(alias)`, behind no alias at
    all, and built by a process of this host that is gone. Any other unaliased index of the pattern (built
    on another host, or by an older version without the builder mark) is named in a warning, not touched:
    its build may still be running."""
    found = client.indices.get(index=f"{alias}-*", allow_no_indices=True, expand_wildcards="open,closed")
    pattern, removed = index_pattern(alias), []
    for name, info in sorted(found.items()):
        if not pattern.fullmatch(name) or info.get("aliases"):
            continue
        builder = (info.get("mappings", {}).get("_meta") or {}).get("rezero_builder") or {}
        if builder.get("alias") == alias and builder.get("host") == socket.gethostname():
            if not _process_alive(builder.get("pid")):
                client.indices.delete(index=name, ignore_unavailable=True)
                removed.append(name)
            continue  # its build is still running here
        log.warning(
            "index %s matches alias %s but serves nothing and was not built by a process of this host (%s); "
            "delete it by hand once no build of that alias runs elsewhere",
            name,
            alias,
            builder.get("host", "builder unknown"),
        )
    if removed:
        log.warning("removed %d index(es) left by killed builds of %s: %s", len(removed), alias, removed)
    return removed


def _process_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True  # this process builds one index at a time: an earlier one of ours is not an orphan
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _check_alias_name(client: Elasticsearch, settings: ConnectionSettings, alias: str) -> None:
    if client.indices.exists(index=alias) and not client.indices.exists_alias(name=alias):
        raise PipelineError(
            f"Elasticsearch at {settings.host} has a concrete index named {alias!r}, so it cannot be used as "
            "the alias. Delete that index or choose another index.es_index."
        )


def _actions(name: str, documents: Sequence[Document], vectors: np.ndarray | None) -> Iterator[dict]:
    for row, doc in enumerate(documents):
        source: dict[str, Any] = {
            "doc_id": doc.doc_id,
            "chunk_id": doc.chunk_id,
            "text": doc.text,
            "original": doc.original,
        }
        if vectors is not None:
            source["embedding"] = vectors[row].tolist()
        # "create" rather than "index": a duplicate doc_id is reported instead of overwriting silently.
        yield {"_op_type": "create", "_index": name, "_id": doc.doc_id, "_source": source}


def _bulk_index(
    client: Elasticsearch,
    name: str,
    alias: str,
    documents: Sequence[Document],
    vectors: np.ndarray | None,
    params: IndexParams,
) -> None:
    """Bulk-index every document; any rejected one fails the build with a PipelineError listing them."""
    failures: list[str] = []
    for ok, item in helpers.streaming_bulk(
        client,
        _actions(name, documents, vectors),
        chunk_size=params.es_bulk_chunk,
        raise_on_error=False,  # collect every rejection to report them together, never to skip them
        max_retries=params.es_max_retries,  # documents refused with 429 (queue full) are re-sent
        initial_backoff=params.es_retry_backoff_s,
    ):
        if not ok:
            result = next(iter(item.values()))
            error = result.get("error") or {}
            failures.append(
                f"{result.get('_id')}: {error.get('type', result.get('status'))}: {error.get('reason', '')}"
            )
    if failures:
        listed = "; ".join(failures[:MAX_LISTED_FAILURES])
        more = (
            f"; and {len(failures) - MAX_LISTED_FAILURES} more" if len(failures) > MAX_LISTED_FAILURES else ""
        )
        raise PipelineError(
            f"Elasticsearch rejected {len(failures)} of {len(documents)} documents while building {name}; "
            f"the alias {alias} still points at the previous index. Rejected: {listed}{more}"
        )


def _swap_alias(client: Elasticsearch, alias: str, name: str) -> list[str]:
    """Point `alias` at `name` alone, atomically; return the indices it pointed at before."""
    previous = list(client.indices.get_alias(name=alias)) if client.indices.exists_alias(name=alias) else []
    actions: list[dict] = [{"remove": {"index": old, "alias": alias}} for old in previous]
    actions.append({"add": {"index": name, "alias": alias}})
    client.indices.update_aliases(actions=actions)
    return previous


def _delete_quietly(client: Elasticsearch, name: str) -> None:
    """Remove a half-built index while another error is on its way up (which must not be masked)."""
    try:
        client.indices.delete(index=name, ignore_unavailable=True)
        log.warning("deleted the half-built index %s", name)
    except Exception as err:  # the build's own error matters more; this one is logged, not hidden
        log.error("could not delete the half-built index %s (%s); delete it by hand", name, err)

"""The Elasticsearch backend against a real server (never a mock): indexing and search, agreement with the
embedded engine on the mission report, alias swaps, per-document bulk errors, special characters, dense and
hybrid modes, highlighted result windows (and their agreement with the embedded engine's), and clear
connection and credential errors; the retriever contract (tests/retriever_contract.py) runs here too.
Faults with real processes (kills, restarts): test_elasticsearch_faults.py.

Needs ES_URL (`bash infra/elasticsearch.sh start`, then `export ES_URL=http://127.0.0.1:9200`). Without it
these tests skip, except under CI, where they fail. Each test uses its own alias and removes it after.
"""

from __future__ import annotations

import http.server
import logging
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from rezero.core.config import IndexParams, SynthesizeParams
from rezero.core.errors import PipelineError
from rezero.core.io import read_json, read_jsonl
from rezero.retrieval import Document, Retriever, build_index, chunk_documents, open_retriever
from rezero.retrieval.embedded import query_terms
from rezero.retrieval.es_connection import settings_from_env
from tests.conftest import SHARED_DATA, require_shared_file
from tests.retriever_contract import CHUNKS as CONTRACT_CHUNKS
from tests.retriever_contract import MODES, RetrieverContract, words
from tests.services.conftest import drop

pytestmark = pytest.mark.services
log = logging.getLogger(__name__)

CHUNKS = [
    {"chunk_id": "c1", "position": 0, "text": "The oxygen tank failed during the cryogenic stir."},
    {"chunk_id": "c2", "position": 1, "text": "The crew moved into the lunar module as a lifeboat."},
    {"chunk_id": "c3", "position": 2, "text": "Splashdown happened in the Pacific Ocean near Samoa."},
]
AGREEMENT_FLOOR = 0.7  # share of questions whose top chunk is the same in both engines


def serving_indices(client: Elasticsearch, alias: str) -> list[str]:
    return sorted(client.indices.get_alias(name=alias))


def all_indices(client: Elasticsearch, alias: str) -> list[str]:
    return sorted(client.indices.get(index=f"{alias}-*", allow_no_indices=True))


def test_indexing_and_search_rank_the_best_chunk_first(es_params, tmp_path):
    manifest = build_index(es_params, chunk_documents(CHUNKS), tmp_path / "index")
    assert manifest["es_alias"] == es_params.es_index
    retriever = open_retriever(tmp_path / "index")
    assert isinstance(retriever, Retriever)
    assert retriever.size == 3
    hits = retriever.search("Where was the splashdown?", 2)
    assert hits[0].chunk_id == "c3" and hits[0].original is True
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    queries = ["oxygen", "lunar module", "", "Samoa"]
    assert retriever.search_many(queries, 2) == [retriever.search(q, 2) for q in queries]


def test_manifest_holds_names_but_no_connection_settings(es_params, tmp_path, monkeypatch):
    monkeypatch.setenv("ES_API_KEY", "not-a-real-key-1234")  # the open server ignores it
    build_index(es_params, chunk_documents(CHUNKS), tmp_path / "index")
    text = (tmp_path / "index" / "manifest.json").read_text()
    manifest = read_json(tmp_path / "index" / "manifest.json")
    assert manifest["backend"] == "elasticsearch" and manifest["settings"]["es_index"] == es_params.es_index
    assert manifest["es_concrete_index"].startswith(f"{es_params.es_index}-")
    assert "not-a-real-key" not in text and os.environ["ES_URL"] not in text


@pytest.fixture(scope="module")
def special_retriever(tmp_path_factory, es_client) -> Iterator[Retriever]:
    alias = f"rezero-test-{uuid.uuid4().hex[:10]}"
    folder = tmp_path_factory.mktemp("special") / "index"
    build_index(IndexParams(backend="elasticsearch", es_index=alias), chunk_documents(CHUNKS), folder)
    yield open_retriever(folder)
    drop(es_client, alias)


def test_special_characters_still_find_their_words(special_retriever):
    assert special_retriever.search('"oxygen" AND tank:(stir)', 1)[0].chunk_id == "c1"
    assert special_retriever.search("*", 3) == []


def test_failed_rebuild_leaves_the_previous_index_serving(es_params, es_client, tmp_path):
    build_index(es_params, chunk_documents(CHUNKS), tmp_path / "index")
    before = serving_indices(es_client, es_params.es_index)
    # The last document breaks the mapping, so the rebuild fails after indexing the others.
    broken = [*chunk_documents(CHUNKS)[:2], Document("bad", "bad", {"an": "object"})]  # type: ignore[arg-type]
    with pytest.raises(PipelineError, match=r"rejected 1 of 3 documents.*bad: document_parsing_exception"):
        build_index(es_params, broken, tmp_path / "index")
    assert serving_indices(es_client, es_params.es_index) == before
    assert all_indices(es_client, es_params.es_index) == before  # the half-built index is gone
    assert open_retriever(tmp_path / "index").search("Samoa", 1)[0].chunk_id == "c3"


def test_successful_rebuild_swaps_the_alias_and_drops_the_old_index(es_params, es_client, tmp_path):
    build_index(es_params, chunk_documents(CHUNKS), tmp_path / "index")
    before = serving_indices(es_client, es_params.es_index)
    retriever = open_retriever(tmp_path / "index")
    extra = Document("c4", "c4", "The command module Odyssey was powered up again before reentry.")
    build_index(es_params, [*chunk_documents(CHUNKS), extra], tmp_path / "index")
    after = serving_indices(es_client, es_params.es_index)
    assert after != before and all_indices(es_client, es_params.es_index) == after
    assert retriever.search("Odyssey reentry", 1)[0].chunk_id == "c4"  # an open retriever follows the alias


def test_bulk_errors_are_reported_per_document(es_params, es_client, tmp_path):
    documents = [
        *chunk_documents(CHUNKS),
        Document("c2", "c2", "A second document with an existing id."),  # create: a version conflict
        Document("odd", "odd", "text", original=2),  # type: ignore[arg-type]  # not a boolean
    ]
    with pytest.raises(PipelineError) as caught:
        build_index(es_params, documents, tmp_path / "index")
    message = str(caught.value)
    assert "rejected 2 of 5 documents" in message
    assert "c2: version_conflict_engine_exception" in message
    assert "odd: document_parsing_exception" in message
    assert all_indices(es_client, es_params.es_index) == []
    assert not (tmp_path / "index").exists()


def test_alias_taken_by_a_concrete_index_is_refused(es_params, es_client, tmp_path):
    es_client.indices.create(index=es_params.es_index)
    with pytest.raises(PipelineError, match="concrete index"):
        build_index(es_params, chunk_documents(CHUNKS), tmp_path / "index")


def test_missing_alias_says_how_to_build_it(es_params, tmp_path):
    from rezero.retrieval.elasticsearch import ElasticsearchRetriever

    with pytest.raises(PipelineError, match="dvc repro index"):
        ElasticsearchRetriever(es_params)


def test_agreement_with_the_embedded_backend_on_the_mission_report(
    mission_chunks, es_params, tmp_path, record_property
):
    from rezero.synthesis import generate_pairs

    # A fixed query set: the offline generator's questions (deterministic, seed 42), one per line.
    records, _ = generate_pairs(mission_chunks, SynthesizeParams(generator="offline"))
    questions = [r["question"] for r in records]
    documents = chunk_documents(mission_chunks)
    build_index(IndexParams(), documents, tmp_path / "embedded")
    build_index(es_params, documents, tmp_path / "es")
    embedded = open_retriever(tmp_path / "embedded").search_many(questions, 1)
    elastic = open_retriever(tmp_path / "es").search_many(questions, 1)
    same = sum(
        bool(a) and bool(b) and a[0].chunk_id == b[0].chunk_id for a, b in zip(embedded, elastic, strict=True)
    )
    share = same / len(questions)
    gold = [r["chunk_id"] for r in records]
    gold_embedded = sum(bool(h) and h[0].chunk_id == g for h, g in zip(embedded, gold, strict=True)) / len(
        gold
    )
    gold_elastic = sum(bool(h) and h[0].chunk_id == g for h, g in zip(elastic, gold, strict=True)) / len(gold)
    record_property("top1_agreement", share)
    log.warning(
        "top chunk agreement: %d of %d questions (%.1f%%); gold chunk at rank 1: embedded %.1f%%, "
        "Elasticsearch %.1f%%",
        same,
        len(questions),
        100 * share,
        100 * gold_embedded,
        100 * gold_elastic,
    )
    assert share >= AGREEMENT_FLOOR, f"only {share:.1%} of {len(questions)} questions agree on the top chunk"
    assert abs(gold_embedded - gold_elastic) <= 0.1


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_dense_and_hybrid_modes_return_sensible_hits(mode, es_client, tmp_path):
    alias = f"rezero-test-{uuid.uuid4().hex[:10]}"
    params = IndexParams(backend="elasticsearch", mode=mode, es_index=alias)
    try:
        build_index(params, chunk_documents(CHUNKS), tmp_path / "es")
        build_index(IndexParams(mode=mode), chunk_documents(CHUNKS), tmp_path / "embedded")
        mapping = es_client.indices.get_mapping(index=alias)
        (properties,) = [m["mappings"]["properties"] for m in mapping.values()]
        assert properties["embedding"]["type"] == "dense_vector"
        retriever = open_retriever(tmp_path / "es")
        queries = ["water landing location", "explosion", "oxygen tank", "", "?!"]
        hits = retriever.search_many(queries, 3)
        assert hits[0][0].chunk_id == "c3"  # shares no word with the chunk: found by meaning
        assert hits[1][0].chunk_id == "c1"
        assert hits[2][0].chunk_id == "c1"
        assert hits[3] == hits[4] == []
        # Same model and cosine in both engines: the same ranking.
        embedded = open_retriever(tmp_path / "embedded").search_many(queries, 3)
        assert [[h.chunk_id for h in r] for r in hits] == [[h.chunk_id for h in r] for r in embedded]
    finally:
        drop(es_client, alias)


@pytest.fixture(scope="module")
def contract_retrievers(es_client, tmp_path_factory) -> Iterator[dict[str, Retriever]]:
    """An Elasticsearch retriever per mode over the contract's chunks (tests/retriever_contract.py)."""
    root = tmp_path_factory.mktemp("windows")
    aliases = {mode: f"rezero-test-{uuid.uuid4().hex[:10]}" for mode in MODES}
    retrievers = {}
    try:
        for mode, alias in aliases.items():
            build_index(
                IndexParams(backend="elasticsearch", mode=mode, es_index=alias),
                chunk_documents(CONTRACT_CHUNKS),
                root / mode,
            )
            retrievers[mode] = open_retriever(root / mode)
        yield retrievers
    finally:
        for alias in aliases.values():
            drop(es_client, alias)


class TestElasticsearchContract(RetrieverContract):
    pass


def test_both_backends_show_windows_with_the_same_query_words(
    mission_chunks, es_params, tmp_path, record_property
):
    # The paper's questions on the mission report, 300-character windows. The engines cut windows
    # differently (tantivy: fixed tiles scored by the query words' rarity; Elasticsearch: sentences scored by
    # BM25), so the check is on words: where both rank the same chunk first, both windows hold the query's
    # rarest word in that chunk, and they share most of the query's content words (those in < 10 % of chunks).
    path = require_shared_file(SHARED_DATA / "questions.jsonl")
    questions = [row["question"] for row in read_jsonl(path)]
    documents = chunk_documents(mission_chunks)
    build_index(IndexParams(), documents, tmp_path / "embedded")
    build_index(es_params, documents, tmp_path / "es")
    embedded = open_retriever(tmp_path / "embedded").search_many(questions, 1, snippet_chars=300)
    elastic = open_retriever(tmp_path / "es").search_many(questions, 1, snippet_chars=300)
    chunk_frequency = Counter(word for chunk in mission_chunks for word in words(chunk["text"]))
    rarest_in_both, overlap, compared = 0, 0.0, 0
    for question, ours, theirs in zip(questions, embedded, elastic, strict=True):
        if not ours or not theirs or ours[0].chunk_id != theirs[0].chunk_id:
            continue
        compared += 1
        terms = set(query_terms(question))
        rarest = min(terms & words(ours[0].text), key=lambda word: (chunk_frequency[word], word))
        rarest_in_both += rarest in words(ours[0].snippet) and rarest in words(theirs[0].snippet)
        content = {word for word in terms if chunk_frequency[word] < 0.1 * len(mission_chunks)}
        a, b = content & words(ours[0].snippet), content & words(theirs[0].snippet)
        overlap += len(a & b) / len(a | b) if a | b else 1.0
    record_property("window_rarest_word_in_both", rarest_in_both / compared)
    log.warning(
        "300-character windows, %d questions with the same top chunk: rarest query word in both windows "
        "%.1f%%, content-word overlap (Jaccard) %.2f",
        compared,
        100 * rarest_in_both / compared,
        overlap / compared,
    )
    # Measured on 313 questions: 88 % and 0.87.
    assert compared >= 0.9 * len(questions)
    assert rarest_in_both / compared >= 0.8 and overlap / compared >= 0.75


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_error_names_the_url_and_the_fix(monkeypatch, tmp_path):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("ES_URL", f"http://127.0.0.1:{port}")
    params = IndexParams(backend="elasticsearch", es_max_retries=1, es_retry_backoff_s=0.01)
    with pytest.raises(PipelineError) as caught:
        build_index(params, chunk_documents(CHUNKS), tmp_path / "index")
    assert f"http://127.0.0.1:{port}" in str(caught.value)
    assert "bash infra/elasticsearch.sh start" in str(caught.value)
    assert not (tmp_path / "index").exists()


class RejectCredentials(http.server.BaseHTTPRequestHandler):
    """Answers every request as a secured cluster does to bad credentials (only the status matters)."""

    def reply(self) -> None:
        body = b'{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = reply

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass


def test_rejected_credentials_are_reported_without_leaking_them(monkeypatch, caplog, tmp_path):
    # The test server runs with security off, so a small local endpoint plays the 401 (the client and the
    # error mapping are the real ones).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RejectCredentials)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ES_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("ES_USERNAME", "elastic")
    monkeypatch.setenv("ES_PASSWORD", "hunter2-secret")
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(PipelineError, match="rejected the credentials"):
            build_index(IndexParams(backend="elasticsearch"), chunk_documents(CHUNKS), tmp_path / "index")
    finally:
        server.shutdown()
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({}, "infra/elasticsearch.sh start"),
        ({"ES_URL": "localhost:9200"}, "scheme and host"),
        ({"ES_URL": "http://user:pw@127.0.0.1:9200"}, "must not hold credentials"),
        ({"ES_URL": "http://127.0.0.1:9200", "ES_USERNAME": "u"}, "both ES_USERNAME and ES_PASSWORD"),
        ({"ES_URL": "http://127.0.0.1:9200", "ES_CA_CERT": "/no/such.pem"}, "not a file"),
    ],
)
def test_connection_settings_come_from_the_environment(environ, match):
    with pytest.raises(PipelineError, match=match):
        settings_from_env(environ)


def test_settings_never_show_secrets():
    settings = settings_from_env({"ES_URL": "https://es.example:9243/", "ES_API_KEY": "c2VjcmV0"})
    assert settings.host == "https://es.example:9243"
    assert "c2VjcmV0" not in repr(settings)

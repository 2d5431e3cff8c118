"""The Elasticsearch backend against a real server (never a mock): indexing and search, agreement with the
embedded engine on the mission report, alias swaps, per-document bulk errors, special characters, dense and
hybrid modes, restarts, and clear connection and credential errors.

Needs ES_URL (`bash infra/elasticsearch.sh start`, then `export ES_URL=http://127.0.0.1:9200`). Without it
these tests skip, except under CI, where they fail. Each test uses its own alias and removes it after.
"""

from __future__ import annotations

import http.server
import logging
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from rezero.config import IndexParams, SynthesizeParams
from rezero.errors import PipelineError
from rezero.io import read_json
from rezero.retrieval import Document, Retriever, build_index, chunk_documents, open_retriever
from rezero.retrieval.es_connection import settings_from_env
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.services
log = logging.getLogger(__name__)

START_HINT = "bash infra/elasticsearch.sh start` and `export ES_URL=http://127.0.0.1:9200"
SCRIPT = PROJECT_ROOT / "infra" / "elasticsearch.sh"
PID_FILE = PROJECT_ROOT / os.environ.get("ES_RUN_DIR", "infra/run/elasticsearch") / "es.pid"
CHUNKS = [
    {"chunk_id": "c1", "position": 0, "text": "The oxygen tank failed during the cryogenic stir."},
    {"chunk_id": "c2", "position": 1, "text": "The crew moved into the lunar module as a lifeboat."},
    {"chunk_id": "c3", "position": 2, "text": "Splashdown happened in the Pacific Ocean near Samoa."},
]
AGREEMENT_FLOOR = 0.7  # share of questions whose top chunk is the same in both engines


@pytest.fixture(scope="session")
def es_url() -> str:
    url = os.environ.get("ES_URL")
    if not url:
        message = f"ES_URL is not set: start Elasticsearch with `{START_HINT}`"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must run the Elasticsearch tests, not skip them)")
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def es_client(es_url: str) -> Elasticsearch:
    return Elasticsearch(es_url, request_timeout=30)


@pytest.fixture
def es_params(es_client: Elasticsearch) -> Iterator[IndexParams]:
    """Settings with an alias of this test's own; its indices are deleted afterwards."""
    alias = f"rezero-test-{uuid.uuid4().hex[:10]}"
    yield IndexParams(backend="elasticsearch", es_index=alias, es_retry_backoff_s=0.2)
    drop(es_client, alias)


def drop(client: Elasticsearch, alias: str) -> None:
    # By name: the server refuses wildcard deletes (action.destructive_requires_name).
    for name in client.indices.get(index=f"{alias}*", allow_no_indices=True, expand_wildcards="all"):
        client.indices.delete(index=name, ignore_unavailable=True)


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


@pytest.mark.parametrize(
    "query",
    [
        '"oxygen tank"',
        "crew's lifeboat",
        "(lunar) AND module",
        "OR",
        "NOT",
        "tank:oxygen",
        "text:oxygen AND _id:c1",
        "Pacific^2",
        "über Śamoa 月 😀",
        "",
        "   ",
        "*",
        "?",
        "\\",
        "/regex.*/",
        'oxygen~ -tank +crew [a TO b] {x} && || ! ( ) " ~ * ? : \\ /',
        '{"query": {"match_all": {}}}',
        "\x00\x1f control characters",
        "a" * 5000,
        " ".join(f"word{i}" for i in range(3000)),  # more terms than a bool query allows clauses by default
    ],
)
def test_any_query_text_never_raises(special_retriever, query):
    hits = special_retriever.search(query, 3)
    assert isinstance(hits, list)


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
    records, _ = generate_pairs(mission_chunks, SynthesizeParams())
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


def local_server_managed_by_script() -> bool:
    port = os.environ.get("ES_PORT", "9200")
    return PID_FILE.is_file() and os.environ.get("ES_URL", "").rstrip("/") == f"http://127.0.0.1:{port}"


def run_script(command: str) -> None:
    subprocess.run(["bash", str(SCRIPT), command], check=True, timeout=240, capture_output=True)


def test_search_recovers_after_the_server_restarts(es_params, tmp_path):
    if not local_server_managed_by_script():
        pytest.skip("ES_URL is not the server `bash infra/elasticsearch.sh start` runs; not restarting it")
    build_index(es_params, chunk_documents(CHUNKS), tmp_path / "index")
    retriever = open_retriever(tmp_path / "index")
    expected = retriever.search("Samoa", 1)
    try:
        run_script("stop")
        with pytest.raises(PipelineError, match=r"cannot connect to Elasticsearch at http://127\.0\.0\.1"):
            retriever.search("Samoa", 1)
    finally:
        run_script("start")  # waits for health; the server must be back for the tests after this one
    assert retriever.search("Samoa", 1) == expected  # same client, same data, after the restart


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

"""Embedded retrieval: distractors marked non-original, atomic rebuilds. Ranking, any query text and
windows are the retriever contract (tests/retriever_contract.py), run by tests/unit/test_windows.py."""

from __future__ import annotations

import pytest

from rezero.core.config import IndexParams
from rezero.core.errors import PipelineError
from rezero.retrieval import (
    Document,
    build_index,
    chunk_documents,
    load_distractors,
    open_retriever,
)

CHUNKS = [
    {"chunk_id": "c1", "position": 0, "text": "The oxygen tank failed during the cryogenic stir."},
    {"chunk_id": "c2", "position": 1, "text": "The crew moved into the lunar module as a lifeboat."},
    {"chunk_id": "c3", "position": 2, "text": "Splashdown happened in the Pacific Ocean near Samoa."},
]


@pytest.fixture
def index_dir(tmp_path):
    folder = tmp_path / "index"
    build_index(IndexParams(), chunk_documents(CHUNKS), folder)
    return folder


def test_distractors_are_searchable_but_marked_non_original(tmp_path):
    csv_path = tmp_path / "noise.csv"
    csv_path.write_text(
        "chunk_id,original_paragraph,paraphrased_text\n"
        '9,"The crew moved into the lunar module as a lifeboat.",'
        '"Astronauts sheltered in the lunar lander."\n'
        '9,"Not in any chunk","Unrelated zebra paraphrase"\n'
    )
    distractors = load_distractors(csv_path, CHUNKS)
    assert [d.chunk_id for d in distractors] == ["c2", "noise-00001"]
    build_index(IndexParams(), chunk_documents(CHUNKS) + distractors, tmp_path / "index")
    hits = open_retriever(tmp_path / "index").search("astronauts sheltered lander", 1)
    assert hits[0].original is False
    assert hits[0].chunk_id == "c2"


def test_failed_rebuild_leaves_the_previous_index_serving(index_dir):
    # A document tantivy refuses (text is not a string) makes the build fail half-way through.
    broken = [Document("ok", "ok", "fine text"), Document("bad", "bad", None)]  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        build_index(IndexParams(), broken, index_dir)
    assert open_retriever(index_dir).search("oxygen", 1)[0].chunk_id == "c1"
    assert not [p for p in index_dir.parent.iterdir() if p.name.startswith(".")]


def test_missing_index_says_how_to_build_it(tmp_path):
    with pytest.raises(PipelineError, match="dvc repro"):
        open_retriever(tmp_path / "nothing")


def test_real_chunks_find_their_own_text(mission_chunks, tmp_path):
    build_index(IndexParams(), chunk_documents(mission_chunks), tmp_path / "index")
    retriever = open_retriever(tmp_path / "index")
    # A long verbatim sentence from a chunk should bring that chunk back first.
    probes = [c for c in mission_chunks if len(c["text"]) > 500][:50]
    first = [retriever.search(c["text"][:200], 1)[0].chunk_id == c["chunk_id"] for c in probes]
    assert sum(first) / len(first) > 0.9

"""Result windows (`snippet_chars`): tantivy's highlighter picks, in every mode, at most N characters around
the passage that best matches the query; the agent shows them instead of the whole chunk."""

from __future__ import annotations

import re

import pytest

from rezero.agent import SearchEnvironment, format_information
from rezero.config import AgentParams, IndexParams
from rezero.retrieval import Document, Hit, build_index, chunk_documents, open_retriever
from rezero.retrieval.base import clip
from rezero.retrieval.embedded import query_terms

# The words each query looks for sit far from the start of their chunk, so a window of the first N
# characters would miss them.
FILLER = (
    "The flight plan was reviewed by the mission control team before launch. Weather at the Cape was "
    "acceptable and the countdown proceeded without holds. All crew members reported good health. "
)
CHUNKS = [
    {
        "chunk_id": "c1",
        "position": 0,
        "text": FILLER + "At 55 hours the number 2 oxygen tank failed during a cryogenic stir of its fans.",
    },
    {
        "chunk_id": "c2",
        "position": 1,
        "text": FILLER + "The crew moved into the lunar module Aquarius, which served as a lifeboat.",
    },
    {
        "chunk_id": "c3",
        "position": 2,
        "text": FILLER + "Splashdown happened in the Pacific Ocean near Samoa; USS Iwo Jima recovered them.",
    },
    {
        "chunk_id": "c4",
        "position": 3,
        "text": "Telemetry: supercalifragilisticexpialidocious oxygen readings.",
    },
]
MODES = ["bm25", "dense", "hybrid"]
WORD = re.compile(r"\w+")


@pytest.fixture(scope="module")
def retrievers(tmp_path_factory):
    """One embedded index per mode over the same chunks (the embedding model loads once per session)."""
    root = tmp_path_factory.mktemp("windows")
    for mode in MODES:
        build_index(IndexParams(mode=mode), chunk_documents(CHUNKS), root / mode)
    return {mode: open_retriever(root / mode) for mode in MODES}


def words(text: str) -> set[str]:
    return {word.lower() for word in WORD.findall(text)}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chars", [30, 80, 150])
def test_window_holds_the_query_words_within_the_limit(retrievers, mode, chars):
    query = "cryogenic oxygen tank"
    hits = retrievers[mode].search(query, 4, snippet_chars=chars)
    (tank,) = [hit for hit in hits if hit.chunk_id == "c1"]
    for hit in hits:
        assert hit.snippet is not None and 0 < len(hit.snippet) <= chars
        assert hit.snippet in hit.text  # a window of the chunk itself
        assert hit.text == next(c["text"] for c in CHUNKS if c["chunk_id"] == hit.chunk_id)  # still whole
        if words(hit.text) & set(query_terms(query)):
            assert words(hit.snippet) & set(query_terms(query)), hit
    assert not tank.text.startswith(tank.snippet)  # it moved to the match, far from the start


@pytest.mark.parametrize("mode", MODES)
def test_window_of_a_short_chunk_is_the_whole_chunk(retrievers, mode):
    (hit,) = [
        h for h in retrievers[mode].search("supercalifragilisticexpialidocious", 4, 200) if h.chunk_id == "c4"
    ]
    # tantivy's fragment ends with the last word, so the chunk's final period stays out.
    assert hit.snippet == hit.text.removesuffix(".")


@pytest.mark.parametrize("mode", MODES)
def test_a_word_longer_than_the_window_is_cut(retrievers, mode):
    hits = retrievers[mode].search("supercalifragilisticexpialidocious", 4, snippet_chars=10)
    assert hits and all(len(h.snippet) <= 10 for h in hits)
    assert [h.snippet for h in hits if h.chunk_id == "c4"] == ["supercalif"]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_hit_without_any_query_word_shows_the_start_of_its_text(retrievers, mode):
    # No word in common with any chunk: only the dense ranking finds them, and no highlight exists.
    hits = retrievers[mode].search("water landing location", 3, snippet_chars=60)
    assert hits[0].chunk_id == "c3"
    for hit in hits:
        assert hit.snippet == clip(hit.text, 60)
        assert hit.text.startswith(hit.snippet) and 45 < len(hit.snippet) <= 60  # cut at a word boundary


@pytest.mark.parametrize("mode", MODES)
def test_without_snippet_chars_hits_are_unchanged(retrievers, mode):
    retriever = retrievers[mode]
    plain = retriever.search("lunar module lifeboat", 3)
    assert plain and all(hit.snippet is None for hit in plain)
    windowed = retriever.search("lunar module lifeboat", 3, snippet_chars=50)
    # Same ranking, same full texts; only the snippet is added.
    assert [(h.doc_id, h.text) for h in windowed] == [(h.doc_id, h.text) for h in plain]
    assert [h.score for h in windowed] == pytest.approx([h.score for h in plain], abs=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_batch_windows_equal_single_windows(retrievers, mode):
    retriever = retrievers[mode]
    queries = ["oxygen", "", "?!", "Samoa recovery", "lunar module"]
    batch = retriever.search_many(queries, 2, snippet_chars=40)
    single = [retriever.search(q, 2, snippet_chars=40) for q in queries]
    assert [[(h.doc_id, h.snippet) for h in r] for r in batch] == [
        [(h.doc_id, h.snippet) for h in r] for r in single
    ]
    assert batch[1] == batch[2] == []


@pytest.mark.parametrize("chars", [0, -5])
def test_non_positive_window_is_refused(retrievers, chars):
    with pytest.raises(ValueError, match="snippet_chars must be >= 1"):
        retrievers["bm25"].search("oxygen", 2, snippet_chars=chars)


def test_real_chunks_windows_find_a_phrase_from_the_middle(mission_chunks, tmp_path):
    # Five words from the middle of a long chunk as the query: when that chunk ranks first, its window
    # (well short of the chunk) holds all five words; every window stays within bounds.
    build_index(IndexParams(), chunk_documents(mission_chunks), tmp_path / "index")
    retriever = open_retriever(tmp_path / "index")
    held, ranked = 0, 0
    for chunk in [c for c in mission_chunks if len(c["text"]) > 800][:40]:
        phrase = " ".join(chunk["text"].split()[len(chunk["text"].split()) // 2 :][:5])
        hits = retriever.search(phrase, 3, snippet_chars=200)
        assert all(hit.snippet is not None and len(hit.snippet) <= 200 for hit in hits)
        if hits[0].chunk_id == chunk["chunk_id"]:
            ranked += 1
            held += words(phrase) <= words(hits[0].snippet)
    # Measured: 31 of the 32 first-ranked chunks (a tile boundary can split the phrase).
    assert ranked >= 25 and held / ranked >= 0.9


class TestAgentShowsWindows:
    def test_format_shows_the_window_else_the_whole_text(self):
        windowed = Hit(
            chunk_id="c1", text="a long chunk of text", score=1.0, original=True, snippet="chunk of"
        )
        whole = Hit(chunk_id="c2", text="whole chunk", score=0.5, original=True)
        assert format_information([windowed, whole]) == (
            "<information>Result 1:\nchunk of\n------\nResult 2:\nwhole chunk</information>"
        )
        assert format_information([]) == "<information>No results found.</information>"

    @pytest.mark.parametrize("noise_share", [0.0, 0.5])
    def test_environment_asks_for_result_chars_windows(self, tmp_path, noise_share):
        distractor = Document(
            "noise-00000", "c1", FILLER + "A paraphrase: the oxygen tank broke.", original=False
        )
        build_index(IndexParams(), [*chunk_documents(CHUNKS), distractor], tmp_path / "index")
        retriever = open_retriever(tmp_path / "index")
        params = AgentParams(top_k=2, result_chars=70, noise_share=noise_share)
        hits = SearchEnvironment(retriever, params).search("oxygen tank")
        # tantivy tiles the text into windows and keeps the best one, which need not hold every query word.
        assert len(hits) == 2 and all(
            h.snippet and words(h.snippet) & {"oxygen", "tank"} and len(h.snippet) <= 70 for h in hits
        )
        information = format_information(hits)
        assert all(h.snippet in information for h in hits) and FILLER not in information

    def test_null_result_chars_shows_whole_chunks(self, retrievers):
        params = AgentParams(top_k=2, result_chars=None)
        hits = SearchEnvironment(retrievers["bm25"], params).search("oxygen tank")
        assert all(h.snippet is None for h in hits)
        assert hits[0].text in format_information(hits)

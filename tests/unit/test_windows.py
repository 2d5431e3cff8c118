"""Result windows (`snippet_chars`) of the embedded engine: tantivy's highlighter picks, in every mode, at
most N characters around the passage that best matches the query; the agent shows them instead of the whole
chunk. The retriever contract (tests/retriever_contract.py) runs here against the embedded engine."""

from __future__ import annotations

import pytest

from rezero.core.config import AgentParams, IndexParams
from rezero.episode.agent import SearchEnvironment, format_information
from rezero.retrieval import Document, Hit, build_index, chunk_documents, open_retriever
from rezero.retrieval.base import clip
from tests.retriever_contract import CHUNKS, FILLER, MODES, RetrieverContract, words


@pytest.fixture(scope="module")
def contract_retrievers(tmp_path_factory):
    """One embedded index per mode over the same chunks (the embedding model loads once per session)."""
    root = tmp_path_factory.mktemp("windows")
    for mode in MODES:
        build_index(IndexParams(mode=mode), chunk_documents(CHUNKS), root / mode)
    return {mode: open_retriever(root / mode) for mode in MODES}


class TestEmbeddedContract(RetrieverContract):
    pass


@pytest.mark.parametrize("mode", MODES)
def test_window_of_a_short_chunk_is_the_whole_chunk(contract_retrievers, mode):
    (hit,) = [
        h
        for h in contract_retrievers[mode].search("supercalifragilisticexpialidocious", 4, 200)
        if h.chunk_id == "c4"
    ]
    # tantivy's fragment ends with the last word, so the chunk's final period stays out.
    assert hit.snippet == hit.text.removesuffix(".")


@pytest.mark.parametrize("mode", MODES)
def test_a_word_longer_than_the_window_keeps_its_start(contract_retrievers, mode):
    hits = contract_retrievers[mode].search("supercalifragilisticexpialidocious", 4, snippet_chars=10)
    assert [h.snippet for h in hits if h.chunk_id == "c4"] == ["supercalif"]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_hit_without_any_query_word_shows_its_clipped_start(contract_retrievers, mode):
    hits = contract_retrievers[mode].search("water landing location", 3, snippet_chars=60)
    assert hits and all(hit.snippet == clip(hit.text, 60) for hit in hits)


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

    def test_null_result_chars_shows_whole_chunks(self, contract_retrievers):
        params = AgentParams(top_k=2, result_chars=None)
        hits = SearchEnvironment(contract_retrievers["bm25"], params).search("oxygen tank")
        assert all(h.snippet is None for h in hits)
        assert hits[0].text in format_information(hits)

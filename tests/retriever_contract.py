"""The retriever contract: what every backend's `Retriever` does, whatever engine serves it.

A test module subclasses `RetrieverContract` and defines the fixture `contract_retrievers`: search mode
(bm25, dense, hybrid) → a `Retriever` over `CHUNKS`. tests/unit/test_windows.py runs it on the embedded
engine, tests/services/test_elasticsearch.py on a real Elasticsearch.
"""

from __future__ import annotations

import re

import pytest

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
# Query syntax of either engine, control characters, and sizes past a bool query's default clause limit:
# all of it stays text to search for.
HOSTILE_QUERIES = [
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
    " ".join(f"word{i}" for i in range(3000)),
]
WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    return {word.lower() for word in WORD.findall(text)}


class RetrieverContract:
    """Subclass it as `Test<Backend>Contract` in a module defining the fixture `contract_retrievers`."""

    def test_best_matching_chunk_ranks_first_and_batches_equal_single_searches(self, contract_retrievers):
        retriever = contract_retrievers["bm25"]
        hits = retriever.search("Where was the splashdown?", 2)
        assert hits[0].chunk_id == "c3" and hits[0].original is True
        assert len(hits) == 2 and hits[0].score >= hits[1].score
        queries = ["oxygen", "lunar module", "", "Samoa"]
        assert retriever.search_many(queries, 2) == [retriever.search(q, 2) for q in queries]

    @pytest.mark.parametrize("query", HOSTILE_QUERIES)
    def test_any_query_text_never_raises(self, contract_retrievers, query):
        retriever = contract_retrievers["bm25"]
        assert isinstance(retriever.search(query, 3), list)
        windowed = retriever.search(query, 3, snippet_chars=20)  # the highlighter takes any query too
        assert all(hit.snippet is not None and len(hit.snippet) <= 20 for hit in windowed)

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("chars", [30, 80, 150])
    def test_window_holds_the_query_words_within_the_limit(self, contract_retrievers, mode, chars):
        query = "cryogenic oxygen tank"
        hits = contract_retrievers[mode].search(query, 4, snippet_chars=chars)
        (tank,) = [hit for hit in hits if hit.chunk_id == "c1"]
        texts = {chunk["chunk_id"]: chunk["text"] for chunk in CHUNKS}
        for hit in hits:
            assert hit.snippet is not None and 0 < len(hit.snippet) <= chars
            assert (
                hit.snippet in hit.text and hit.text == texts[hit.chunk_id]
            )  # a window; the chunk stays whole
            if words(hit.text) & set(query_terms(query)):
                assert words(hit.snippet) & set(query_terms(query)), hit
        assert not tank.text.startswith(tank.snippet)  # it moved to the match, far from the start

    @pytest.mark.parametrize("mode", MODES)
    def test_a_word_longer_than_the_window_is_cut(self, contract_retrievers, mode):
        hits = contract_retrievers[mode].search("supercalifragilisticexpialidocious", 4, snippet_chars=10)
        assert hits and all(len(hit.snippet) <= 10 for hit in hits)

    @pytest.mark.parametrize("mode", ["dense", "hybrid"])
    def test_a_hit_without_any_query_word_shows_the_start_of_its_text(self, contract_retrievers, mode):
        # No word in common with any chunk: only the dense ranking finds them, and no highlight exists.
        hits = contract_retrievers[mode].search("water landing location", 3, snippet_chars=60)
        assert hits[0].chunk_id == "c3"
        for hit in hits:
            assert hit.text.startswith(hit.snippet) and 45 < len(hit.snippet) <= 60  # cut at a word boundary

    @pytest.mark.parametrize("mode", MODES)
    def test_without_snippet_chars_hits_are_unchanged(self, contract_retrievers, mode):
        retriever = contract_retrievers[mode]
        plain = retriever.search("lunar module lifeboat", 3)
        assert plain and all(hit.snippet is None for hit in plain)
        windowed = retriever.search("lunar module lifeboat", 3, snippet_chars=50)
        # Same ranking, same full texts; only the snippet is added.
        assert [(h.doc_id, h.text) for h in windowed] == [(h.doc_id, h.text) for h in plain]
        assert [h.score for h in windowed] == pytest.approx([h.score for h in plain], abs=1e-5)

    @pytest.mark.parametrize("mode", MODES)
    def test_batch_windows_equal_single_windows(self, contract_retrievers, mode):
        retriever = contract_retrievers[mode]
        queries = ["oxygen", "", "?!", "Samoa recovery", "lunar module"]
        batch = retriever.search_many(queries, 2, snippet_chars=40)
        single = [retriever.search(q, 2, snippet_chars=40) for q in queries]
        # Scores aside (a batch pads its embedding inputs, which moves a float32's last digit): same windows.
        assert [[(h.doc_id, h.snippet) for h in r] for r in batch] == [
            [(h.doc_id, h.snippet) for h in r] for r in single
        ]
        assert batch[1] == batch[2] == []

    @pytest.mark.parametrize("chars", [0, -5])
    def test_non_positive_window_is_refused(self, contract_retrievers, chars):
        with pytest.raises(ValueError, match="snippet_chars must be >= 1"):
            contract_retrievers["bm25"].search("oxygen", 2, snippet_chars=chars)

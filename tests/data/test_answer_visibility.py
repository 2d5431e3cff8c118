"""Answer visibility on the real data: with the engine's query-focused windows the agent is shown the gold
answer of most of the paper's questions, far more often than with each chunk's first characters."""

from __future__ import annotations

import pytest

from rezero.core.config import AgentParams, IndexParams, SynthesizeParams
from rezero.episode.agent import SearchEnvironment
from rezero.episode.answers import answer_visible
from rezero.episode.visibility import answer_visibility
from rezero.retrieval import build_index, chunk_documents, open_retriever
from rezero.synthesis import generate_pairs, split_train_test


@pytest.fixture(scope="module")
def paper_split(mission_chunks, paper_questions):
    params = SynthesizeParams(published_source=str(paper_questions))
    records, _ = generate_pairs(mission_chunks, params)
    return split_train_test(records, params.test_fraction, params.seed)


@pytest.fixture(scope="module")
def retriever(mission_chunks, tmp_path_factory):
    folder = tmp_path_factory.mktemp("visibility") / "index"
    build_index(IndexParams(), chunk_documents(mission_chunks), folder)
    return open_retriever(folder)


def first_chars_visibility(records, retriever, chars: int, k: int) -> float:
    """The old display: each hit's first `chars` characters."""
    hits = retriever.search_many([r["question"] for r in records], k)
    shown = sum(
        any(answer_visible(r["answer"], hit.text[:chars]) for hit in row)
        for r, row in zip(records, hits, strict=True)
    )
    return shown / len(records)


def test_default_window_shows_the_answer_for_most_paper_test_questions(paper_split, retriever):
    # The default profile's window (300 characters, top 3): the target is >= 70 % on the 32.
    train, test = paper_split
    env = SearchEnvironment(retriever, AgentParams(top_k=3, result_chars=300))
    assert answer_visibility(test, env) >= 0.70
    assert answer_visibility(train, env) >= 0.70


def test_windows_show_the_answer_far_more_often_than_the_first_characters(paper_split, retriever):
    _, test = paper_split
    for chars in (200, 300):
        env = SearchEnvironment(retriever, AgentParams(top_k=3, result_chars=chars))
        assert answer_visibility(test, env) >= first_chars_visibility(test, retriever, chars, 3) + 0.2


def test_whole_chunks_bound_what_any_window_can_show(paper_split, retriever):
    _, test = paper_split
    whole = answer_visibility(test, SearchEnvironment(retriever, AgentParams(top_k=3, result_chars=None)))
    window = answer_visibility(test, SearchEnvironment(retriever, AgentParams(top_k=3, result_chars=300)))
    assert window <= whole <= 1.0

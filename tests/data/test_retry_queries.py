"""The warm start's retry demonstrations on the real data: a second query drawn from the gold passage never
holds a word of the answer (nor of the question), and for a good share of the paper's training questions
whose first search misses the answer, such a query's results do show it."""

from __future__ import annotations

import pytest

from rezero.core.config import AgentParams, IndexParams, SynthesizeParams
from rezero.episode.agent import SearchEnvironment
from rezero.episode.answers import first_result_showing
from rezero.episode.demonstrations import derive_query, retry_queries
from rezero.episode.judges import normalize_answer
from rezero.retrieval import build_index, chunk_documents, open_retriever
from rezero.synthesis import generate_pairs


@pytest.fixture(scope="module")
def paper_records(mission_chunks, paper_questions):
    records, _ = generate_pairs(mission_chunks, SynthesizeParams(published_source=str(paper_questions)))
    return records


@pytest.fixture(scope="module")
def env(mission_chunks, tmp_path_factory):
    folder = tmp_path_factory.mktemp("retry") / "index"
    build_index(IndexParams(), chunk_documents(mission_chunks), folder)
    return SearchEnvironment(open_retriever(folder), AgentParams())  # the default window and top 3


def test_no_retry_query_holds_a_word_of_the_answer_or_the_question(paper_records):
    for record in paper_records:
        banned = set(normalize_answer(record["answer"]).split()) | set(record["answer"].casefold().split())
        banned |= set(normalize_answer(record["question"]).split())
        for query in retry_queries(record):
            assert not set(query.casefold().split()) & banned, (record["id"], query)


def test_a_retry_query_shows_the_answer_for_many_questions_the_first_search_misses(paper_records, env):
    def shows(record: dict, query: str) -> bool:
        return first_result_showing(record["answer"], [hit.shown for hit in env.search(query)]) is not None

    missed = [r for r in paper_records if not shows(r, derive_query(r["question"]))]
    recovered = [r for r in missed if any(shows(r, q) for q in retry_queries(r))]
    print(
        f"first search misses {len(missed)} of {len(paper_records)}; a retry query recovers {len(recovered)}"
    )
    assert len(missed) > 40 and len(recovered) >= 0.4 * len(missed)

"""Great Expectations suites on the real data the pipeline makes from the mission report: each guards what
the stages downstream assume."""

from __future__ import annotations

from rezero.core.config import SynthesizeParams
from rezero.data.validation import validate_chunks, validate_qa
from rezero.synthesis import generate_pairs, split_train_test


def test_chunks_pass_the_chunk_suite(mission_chunks):
    # Count (the paper's 341), no empty chunk, none over the size, unique ids and positions.
    validate_chunks(mission_chunks, chunk_size=1000, expected_count=341)


def test_offline_split_passes_the_qa_suite(mission_chunks):
    # Grounded answers, no duplicate questions, no answer inside its question, split sizes, no leakage.
    params = SynthesizeParams(generator="offline")
    records, summary = generate_pairs(mission_chunks, params)
    train, test = split_train_test(records, params.test_fraction, params.seed)
    validate_qa(train, test, params.test_fraction)
    assert summary["pairs_kept"] == len(train) + len(test) > 300
    assert len({r["chunk_id"] for r in records}) > 150  # questions spread over the document


def test_the_papers_pairs_all_map_and_split_as_the_paper_did(mission_chunks, paper_questions):
    # The default QA set: every one of the paper's 318 pairs maps to one of our chunks (159 chunks, as in
    # the paper), and the split is the paper's: 286 / 32, the test set holding the file's first and last rows.
    import json

    rows = [json.loads(line) for line in paper_questions.read_text(encoding="utf-8").splitlines()]
    params = SynthesizeParams(published_source=str(paper_questions))
    records, summary = generate_pairs(mission_chunks, params)
    assert (summary["rows"], summary["rows_mapped"], summary["pairs_kept"]) == (318, 318, 318)
    assert summary["chunks_with_pairs"] == 159
    train, test = split_train_test(records, params.test_fraction, params.seed)
    validate_qa(train, test, params.test_fraction)
    assert (len(train), len(test)) == (286, 32)
    row_of = {row["question"]: number for number, row in enumerate(rows)}
    test_rows = sorted(row_of[record["question"]] for record in test)
    assert test_rows[0] == 0 and test_rows[-1] == 317
    assert {record["answer"] for record in test} == {rows[n]["answer"] for n in test_rows}

"""Great Expectations suites on the real data the pipeline makes from the mission report: each guards what
the stages downstream assume."""

from __future__ import annotations

from rezero.config import SynthesizeParams
from rezero.synthesis import generate_pairs, split_train_test
from rezero.validation import validate_chunks, validate_qa


def test_chunks_pass_the_chunk_suite(mission_chunks):
    # Count (the paper's 341), no empty chunk, none over the size, unique ids and positions.
    validate_chunks(mission_chunks, chunk_size=1000, expected_count=341)


def test_synthesized_split_passes_the_qa_suite(mission_chunks):
    # Grounded answers, no duplicate questions, no answer inside its question, split sizes, no leakage.
    params = SynthesizeParams()
    records, summary = generate_pairs(mission_chunks, params)
    train, test = split_train_test(records, params.test_fraction, params.seed)
    validate_qa(train, test, params.test_fraction)
    assert summary["pairs_kept"] == len(train) + len(test) > 300
    assert len({r["chunk_id"] for r in records}) > 150  # questions spread over the document

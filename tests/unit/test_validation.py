"""Data contracts: GX suites pass valid chunks and QA splits, and name every broken rule with its value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rezero.core.errors import PipelineError
from rezero.data.validation import expected_test_size, validate_chunks, validate_qa

CHUNK_SIZE = 100


def make_chunks(count: int = 5) -> list[dict]:
    return [
        {"chunk_id": f"c{i}", "position": i, "text": f"Chunk {i} about the oxygen tank."}
        for i in range(count)
    ]


def make_record(i: int, split: str) -> dict:
    return {
        "id": f"{split}-{i}",
        "question": f"What did the crew see on pass {i}?",
        "answer": f"Debris{i}",
        "chunk_id": f"c{i}",
        "chunk_text": f"On pass {i} the crew saw debris{i} venting from the service module.",
        "difficulty": "easy",
        "generator": "offline",
    }


def make_splits(n_train: int = 18, n_test: int = 2) -> tuple[list[dict], list[dict]]:
    """20 grounded records split 18/2, which is round(20 * 0.1) = 2 held out."""
    return [make_record(i, "train") for i in range(n_train)], [
        make_record(i, "test") for i in range(100, 100 + n_test)
    ]


def chunk_error(chunks: list[dict], expected_count: int | None = 5) -> str:
    with pytest.raises(PipelineError) as caught:
        validate_chunks(chunks, CHUNK_SIZE, expected_count)
    return str(caught.value)


def qa_error(train: list[dict], test: list[dict], test_fraction: float = 0.1) -> str:
    with pytest.raises(PipelineError) as caught:
        validate_qa(train, test, test_fraction)
    return str(caught.value)


def test_importing_the_module_does_not_import_gx_or_pandas():
    code = "import sys, rezero.data.validation; print({'great_expectations', 'pandas'} & set(sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "set()"


class TestValidateChunks:
    def test_valid_chunks_pass(self):
        validate_chunks(make_chunks(), CHUNK_SIZE, 5)

    def test_text_of_exactly_chunk_size_passes(self):
        chunks = make_chunks()
        chunks[0]["text"] = "x" * CHUNK_SIZE
        validate_chunks(chunks, CHUNK_SIZE, 5)

    def test_no_expected_count_skips_the_count_check(self):
        validate_chunks(make_chunks(7), CHUNK_SIZE, None)

    def test_wrong_count_reports_expected_and_observed(self):
        message = chunk_error(make_chunks(4))
        assert "1 check(s) failed: expected 5 chunks, got 4" in message
        assert "chunk.expected_count in params.yaml" in message

    def test_no_chunks_fail_even_without_expected_count(self):
        assert "expected at least one chunk, got 0" in chunk_error([], expected_count=None)

    @pytest.mark.parametrize("text", ["", "   \n\t", None])
    def test_empty_or_whitespace_text_fails(self, text):
        chunks = make_chunks()
        chunks[1]["text"] = text
        message = chunk_error(chunks)
        assert "1 check(s) failed: 1 of 5 chunks with empty or whitespace-only text: ids c1." in message

    def test_text_longer_than_chunk_size_is_reported_with_its_length(self):
        chunks = make_chunks()
        chunks[2]["text"] = "x" * (CHUNK_SIZE + 1)
        message = chunk_error(chunks)
        assert "1 check(s) failed: 1 of 5 chunks longer than 100 characters: ids c2 (lengths 101)" in message
        assert "chunk.chunk_size" in message

    def test_duplicate_chunk_id_fails(self):
        chunks = make_chunks()
        chunks[3]["chunk_id"] = "c4"
        assert "1 check(s) failed: 2 of 5 chunks with a duplicate chunk_id: ids c4." in chunk_error(chunks)

    def test_duplicate_position_fails_and_names_both_chunks(self):
        chunks = make_chunks()
        chunks[4]["position"] = 0
        message = chunk_error(chunks)
        assert (
            "1 check(s) failed: 2 of 5 chunks with a duplicate position: ids c0, c4 (positions 0, 0)"
            in message
        )

    def test_missing_chunk_id_is_named_by_list_index(self):
        chunks = make_chunks()
        del chunks[3]["chunk_id"]
        assert "1 check(s) failed: 1 of 5 chunks without a chunk_id: ids #3." in chunk_error(chunks)

    @pytest.mark.parametrize("position", [None, "2", 2.0, True])
    def test_missing_or_non_integer_position_fails(self, position):
        chunks = make_chunks()
        chunks[2]["position"] = position
        assert "1 check(s) failed: 1 of 5 chunks without an integer position: ids c2." in chunk_error(chunks)

    def test_every_broken_rule_is_reported_at_once(self):
        chunks = make_chunks()
        chunks[0]["text"] = " "
        chunks[1]["text"] = "x" * 250
        chunks[2]["chunk_id"] = "c3"
        chunks[4]["position"] = 3
        message = chunk_error(chunks, expected_count=6)
        assert "5 check(s) failed" in message
        for part in (
            "expected 6 chunks, got 5",
            "1 of 5 chunks with empty or whitespace-only text: ids c0",
            "1 of 5 chunks longer than 100 characters: ids c1 (lengths 250)",
            "2 of 5 chunks with a duplicate chunk_id: ids c3",
            "2 of 5 chunks with a duplicate position: ids c3, c4",
        ):
            assert part in message

    def test_records_that_are_not_dicts_are_rejected(self):
        with pytest.raises(PipelineError, match="expected a list of records"):
            validate_chunks(["just text"], CHUNK_SIZE, None)


class TestValidateQa:
    def test_valid_splits_pass(self):
        validate_qa(*make_splits(), 0.1)

    def test_answer_is_found_in_chunk_text_regardless_of_case(self):
        train, test = make_splits()
        train[0]["answer"] = "DEBRIS0"  # chunk_text says "debris0"
        validate_qa(train, test, 0.1)

    @pytest.mark.parametrize("field", ["question", "answer", "chunk_id"])
    @pytest.mark.parametrize("value", ["", "  ", None])
    def test_empty_or_missing_required_field_fails(self, field, value):
        train, test = make_splits()
        train[3][field] = value
        message = qa_error(train, test)
        assert f"1 check(s) failed: 1 of 20 records with an empty or missing {field}: ids train-3." in message

    def test_answer_missing_from_chunk_text_fails(self):
        train, test = make_splits()
        test[0]["answer"] = "a meteor"
        message = qa_error(train, test)
        assert (
            "1 check(s) failed: 1 of 20 records whose answer is not in their chunk_text: ids test-100."
            in message
        )
        assert "Re-run the synthesize stage" in message

    def test_question_asked_twice_in_one_split_fails_regardless_of_case_and_spacing(self):
        train, test = make_splits()
        train[5]["question"] = "  what did the CREW see  on pass 4? "
        message = qa_error(train, test)
        expected = "2 of 20 records whose question is asked again in the same split: ids train-4, train-5."
        assert f"1 check(s) failed: {expected}" in message

    def test_question_containing_its_answer_fails(self):
        train, test = make_splits()
        train[6]["question"] = "Did the crew see DEBRIS6?"
        assert (
            "1 check(s) failed: 1 of 20 records whose question contains the answer: ids train-6."
            in qa_error(train, test)
        )

    def test_test_split_of_the_wrong_size_fails_with_observed_size(self):
        train, test = make_splits(n_train=17, n_test=3)
        message = qa_error(train, test)
        assert "1 check(s) failed: expected 2 test records (test_fraction 0.1 of 20), got 3." in message
        assert "synthesize.test_fraction" in message

    def test_test_question_also_in_train_is_reported_as_leakage_only(self):
        train, test = make_splits()
        test[1]["question"] = train[0]["question"].upper()
        message = qa_error(train, test)
        assert (
            "1 check(s) failed: 1 of 20 held-out records whose question is also in train (or, for dev, in "
            "test): ids test-101." in message
        )

    def test_dev_split_passes_and_counts_towards_the_test_size(self):
        train, test = make_splits(n_train=16)
        dev = [make_record(i, "dev") for i in range(200, 202)]
        validate_qa(train, test, 0.1, dev)  # 2 of 20 records in test, dev included in the total

    @pytest.mark.parametrize("source", ["train", "test"])
    def test_dev_question_also_in_train_or_test_is_leakage(self, source):
        train, test = make_splits(n_train=16)
        dev = [make_record(i, "dev") for i in range(200, 202)]
        dev[1]["question"] = {"train": train, "test": test}[source][0]["question"]
        with pytest.raises(PipelineError) as caught:
            validate_qa(train, test, 0.1, dev)
        assert "1 of 20 held-out records whose question is also in train" in str(caught.value)
        assert "ids dev-201." in str(caught.value)

    def test_no_records_fail(self):
        assert "expected at least one QA record, got 0" in qa_error([], [])

    def test_records_without_id_are_named_by_split_and_index(self):
        train, test = make_splits()
        del test[0]["id"]
        test[0]["answer"] = "a meteor"
        assert "ids test #0." in qa_error(train, test)

    def test_every_broken_rule_is_reported_at_once(self):
        train, test = make_splits(n_train=16, n_test=4)
        train[0]["question"] = ""
        train[1]["answer"] = "a meteor"
        train[2]["question"] = train[3]["question"]
        train[4]["question"] = "Was it debris4?"
        test[0]["question"] = train[5]["question"]
        message = qa_error(train, test)
        assert "6 check(s) failed" in message
        for part in (
            "records with an empty or missing question: ids train-0",
            "records whose answer is not in their chunk_text: ids train-1",
            "records whose question is asked again in the same split: ids train-2, train-3",
            "records whose question contains the answer: ids train-4",
            "expected 2 test records (test_fraction 0.1 of 20), got 4",
            "held-out records whose question is also in train (or, for dev, in test): ids test-100",
        ):
            assert part in message


@pytest.mark.parametrize(
    ("n_total", "test_fraction", "expected"),
    [
        (318, 0.1, 32),  # the paper: 286 train / 32 test
        (20, 0.1, 2),
        (5, 0.1, 1),  # round gives 0: at least one test record once there are two
        (2, 0.1, 1),
        (1, 0.1, 0),  # a single record stays in train
        (2, 0.9, 1),  # at most n - 1, so train is never empty
    ],
)
def test_expected_test_size_follows_the_split_rule(n_total, test_fraction, expected):
    assert expected_test_size(n_total, test_fraction) == expected

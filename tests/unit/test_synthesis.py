"""QA synthesis: offline generator, grounding filter, train/test split, and the OpenAI-compatible generator.

The chunk texts here are invented (a fictional "Kestrel" flight); the real mission report is read only
at run time, from the shared data folder. The OpenAI-compatible generator is exercised against a real
HTTP server on 127.0.0.1 that speaks the /v1/chat/completions JSON shape.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest

from rezero.core.config import SynthesizeParams
from rezero.core.errors import PipelineError
from rezero.synthesis import generate_pairs, keep_grounded, split_dev, split_train_test
from rezero.synthesis.offline import pairs_for_chunk
from rezero.synthesis.prompting import parse_reply
from rezero.synthesis.questions import ask
from rezero.synthesis.spans import find_spans
from tests.conftest import ChatServer, Responder

PROSE_A = (
    "The Kestrel 4 flight plan called for a landing in the Marsh Highlands.\n\n"
    "The reserve water tank No. 3 was vented at 41:12:05. The cabin fan failed at 62:30:10. "
    "Cabin pressure dropped to 4.2 psi within 90 seconds. The Northfield Tracking Station provided voice "
    "and telemetry throughout the coast phase."
)
PROSE_B = (
    "Total water usage was 31.5 pounds over a 70-hour period. The descent stage landed on March 9, 2031. "
    "Power was drawn from battery 3 during the test. Commander Ilse Varga reported a loud vibration "
    "shortly after the burn.\n\nAt 17:45:00, the heater was switched off to save power. The backup oxygen "
    "regulator was replaced before the second launch attempt."
)
TABLE_AND_CONTENTS = (
    "Event Time, hr:min:sec Range, miles 00:00:00 12.5 00:02:41 35.1 00:09:12 88.0 01:14:33 102.4 "
    "02:20:00 140.2 03:05:10 188.7\n\n"
    "1.0 SUMMARY . . . . . . . . . . . 1-1\n2.0 INTRODUCTION . . . . . . . . . 2-1"
)
CHUNKS = [
    {"chunk_id": "0000-a", "position": 0, "text": PROSE_A},
    {"chunk_id": "0001-b", "position": 1, "text": PROSE_B},
    {"chunk_id": "0002-c", "position": 2, "text": TABLE_AND_CONTENTS},
]
# sentence | answer span | the question the offline rules must write for it
REWRITES = [
    tuple(row.split(" | "))
    for row in """
The spare tank No. 3 was vented at 41:12:05. | 41:12:05 | When was the spare tank No. 3 vented?
The cabin fan failed at 62:30:10. | 62:30:10 | When did the cabin fan fail?
Pressure fell to 4 psi within 90 seconds. | 90 seconds | Within how many seconds did pressure fall to 4 psi?
Water usage was 31.5 pounds over a day. | 31.5 pounds | Water usage was how many pounds over a day?
The descent stage landed on March 9, 2031. | March 9, 2031 | When did the descent stage land?
The Northfield Tracking Station provided voice. | Northfield Tracking Station | Which station provided voice?
Commander Ilse Varga reported a loud vibration. | Commander Ilse Varga | Who reported a loud vibration?
Power was drawn from battery 3 in the test. | battery 3 | Power was drawn from which battery in the test?
At 17:45:00, the heater was switched off. | 17:45:00 | When was the heater switched off?
The backup oxygen regulator was replaced early. | backup oxygen regulator | What was replaced early?
""".strip().splitlines()
]
RECORD_KEYS = {"id", "question", "answer", "chunk_id", "chunk_text", "difficulty", "generator"}


def offline_records(chunks: list[dict[str, Any]] = CHUNKS, **overrides: Any) -> list[dict[str, Any]]:
    records, _ = generate_pairs(chunks, SynthesizeParams(**{"generator": "offline", **overrides}))
    return records


class TestOfflineGenerator:
    def test_answers_are_spans_of_their_chunk(self) -> None:
        for record in offline_records():
            assert record["answer"].casefold() in record["chunk_text"].casefold()

    def test_questions_never_contain_their_answer(self) -> None:
        for record in offline_records():
            assert record["answer"].casefold() not in record["question"].casefold()

    def test_questions_read_as_questions_and_use_several_templates(self) -> None:
        records = offline_records(pairs_per_chunk=10)
        assert all(r["question"].endswith("?") and r["question"][0].isupper() for r in records)
        first_words = {r["question"].split()[0] for r in records}
        assert len(first_words) >= 4, first_words

    @pytest.mark.parametrize(("sentence", "answer", "question"), REWRITES)
    def test_sentence_is_rewritten_into_a_question_about_the_span(
        self, sentence: str, answer: str, question: str
    ) -> None:
        spans = {sentence[s.start : s.end]: s for s in find_spans(sentence)}
        assert answer in spans, sorted(spans)
        asked = ask(sentence, spans[answer])
        assert asked is not None and asked.text == question

    def test_tables_and_contents_pages_yield_no_pairs(self) -> None:
        assert pairs_for_chunk(CHUNKS[2], 2, seed=42) == []

    def test_at_most_pairs_per_chunk_with_distinct_answers(self) -> None:
        for n in (1, 2, 3):
            pairs = pairs_for_chunk(CHUNKS[0], n, seed=42)
            assert 1 <= len(pairs) <= n
            assert len({p.answer.casefold() for p in pairs}) == len(pairs)

    def test_same_seed_gives_the_same_records(self) -> None:
        assert offline_records(seed=7) == offline_records(seed=7)

    def test_seed_decides_which_equally_good_facts_are_asked(self) -> None:
        # Six sentences of the same shape score the same, so only the seeded shuffle picks among them.
        text = " ".join(f"The probe number {i} reached {100 + 7 * i} feet in the test." for i in range(6))
        chunk = {"chunk_id": "x", "position": 0, "text": text}
        picks = {tuple(p.answer for p in pairs_for_chunk(chunk, 2, seed)) for seed in range(10)}
        assert len(picks) > 1

    def test_difficulty_is_a_self_rating(self) -> None:
        assert {r["difficulty"] for r in offline_records()} <= {"easy", "medium", "hard"}

    def test_real_mission_report_gives_over_300_grounded_pairs(self, mission_chunks: list[dict]) -> None:
        records, summary = generate_pairs(mission_chunks, SynthesizeParams(generator="offline"))
        assert len(records) > 300
        assert summary["chunks_in"] == len(mission_chunks)
        kept, dropped = keep_grounded(records)
        assert kept == records and sum(dropped.values()) == 0


class TestGeneratePairs:
    def test_records_follow_the_contract(self) -> None:
        for record in offline_records():
            assert set(record) == RECORD_KEYS
            expected_id = hashlib.sha1(f"{record['chunk_id']}\n{record['question']}".encode()).hexdigest()[
                :12
            ]
            assert record["id"] == expected_id
            assert record["generator"] == "offline"
            chunk = next(c for c in CHUNKS if c["chunk_id"] == record["chunk_id"])
            assert record["chunk_text"] == chunk["text"]

    def test_summary_counts_add_up(self) -> None:
        records, summary = generate_pairs(CHUNKS, SynthesizeParams(generator="offline"))
        dropped = sum(v for k, v in summary.items() if k.startswith("pairs_dropped_"))
        assert summary["pairs_kept"] == len(records)
        assert summary["pairs_generated"] == summary["pairs_kept"] + dropped
        assert summary["chunks_in"] == 3
        assert summary["chunks_with_pairs"] == len({r["chunk_id"] for r in records}) == 2
        assert summary["generator"] == "offline"
        assert summary["generator_settings"]["seed"] == 42

    @pytest.mark.parametrize(
        ("chunks", "message"),
        [
            ([], "no chunks"),
            ([{"chunk_id": "a", "position": 0, "text": "  "}], "empty 'text'"),
            ([{"chunk_id": "a", "position": 0}], "empty 'text'"),
            ([{"position": 0, "text": PROSE_A}], "chunk_id"),
            ([CHUNKS[0], CHUNKS[0]], "duplicate chunk_id"),
            (["just a string"], "expected a mapping"),
        ],
    )
    def test_bad_chunks_raise_pipeline_error(self, chunks: list[Any], message: str) -> None:
        with pytest.raises(PipelineError, match=re.escape(message)):
            generate_pairs(chunks, SynthesizeParams(generator="offline"))

    def test_chunks_without_any_prose_raise_pipeline_error(self) -> None:
        with pytest.raises(PipelineError, match="no pair survived"):
            generate_pairs([CHUNKS[2]], SynthesizeParams(generator="offline"))


def pair(question: str, answer: str, text: str = "The tank was vented at 41:12:05.") -> dict[str, str]:
    return {"question": question, "answer": answer, "chunk_text": text}


class TestKeepGrounded:
    @pytest.mark.parametrize(
        ("candidate", "reason"),
        [
            (pair("When was the tank vented?", "41:12:05"), None),
            (pair("What was vented?", "THE TANK"), None),  # grounding is case-insensitive
            (pair("When was the tank vented?", "41:12:06"), "ungrounded"),
            (pair("When was the tank vented?", ""), "ungrounded"),
            (pair("", "41:12:05"), "ungrounded"),
            (pair("Was the tank vented at 41:12:05?", "41:12:05"), "answer_in_question"),
            (pair("When was THE TANK vented?", "the Tank"), "answer_in_question"),
        ],
    )
    def test_single_pair_rules(self, candidate: dict[str, str], reason: str | None) -> None:
        kept, dropped = keep_grounded([candidate])
        assert kept == ([candidate] if reason is None else [])
        assert {k for k, v in dropped.items() if v} == ({reason} if reason else set())

    def test_duplicate_questions_are_dropped_case_insensitively(self) -> None:
        first = pair("When was the tank vented?", "41:12:05")
        again = pair("WHEN was the  tank vented?", "41:12:05", "Other text: the tank was vented at 41:12:05.")
        kept, dropped = keep_grounded([first, again])
        assert kept == [first] and dropped["duplicate"] == 1

    def test_a_dropped_pair_does_not_block_a_later_good_one(self) -> None:
        bad, good = (
            pair("When was the tank vented?", "99:99:99"),
            pair("When was the tank vented?", "41:12:05"),
        )
        assert keep_grounded([bad, good])[0] == [good]

    def test_pair_without_chunk_text_raises_pipeline_error(self) -> None:
        with pytest.raises(PipelineError, match="chunk_text"):
            keep_grounded([{"question": "q?", "answer": "a"}])


def numbered_records(n: int) -> list[dict[str, Any]]:
    return [{"id": f"{i:012x}", "question": f"q{i}?", "answer": f"a{i}"} for i in range(n)]


class TestSplitTrainTest:
    def test_paper_sizes_318_give_286_train_and_32_test(self) -> None:
        train, test = split_train_test(numbered_records(318), 0.1, 42)
        assert (len(train), len(test)) == (286, 32)

    def test_parts_are_disjoint_and_cover_all_records(self) -> None:
        records = numbered_records(57)
        train, test = split_train_test(records, 0.1, 42)
        train_ids, test_ids = {r["id"] for r in train}, {r["id"] for r in test}
        assert not train_ids & test_ids
        assert train_ids | test_ids == {r["id"] for r in records}

    def test_same_seed_same_split_other_seed_other_split(self) -> None:
        records = numbered_records(100)
        assert split_train_test(records, 0.1, 42) == split_train_test(records, 0.1, 42)
        assert split_train_test(records, 0.1, 42)[1] != split_train_test(records, 0.1, 43)[1]

    def test_test_split_is_the_first_ceil_n_fraction_of_numpys_permutation(self) -> None:
        # What datasets' train_test_split(test_size=0.1, seed=42) does, restated with numpy alone.
        import numpy as np

        records = numbered_records(318)
        train, test = split_train_test(records, 0.1, 42)
        permutation = np.random.default_rng(42).permutation(318)
        assert test == [records[i] for i in permutation[:32]]
        assert train == [records[i] for i in permutation[32:]]

    def test_input_list_is_not_reordered(self) -> None:
        records = numbered_records(20)
        before = list(records)
        split_train_test(records, 0.1, 42)
        assert records == before

    @pytest.mark.parametrize(
        ("n", "sizes"), [(1, (1, 0)), (2, (1, 1)), (3, (2, 1)), (10, (9, 1)), (31, (27, 4))]
    )
    def test_small_sets_hold_out_at_least_one_record(self, n: int, sizes: tuple[int, int]) -> None:
        train, test = split_train_test(numbered_records(n), 0.1, 42)
        assert (len(train), len(test)) == sizes

    @pytest.mark.parametrize(
        ("records", "fraction", "message"),
        [
            ([], 0.1, "no QA records"),
            (numbered_records(5), 0.0, "test_fraction"),
            (numbered_records(5), 1.0, "test_fraction"),
            (numbered_records(5), "0.1", "test_fraction"),
            (numbered_records(2) * 2, 0.1, "unique 'id'"),
            ([{"question": "q?"}, {"question": "r?"}], 0.1, "unique 'id'"),
        ],
    )
    def test_bad_input_raises_pipeline_error(self, records: list[Any], fraction: Any, message: str) -> None:
        with pytest.raises(PipelineError, match=re.escape(message)):
            split_train_test(records, fraction, 42)


class TestSplitDev:
    def test_paper_train_split_gives_254_train_and_32_dev_disjoint_from_each_other_and_test(self) -> None:
        records = numbered_records(318)
        train, test = split_train_test(records, 0.1, 42)
        rest, dev = split_dev(train, 32, 42)
        ids = [{r["id"] for r in part} for part in (rest, dev, test)]
        assert [len(part) for part in ids] == [254, 32, 32]
        assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
        assert set.union(*ids) == {r["id"] for r in records}

    def test_seeded_and_order_kept(self) -> None:
        train = numbered_records(100)
        assert split_dev(train, 10, 42) == split_dev(train, 10, 42)
        assert split_dev(train, 10, 42)[1] != split_dev(train, 10, 7)[1]
        rest, dev = split_dev(train, 10, 42)
        assert rest == sorted(rest, key=train.index) and dev == sorted(dev, key=train.index)

    @pytest.mark.parametrize("dev_size", [0, 20, 25])
    def test_a_dev_split_that_leaves_no_training_question_is_refused_with_the_counts(
        self, dev_size: int
    ) -> None:
        with pytest.raises(PipelineError, match=f"dev_size = {dev_size} .* training split has 20"):
            split_dev(numbered_records(20), dev_size, 42)


class TestParseReply:
    @pytest.mark.parametrize(
        "reply",
        [
            '{"pairs": [{"question": "When was the tank vented?", "answer": "41:12:05", '
            '"difficulty": "easy"}]}',
            'Sure!\n```json\n[{"Question": "When was the tank vented?", "Answer": "41:12:05", '
            '"Difficulty": "easy"}]\n```',
            "<question>When was the tank vented?</question><answer>41:12:05</answer>"
            "<difficulty>easy</difficulty>",
            "Question 1: When was the tank vented?\nAnswer 1: 41:12:05\nDifficulty: easy",
        ],
    )
    def test_json_tags_and_labelled_lines_are_read(self, reply: str) -> None:
        pairs = parse_reply(reply)
        assert [(p.question, p.answer, p.difficulty) for p in pairs] == [
            ("When was the tank vented?", "41:12:05", "easy")
        ]

    @pytest.mark.parametrize("reply", [None, "", "I cannot help with that.", '{"pairs": []}', "[1, 2, 3]"])
    def test_malformed_reply_gives_no_pairs(self, reply: str | None) -> None:
        assert parse_reply(reply) == []


# ---- a real OpenAI-compatible endpoint on 127.0.0.1 -------------------------------------------------


@pytest.fixture
def qa_endpoint(
    chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Responder], ChatServer]:
    """`qa_endpoint(respond)`: the fake endpoint answering with `respond`, set as the generator's endpoint."""

    def start(respond: Responder) -> ChatServer:
        chat_server.respond = respond
        monkeypatch.setenv("REZERO_QA_BASE_URL", chat_server.base_url)
        return chat_server

    monkeypatch.delenv("REZERO_QA_MODEL", raising=False)
    monkeypatch.delenv("REZERO_QA_API_KEY", raising=False)
    return start


def chunk_in(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"]


def grounded_reply(body: dict[str, Any]) -> tuple[int, str]:
    """Answers like a well-behaved model: pairs whose answers are copied from the chunk in the prompt."""
    if "41:12:05" in chunk_in(body):
        pairs = [
            {
                "question": "When was the reserve water tank No. 3 vented?",
                "answer": "41:12:05",
                "difficulty": "Easy",
            },
            {"question": "What failed at 62:30:10?", "answer": "cabin fan", "difficulty": "medium"},
        ]
    else:
        pairs = [{"question": "How much water was used?", "answer": "31.5 pounds", "difficulty": "extreme"}]
    return 200, json.dumps({"pairs": pairs})


def openai_params(**overrides: Any) -> SynthesizeParams:
    return SynthesizeParams(generator="openai", **overrides)


class TestOpenAIGenerator:
    def test_good_replies_become_grounded_records(
        self, qa_endpoint: Callable[[Responder], ChatServer]
    ) -> None:
        server = qa_endpoint(grounded_reply)
        records, summary = generate_pairs(CHUNKS[:2], openai_params())
        assert [(r["chunk_id"], r["answer"], r["difficulty"]) for r in records] == [
            ("0000-a", "41:12:05", "easy"),
            ("0000-a", "cabin fan", "medium"),
            ("0001-b", "31.5 pounds", None),  # an unknown self-rating is recorded as None
        ]
        assert {r["generator"] for r in records} == {"openai"}
        assert summary["requests"] == 2 and summary["replies_malformed"] == 0
        assert summary["generator_settings"]["base_url"] == server.base_url
        assert "api_key" not in summary["generator_settings"]

    def test_request_follows_the_paper_shape(self, qa_endpoint: Callable[[Responder], ChatServer]) -> None:
        server = qa_endpoint(grounded_reply)
        generate_pairs(CHUNKS[:1], openai_params(pairs_per_chunk=2, temperature=0.3))
        (body,) = server.bodies()
        assert body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
        assert body["temperature"] == 0.3
        assert PROSE_A in chunk_in(body) and "write 2 question-answer pairs" in chunk_in(body)

    def test_model_comes_from_the_environment_when_set(
        self, qa_endpoint: Callable[[Responder], ChatServer], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        server = qa_endpoint(grounded_reply)
        monkeypatch.setenv("REZERO_QA_MODEL", "local-test-model")
        generate_pairs(CHUNKS[:1], openai_params())
        assert server.bodies()[0]["model"] == "local-test-model"

    def test_malformed_reply_is_counted_and_retried_not_fatal(
        self, qa_endpoint: Callable[[Responder], ChatServer], caplog: pytest.LogCaptureFixture
    ) -> None:
        def respond(body: dict[str, Any]) -> tuple[int, str]:
            return (200, "Sorry, I cannot do that.") if "41:12:05" in chunk_in(body) else grounded_reply(body)

        server = qa_endpoint(respond)
        records, summary = generate_pairs(CHUNKS[:2], openai_params(max_retries=1))
        assert [r["chunk_id"] for r in records] == ["0001-b"]
        assert summary["replies_malformed"] == 2  # the first try and its one retry
        assert summary["requests"] == len(server.bodies()) == 3
        assert "no question/answer pair in the reply" in caplog.text

    def test_chunk_is_asked_again_when_no_pair_is_grounded(
        self, qa_endpoint: Callable[[Responder], ChatServer]
    ) -> None:
        replies = iter([
            json.dumps([{"question": "Who flew?", "answer": "someone not in the text"}]),
            json.dumps([{"question": "When was the reserve water tank No. 3 vented?", "answer": "41:12:05"}]),
        ])  # fmt: skip
        server = qa_endpoint(lambda body: (200, next(replies)))
        records, summary = generate_pairs(CHUNKS[:1], openai_params(max_retries=1))
        assert [r["answer"] for r in records] == ["41:12:05"]
        assert len(server.bodies()) == 2 and summary["retry_requests"] == 1

    def test_no_retry_when_max_retries_is_zero(self, qa_endpoint: Callable[[Responder], ChatServer]) -> None:
        server = qa_endpoint(lambda body: (200, "not json"))
        with pytest.raises(PipelineError, match="no pair survived"):
            generate_pairs(CHUNKS[:1], openai_params(max_retries=0))
        assert len(server.bodies()) == 1

    def test_server_error_status_names_the_model_variable(
        self, qa_endpoint: Callable[[Responder], ChatServer]
    ) -> None:
        qa_endpoint(lambda body: (404, "model 'nope' not found"))
        with pytest.raises(PipelineError, match=r"HTTP 404.*REZERO_QA_MODEL"):
            generate_pairs(CHUNKS[:1], openai_params())

    def test_unreachable_url_raises_pipeline_error_naming_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
        monkeypatch.setenv("REZERO_QA_BASE_URL", url)
        with pytest.raises(PipelineError, match=re.escape(url)):
            generate_pairs(CHUNKS[:1], openai_params())

    @pytest.mark.parametrize("value", [None, "", "127.0.0.1:8000/v1"])
    def test_missing_or_bad_base_url_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, value: str | None
    ) -> None:
        if value is None:
            monkeypatch.delenv("REZERO_QA_BASE_URL", raising=False)
        else:
            monkeypatch.setenv("REZERO_QA_BASE_URL", value)
        with pytest.raises(PipelineError, match="REZERO_QA_BASE_URL"):
            generate_pairs(CHUNKS[:1], openai_params())


def published_row(question: str, answer: str, paragraphs: list[str]) -> str:
    return json.dumps(
        {"id": "7", "question": question, "answer": answer, "supporting_paragraphs": paragraphs}
    )


def published_params(path: Any, **overrides: Any) -> SynthesizeParams:
    settings = {"generator": "published", "published_source": str(path), "published_sha256": None}
    return SynthesizeParams(**{**settings, **overrides})


class TestPublishedGenerator:
    """A QA file of someone else's pairs, mapped to our chunks by their supporting paragraphs."""

    PARAGRAPHS_A = PROSE_A.split("\n\n")

    def write(self, tmp_path: Any, lines: list[str]) -> Any:
        path = tmp_path / "qa.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def test_rows_map_to_the_chunk_holding_their_paragraphs_in_file_order(self, tmp_path: Any) -> None:
        path = self.write(
            tmp_path,
            [
                published_row("When did the cabin fan fail?", "62:30:10", self.PARAGRAPHS_A),
                published_row("How much water was used?", "31.5 pounds", PROSE_B.split("\n\n")[:1]),
            ],
        )
        records, summary = generate_pairs(CHUNKS, published_params(path))
        assert [(r["chunk_id"], r["answer"]) for r in records] == [
            ("0000-a", "62:30:10"),
            ("0001-b", "31.5 pounds"),
        ]
        assert all(r["generator"] == "published" for r in records)
        assert (summary["rows"], summary["rows_mapped"], summary["pairs_kept"]) == (2, 2, 2)

    def test_a_question_containing_its_answer_is_kept_as_published(self, tmp_path: Any) -> None:
        # The offline and openai generators drop such pairs; a published set is kept as written.
        path = self.write(
            tmp_path, [published_row("Was battery 3 used in the test?", "battery 3", PROSE_B.split("\n\n"))]
        )
        records, _ = generate_pairs(CHUNKS, published_params(path))
        assert [r["answer"] for r in records] == ["battery 3"]

    def test_whitespace_differences_do_not_break_the_mapping(self, tmp_path: Any) -> None:
        spaced = [p.replace(" ", "  ") + "\n" for p in self.PARAGRAPHS_A]
        path = self.write(tmp_path, [published_row("When was tank No. 3 vented?", "41:12:05", spaced)])
        assert generate_pairs(CHUNKS, published_params(path))[0][0]["chunk_id"] == "0000-a"

    def test_the_chunk_that_is_exactly_the_paragraphs_wins_over_a_longer_one(self, tmp_path: Any) -> None:
        chunks = [*CHUNKS, {"chunk_id": "0003-d", "position": 3, "text": self.PARAGRAPHS_A[0]}]
        path = self.write(
            tmp_path,
            [published_row("Where was the landing planned?", "Marsh Highlands", self.PARAGRAPHS_A[:1])],
        )
        assert generate_pairs(chunks, published_params(path))[0][0]["chunk_id"] == "0003-d"

    def test_unmatched_rows_are_an_error_naming_the_file_and_lines(self, tmp_path: Any) -> None:
        path = self.write(
            tmp_path,
            [
                published_row("When did the cabin fan fail?", "62:30:10", self.PARAGRAPHS_A),
                published_row("Who flew?", "Nobody", ["A paragraph that is in no chunk."]),
                json.dumps({"question": "Where?", "answer": "Here"}),
            ],
        )
        with pytest.raises(PipelineError, match=r"qa\.jsonl: 2 of 3 rows .*lines 2, 3"):
            generate_pairs(CHUNKS, published_params(path))

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (
                json.dumps({"answer": "62:30:10", "supporting_paragraphs": []}),
                "qa.jsonl:1: the row has no question",
            ),
            (json.dumps({"question": "When?", "answer": " "}), "qa.jsonl:1: the row has no answer"),
            ("{not json", "qa.jsonl:1: not valid JSON"),
            ("[1, 2]", "qa.jsonl:1: the row has no question and no answer"),
        ],
    )
    def test_bad_rows_are_an_error_naming_the_file_and_line(
        self, tmp_path: Any, line: str, message: str
    ) -> None:
        path = self.write(tmp_path, [line])
        with pytest.raises(PipelineError, match=re.escape(message)):
            generate_pairs(CHUNKS, published_params(path))

    def test_sha256_mismatch_is_an_error_naming_the_file(self, tmp_path: Any) -> None:
        path = self.write(
            tmp_path, [published_row("When did the cabin fan fail?", "62:30:10", self.PARAGRAPHS_A)]
        )
        with pytest.raises(PipelineError, match=r"qa\.jsonl: sha256 mismatch: expected 00+"):
            generate_pairs(CHUNKS, published_params(path, published_sha256="0" * 64))

    def test_a_pinned_url_is_read_from_a_matching_local_copy_first(
        self, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = self.write(
            tmp_path, [published_row("When did the cabin fan fail?", "62:30:10", self.PARAGRAPHS_A)]
        )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        monkeypatch.chdir(tmp_path)
        params = published_params(
            "http://127.0.0.1:9/qa.jsonl", published_sha256=digest, published_local_copies=["qa.jsonl"]
        )
        records, summary = generate_pairs(CHUNKS, params)
        assert len(records) == 1 and summary["generator_settings"]["read_from"] == "qa.jsonl"

    def test_an_unpinned_url_is_refused(self) -> None:
        with pytest.raises(PipelineError, match="must be pinned"):
            generate_pairs(CHUNKS, published_params("https://example.org/qa.jsonl"))

    def test_an_unreachable_url_without_a_copy_names_the_url(self) -> None:
        params = published_params("http://127.0.0.1:9/qa.jsonl", published_sha256="0" * 64, timeout_s=2.0)
        with pytest.raises(PipelineError, match=r"could not download http://127\.0\.0\.1:9/qa\.jsonl"):
            generate_pairs(CHUNKS, params)

"""Which training questions GRPO draws: those the starting policy answered right sometimes but not always,
never the warm start's demonstrations, filled up at random (with a warning) when too few qualify."""

from __future__ import annotations

import logging

import pytest

from rezero.errors import PipelineError
from rezero.passrate import (
    candidate_questions,
    check_question_budget,
    is_informative,
    select_questions,
    summarise,
)


def records(n: int) -> list[dict]:
    return [{"id": f"q{i}", "question": f"Question {i}?", "answer": f"a{i}"} for i in range(n)]


def rate(i: int, correct: int, samples: int = 4, retried: int = 0) -> dict:
    return {"id": f"q{i}", "correct": correct, "samples": samples, "retried": retried}


@pytest.mark.parametrize(("correct", "informative"), [(0, False), (1, True), (3, True), (4, False)])
def test_a_question_is_informative_only_when_right_sometimes_and_wrong_sometimes(correct, informative):
    assert is_informative(rate(0, correct)) is informative


def test_demonstrated_questions_are_never_candidates():
    assert [r["id"] for r in candidate_questions(records(5), {"q1", "q3"})] == ["q0", "q2", "q4"]


def test_only_questions_with_a_pass_rate_strictly_between_0_and_1_are_chosen():
    rates = [rate(0, 0), rate(1, 2), rate(2, 4), rate(3, 1), rate(4, 0)]
    chosen, info = select_questions(records(8), rates, min_questions=2, seed=0)
    assert [r["id"] for r in chosen] == ["q1", "q3"]
    assert info == {"candidates": 8, "sampled": 5, "informative": 2, "fallback": False, "questions": 2}


def test_too_few_qualifying_questions_fill_up_at_random_with_a_warning(caplog):
    rates = [rate(i, 0) for i in range(6)] + [rate(6, 1)]
    with caplog.at_level(logging.WARNING, logger="rezero.passrate"):
        chosen, info = select_questions(records(10), rates, min_questions=4, seed=0)
    assert chosen[0]["id"] == "q6" and len(chosen) == 4 and len({r["id"] for r in chosen}) == 4
    assert info["fallback"] and info["informative"] == 1 and info["questions"] == 4
    assert "only 1 of the 7 sampled" in caplog.text and "filling GRPO's questions with 3" in caplog.text
    again, _ = select_questions(records(10), rates, min_questions=4, seed=0)
    assert again == chosen  # seeded


def test_the_summary_counts_never_and_always_right_and_second_searches():
    summary = summarise([rate(0, 0, retried=1), rate(1, 2), rate(2, 4, retried=1)])
    assert summary == {
        "questions_sampled": 3,
        "mean_pass_rate": 6 / 12,
        "informative": 1,
        "never_right": 1,
        "always_right": 1,
        "second_search_share": 2 / 12,
    }


def test_a_dev_split_too_large_for_the_warm_start_and_grpo_is_refused_with_the_counts():
    check_question_budget(train_questions=254, warmstart_episodes=64, min_questions=12)
    with pytest.raises(PipelineError) as caught:
        check_question_budget(train_questions=70, warmstart_episodes=64, min_questions=12)
    message = str(caught.value)
    assert "70 training questions" in message and "64" in message and "12" in message
    assert "synthesize.dev_size" in message

"""Which training questions GRPO draws: those the starting policy likely answers right sometimes but not
always (the gold answer's log-probability in a band), never the warm start's demonstrations, filled up at
random (with a warning) when too few qualify."""

from __future__ import annotations

import logging

import pytest

from rezero.core.config import PassrateParams
from rezero.core.errors import PipelineError
from rezero.core.io import write_jsonl
from rezero.training.passrate import (
    candidate_questions,
    check_question_budget,
    grpo_questions,
    is_informative,
    select_questions,
)

BAND = {"min_logprob": -5.0, "max_logprob": -0.1}


def records(n: int) -> list[dict]:
    return [{"id": f"q{i}", "question": f"Question {i}?", "answer": f"a{i}"} for i in range(n)]


def score(i: int, logprob: float | None) -> dict:
    return {"id": f"q{i}", "answer_logprob": logprob, "retry": False}


@pytest.mark.parametrize(
    ("logprob", "informative"),
    [(None, False), (-12.0, False), (-5.0, True), (-1.3, True), (-0.1, True), (-0.02, False)],
)
def test_a_question_is_informative_only_inside_the_band(logprob, informative):
    assert is_informative(score(0, logprob), **BAND) is informative


def test_demonstrated_questions_are_never_candidates():
    assert [r["id"] for r in candidate_questions(records(5), {"q1", "q3"})] == ["q0", "q2", "q4"]


def test_only_questions_in_the_band_are_chosen():
    scores = [score(0, -9.0), score(1, -2.0), score(2, -0.01), score(3, -4.5), score(4, None)]
    chosen, info = select_questions(records(8), scores, **BAND, min_questions=2, seed=0)
    assert [r["id"] for r in chosen] == ["q1", "q3"]
    assert info == {"candidates": 8, "scored": 5, "informative": 2, "fallback": False, "questions": 2}


def test_too_few_qualifying_questions_fill_up_at_random_with_a_warning(caplog):
    scores = [score(i, -20.0) for i in range(6)] + [score(6, -1.0)]
    with caplog.at_level(logging.WARNING, logger="rezero.training.passrate"):
        chosen, info = select_questions(records(10), scores, **BAND, min_questions=4, seed=0)
    assert chosen[0]["id"] == "q6" and len(chosen) == 4 and len({r["id"] for r in chosen}) == 4
    assert info["fallback"] and info["informative"] == 1 and info["questions"] == 4
    assert "only 1 of the 7 scored" in caplog.text and "filling GRPO's questions with 3" in caplog.text
    again, _ = select_questions(records(10), scores, **BAND, min_questions=4, seed=0)
    assert again == chosen  # seeded


def test_a_dev_split_too_large_for_the_warm_start_and_grpo_is_refused_with_the_counts():
    check_question_budget(train_questions=254, warmstart_episodes=64, min_questions=12)
    with pytest.raises(PipelineError) as caught:
        check_question_budget(train_questions=70, warmstart_episodes=64, min_questions=12)
    message = str(caught.value)
    assert "70 training questions" in message and "64" in message and "12" in message
    assert "synthesize.dev_size" in message


def test_grpo_draws_from_the_band_and_at_least_a_steps_worth(tmp_path):
    scores = tmp_path / "passrate.jsonl"
    write_jsonl(scores, [score(0, -9.0), score(1, -2.0), score(2, -3.0), score(3, -4.5)])
    chosen, info = grpo_questions(records(6), scores, PassrateParams(min_questions=2), questions_per_step=2)
    assert [r["id"] for r in chosen] == ["q1", "q2", "q3"] and not info["fallback"]
    filled, info = grpo_questions(records(6), scores, PassrateParams(min_questions=2), questions_per_step=5)
    assert info["fallback"] and len(filled) == 5 and [r["id"] for r in filled[:3]] == ["q1", "q2", "q3"]


def test_without_the_passrate_stage_grpo_draws_from_every_candidate_and_reads_no_scores(tmp_path):
    chosen, info = grpo_questions(
        records(4), tmp_path / "missing.jsonl", PassrateParams(enabled=False), questions_per_step=2
    )
    assert [r["id"] for r in chosen] == ["q0", "q1", "q2", "q3"] and info == {"candidates": 4}

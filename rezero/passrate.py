"""Which training questions can teach GRPO anything about correctness: the starting policy's pass rates.

GRPO learns from the differences between the rollouts of one question. A question the warm-started model
never answers correctly (or always does) gives the correctness reward no variance inside its group, so that
step trains on the side rewards alone (format, retry, em_chunk, strategy, diversity). Drawn at random, most
training questions are never answered correctly by the warm start.

So the `passrate` stage samples the policy GRPO starts from (the warm start) `samples` times on a seeded
subset of the training questions, at the training temperature, with the training agent loop and judge, and
records how many runs each question got right. `train` then draws its questions from those answered right
sometimes but not always (`select_questions`), the estimate DAPO's dynamic sampling makes online, made once
here and shared by every variant and seed (DVC caches the stage). Questions the warm start demonstrated are
left out: GRPO should generalise, not replay the demonstrations.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from rezero.agent import SearchEnvironment, run_episodes
from rezero.errors import PipelineError
from rezero.judges import Judge

log = logging.getLogger(__name__)


def check_question_budget(train_questions: int, warmstart_episodes: int, min_questions: int) -> None:
    """Refuse a training split too small for the warm start's demonstrations plus GRPO's fewest questions
    (they never overlap), naming the counts."""
    if train_questions < warmstart_episodes + min_questions:
        raise PipelineError(
            f"the training split has {train_questions} training questions, fewer than the warm start's "
            f"{warmstart_episodes} demonstrations (warmstart.episodes) plus GRPO's {min_questions} "
            "(passrate.min_questions). Lower synthesize.dev_size or warmstart.episodes."
        )


def candidate_questions(records: Sequence[dict], demonstrated: set[str]) -> list[dict]:
    """The training questions GRPO may use: all but those the warm start demonstrated."""
    return [r for r in records if r["id"] not in demonstrated]


def sample_pass_rates(
    model: Any,
    tokenizer: Any,
    env: SearchEnvironment,
    records: Sequence[dict],
    judge: Judge,
    *,
    samples: int,
    temperature: float,
    batch_questions: int,
) -> list[dict[str, Any]]:
    """`samples` sampled episodes per record, `batch_questions` records per batch; per record its id, the
    runs judged correct, the runs, and the runs that searched twice or more."""
    from tqdm import tqdm

    rows = []
    batches = range(0, len(records), batch_questions)
    for start in tqdm(batches, desc="sampling pass rates", unit="batch"):
        batch = records[start : start + batch_questions]
        questions = [r["question"] for r in batch for _ in range(samples)]
        episodes = run_episodes(model, tokenizer, env, questions, temperature=temperature)
        for i, record in enumerate(batch):
            mine = episodes[i * samples : (i + 1) * samples]
            rows.append(
                {
                    "id": record["id"],
                    "correct": sum(
                        t.answer is not None and judge(record["question"], t.answer, record["answer"])
                        for t in mine
                    ),
                    "samples": samples,
                    "retried": sum(len(t.queries) >= 2 for t in mine),
                }
            )
    return rows


def is_informative(row: dict[str, Any]) -> bool:
    """Answered right in some runs and wrong in others: the pass rate is strictly between 0 and 1."""
    return 0 < row["correct"] < row["samples"]


def select_questions(
    candidates: Sequence[dict], rates: Sequence[dict[str, Any]], min_questions: int, seed: int
) -> tuple[list[dict], dict[str, Any]]:
    """GRPO's questions: the candidates whose sampled pass rate is strictly between 0 and 1. When fewer than
    `min_questions` qualify, the rest is filled with other candidates drawn at random (seeded), with a
    warning. Returns the questions and what was chosen (counts and whether it fell back)."""
    informative = {row["id"] for row in rates if is_informative(row)}
    chosen = [r for r in candidates if r["id"] in informative]
    info: dict[str, Any] = {
        "candidates": len(candidates),
        "sampled": len(rates),
        "informative": len(chosen),
        "fallback": len(chosen) < min_questions,
    }
    if info["fallback"]:
        others = [r for r in candidates if r["id"] not in informative]
        random.Random(seed).shuffle(others)
        chosen += others[: max(0, min_questions - len(chosen))]
        log.warning(
            "only %d of the %d sampled training questions have a pass rate strictly between 0 and 1 (below "
            "passrate.min_questions = %d): filling GRPO's questions with %d drawn at random, whose groups "
            "mostly score correctness alike",
            info["informative"],
            len(rates),
            min_questions,
            len(chosen) - info["informative"],
        )
    info["questions"] = len(chosen)
    return chosen, info


def summarise(rates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the stage measured: questions sampled, their mean pass rate, how many are informative (and
    never or always right), and the share of sampled runs that searched twice."""
    runs = sum(row["samples"] for row in rates) or 1
    return {
        "questions_sampled": len(rates),
        "mean_pass_rate": sum(row["correct"] for row in rates) / runs,
        "informative": sum(is_informative(row) for row in rates),
        "never_right": sum(row["correct"] == 0 for row in rates),
        "always_right": sum(row["correct"] == row["samples"] for row in rates),
        "second_search_share": sum(row["retried"] for row in rates) / runs,
    }

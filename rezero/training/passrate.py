"""Which training questions can teach GRPO anything about correctness: the starting policy's pass rates.

GRPO learns from the differences between the rollouts of one question. A question the warm-started model
never answers correctly (or always does) gives the correctness reward no variance inside its group, so that
step trains on the side rewards alone (format, retry, em_chunk, strategy, diversity). Drawn at random, most
training questions are never answered correctly by the warm start.

Sampling the policy several times per question measures its pass rate directly but costs minutes per few
dozen questions on a CPU. The `passrate` stage instead scores every candidate question with one forward pass:
the log-probability the policy gives the gold answer after the expert's own episode (the question's words
searched, or a retry when those results miss it, then "Based on result N, ...";
rezero/episode/demonstrations.py).
Measured against sampled episodes (benchmarks/passrate.py, docs/results.md), questions in a band of that
log-probability are mostly answered right sometimes but not always; those far below it almost never.
`train` then draws its questions from that band (`select_questions`), the estimate DAPO's dynamic sampling
makes online, made once here and shared by every variant and seed (DVC caches the stage). Questions the warm
start demonstrated are left out: GRPO should generalise, not replay the demonstrations.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rezero.core.config import PassrateParams
from rezero.core.errors import PipelineError
from rezero.core.io import read_jsonl
from rezero.episode.agent import ChatTemplate, SearchEnvironment, Trajectory
from rezero.episode.demonstrations import expert_episode

log = logging.getLogger(__name__)
ANSWER_OPEN = "<answer>"


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


def expert_for(record: dict, template: ChatTemplate, env: SearchEnvironment, seed: int) -> Trajectory | None:
    """The episode the warm start was taught to play for `record`: one search, or a retry when the first
    results miss the answer; None when neither shows it."""
    rng = random.Random(f"{seed}:{record['id']}")
    return expert_episode(record, template, env, rng) or expert_episode(
        record, template, env, rng, retry=True
    )


def answer_logprob(model: Any, template: ChatTemplate, episode: Trajectory) -> float:
    """The log-probability `model` gives the answer it is taught to write, after the episode's searches,
    results and answer think: the tokens after `<answer>` in the last turn, to its end."""
    import torch

    ids = episode.prompt_ids + episode.completion_ids
    mask = [0] * len(episode.prompt_ids) + episode.env_mask
    end = max(i for i, own in enumerate(mask) if own)  # the last turn's last sampled-kind token
    start = end
    while mask[start - 1]:
        start -= 1
    turn = ids[start : end + 1]
    opened = next(i for i in range(len(turn)) if ANSWER_OPEN in template.tokenizer.decode(turn[: i + 1]))
    with torch.no_grad():
        logits = model(torch.tensor([ids[: end + 1]])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    positions = range(start + opened + 1, end + 1)
    return float(sum(logprobs[p - 1, ids[p]] for p in positions))


def score_questions(
    model: Any, tokenizer: Any, env: SearchEnvironment, records: Sequence[dict], seed: int
) -> list[dict[str, Any]]:
    """Per record: its id and the answer's log-probability under `model` after the expert episode (None
    when no expert episode shows the answer), and whether that episode retried."""
    from tqdm import tqdm

    template = ChatTemplate(tokenizer, env.params.worked_example)
    rows = []
    for record in tqdm(records, desc="scoring training questions", unit="question"):
        episode = expert_for(record, template, env, seed)
        rows.append(
            {
                "id": record["id"],
                "answer_logprob": None
                if episode is None
                else round(answer_logprob(model, template, episode), 4),
                "retry": episode is not None and len(episode.queries) > 1,
            }
        )
    return rows


def is_informative(row: dict[str, Any], min_logprob: float, max_logprob: float) -> bool:
    """Likely answered right sometimes but not always: the gold answer's log-probability in the band."""
    value = row.get("answer_logprob")
    return value is not None and min_logprob <= value <= max_logprob


def select_questions(
    candidates: Sequence[dict],
    scores: Sequence[dict[str, Any]],
    *,
    min_logprob: float,
    max_logprob: float,
    min_questions: int,
    seed: int,
) -> tuple[list[dict], dict[str, Any]]:
    """GRPO's questions: the candidates whose answer log-probability is in [min_logprob, max_logprob]. When
    fewer than `min_questions` qualify, the rest is filled with other candidates drawn at random (seeded),
    with a warning. Returns the questions and what was chosen (counts and whether it fell back)."""
    informative = {row["id"] for row in scores if is_informative(row, min_logprob, max_logprob)}
    chosen = [r for r in candidates if r["id"] in informative]
    info: dict[str, Any] = {
        "candidates": len(candidates),
        "scored": len(scores),
        "informative": len(chosen),
        "fallback": len(chosen) < min_questions,
    }
    if info["fallback"]:
        others = [r for r in candidates if r["id"] not in informative]
        random.Random(seed).shuffle(others)
        chosen += others[: max(0, min_questions - len(chosen))]
        log.warning(
            "only %d of the %d scored training questions are likely right sometimes but not always (answer "
            "log-probability in [%g, %g]; passrate.min_questions = %d): filling GRPO's questions with %d "
            "drawn at random, whose groups mostly score correctness alike",
            info["informative"],
            len(scores),
            min_logprob,
            max_logprob,
            min_questions,
            len(chosen) - info["informative"],
        )
    info["questions"] = len(chosen)
    return chosen, info


def grpo_questions(
    candidates: Sequence[dict], scores: Path, passrate: PassrateParams, questions_per_step: int
) -> tuple[list[dict], dict[str, Any]]:
    """The questions GRPO draws from: with `passrate.enabled`, the candidates in the band of `scores` (the
    `passrate` stage's file), at least a step's worth (`select_questions`); otherwise every candidate."""
    if not passrate.enabled:
        return list(candidates), {"candidates": len(candidates)}
    return select_questions(
        candidates,
        read_jsonl(scores),
        min_logprob=passrate.min_logprob,
        max_logprob=passrate.max_logprob,
        min_questions=max(passrate.min_questions, questions_per_step),
        seed=passrate.seed,
    )

"""Does the `passrate` stage's one-pass score predict the warm start's sampled pass rate? At what cost?

For N training questions drawn at random (never the warm start's demonstrations), it samples K full episodes
from the warm-started model at the training temperature (the training agent loop, index and correctness
reward) and computes the stage's score, the gold answer's log-probability after the expert episode
(rezero/training/passrate.py). It prints, for bands of the score, how many questions fall in them, how many
of those
had a sampled pass rate strictly between 0 and 1 (precision), and the expected share of 8-rollout groups
whose correctness would vary, 1 - (1-p)^8 - p^8, against questions drawn at random; the seconds each measure
took; the sampled second-search share; and this machine's fp32 matmul rate. `--json` writes every row.

    python benchmarks/passrate.py --questions 48 --samples 8 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from rezero.core.runtime import configure_environment, matmul_gflops, setup_logging

BANDS = (-12.0, -8.0, -6.0, -5.0, -4.0, -3.0)  # lower bounds tried; the upper bound is params' max_logprob


def variance_chance(p: float, group: int = 8) -> float:
    """The chance a group of `group` rollouts of a question with pass rate p holds both outcomes."""
    return 1 - (1 - p) ** group - p**group


def sample_pass_rates(
    model: Any,
    tokenizer: Any,
    env: Any,
    records: list[dict],
    rows: list[dict],
    reward: Any,
    temperature: float,
    args: argparse.Namespace,
) -> int:
    """Each question's sampled pass rate into its row (`args.samples` episodes, `args.batch` questions at a
    time); the number of sampled episodes that searched twice."""
    from rezero.episode.agent import run_episodes

    retried = 0
    for first in range(0, len(records), args.batch):
        batch = records[first : first + args.batch]
        questions = [r["question"] for r in batch for _ in range(args.samples)]
        episodes = run_episodes(model, tokenizer, env, questions, temperature=temperature)
        for i, record in enumerate(batch):
            mine = episodes[i * args.samples : (i + 1) * args.samples]
            right = sum(reward.score(t.turns, record["question"], record["answer"]) > 0 for t in mine)
            rows[first + i]["pass_rate"] = right / args.samples
            retried += sum(len(t.queries) >= 2 for t in mine)
    return retried


def print_bands(rows: list[dict], max_logprob: float) -> None:
    """For random questions and each band of the score: how many, how many in (0, 1), the expected share of
    groups whose correctness varies."""

    def report(name: str, chosen: list[dict]) -> None:
        if not chosen:
            return
        mixed = sum(0 < r["pass_rate"] < 1 for r in chosen)
        chance = sum(variance_chance(r["pass_rate"]) for r in chosen) / len(chosen)
        print(f"{name:28s} {len(chosen):4d} {mixed:6d} {mixed / len(chosen):10.0%} {chance:14.0%}")

    print(f"{'questions':28s} {'n':>4s} {'in (0,1)':>6s} {'precision':>10s} {'group varies':>14s}")
    report("all drawn at random", rows)
    scored = [r for r in rows if r["answer_logprob"] is not None]
    for low in BANDS:
        report(
            f"log-prob in [{low:g}, {max_logprob:g}]",
            [r for r in scored if low <= r["answer_logprob"] <= max_logprob],
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=48, help="training questions drawn (seeded)")
    parser.add_argument("--samples", type=int, default=8, help="sampled episodes per question")
    parser.add_argument("--batch", type=int, default=6, help="questions per sampling batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every question's row here")
    args = parser.parse_args()
    configure_environment()
    setup_logging("WARNING")

    import torch

    from rezero.core.config import load_config
    from rezero.core.io import read_jsonl
    from rezero.episode.agent import SearchEnvironment
    from rezero.episode.judges import make_judge
    from rezero.episode.rewards import make_correctness_reward
    from rezero.external.models import apply_adapter, load_model, load_tokenizer
    from rezero.retrieval import open_retriever
    from rezero.training.checkpoints import demonstrated_questions
    from rezero.training.passrate import candidate_questions, score_questions

    config = load_config()
    train, agent, passrate = config.train, config.agent, config.passrate
    reward = make_correctness_reward(make_judge(config.rewards))
    tokenizer = load_tokenizer(train.model)
    model = apply_adapter(load_model(train.model, train.dtype), "models/warmstart").merge_and_unload().eval()
    env = SearchEnvironment(open_retriever("data/index"), agent, seed=args.seed)
    candidates = candidate_questions(
        read_jsonl("data/qa/train.jsonl"), demonstrated_questions("models/warmstart")
    )
    records = random.Random(args.seed).sample(candidates, args.questions)

    started = time.perf_counter()
    rows = score_questions(model, tokenizer, env, records, passrate.seed)
    scoring_s = time.perf_counter() - started
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    retried = sample_pass_rates(model, tokenizer, env, records, rows, reward, train.temperature, args)
    sampling_s = time.perf_counter() - started
    matmul = matmul_gflops()

    print_bands(rows, passrate.max_logprob)
    episodes = len(rows) * args.samples
    print(
        f"\nmean sampled pass rate {sum(r['pass_rate'] for r in rows) / len(rows):.3f}; second searches "
        f"{retried} of {episodes} sampled episodes ({retried / episodes:.1%})\n"
        f"scoring: {scoring_s:.1f} s for {len(rows)} questions ({scoring_s / len(rows):.2f} s each); "
        f"sampling: {sampling_s:.1f} s for {episodes} episodes ({sampling_s / episodes:.2f} s each); "
        f"fp32 matmul {matmul:.0f} GFLOP/s"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

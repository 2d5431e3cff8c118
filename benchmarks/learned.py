"""Did GRPO learn what it was rewarded for? The warm start (step 0) against one GRPO checkpoint, sampled.

GRPO raises the chance that a *sampled* episode (at the training temperature) is right on the questions it
trained on; the `evaluate` stage measures one *greedy* episode per question on other questions (dev, test).
A flat greedy test curve can therefore mean three different things: GRPO did not raise the sampled accuracy
even on its own questions (the optimisation fails), it did there but not on new questions (it does not
generalise), or it did on new questions too but the greedy answer did not move (the measure misses it).

For both models this plays, on GRPO's question pool (the `passrate` stage's band, as `train` draws it), on dev
and on test: one greedy episode and `--samples` sampled episodes per question at `train.temperature`, through
the project's agent loop, index and correctness reward (`rezero/evaluation/scoring.py` `run_policy`, the same
seed for both models). It prints, per question set, the greedy and mean sampled accuracy of each model, the
paired difference of the sampled accuracy (checkpoint − step 0) with its bootstrap interval over questions and
a sign-flip permutation p (rezero/evaluation/statistics.py), the sampled episodes' answered and second-search
shares, the seconds taken and this machine's fp32 matmul rate. `--json` writes every question's outcomes.

The pool is every question `train` could draw; GRPO saw all of them only when `train.max_steps` ×
`train.questions_per_step` reaches the pool's size (printed).

    python benchmarks/learned.py checkpoints/checkpoint-35 --samples 4 [--sets grpo_pool] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from rezero.core.runtime import configure_environment, matmul_gflops, setup_logging


def question_sets(config: Any, warmstart: Path) -> dict[str, list[dict]]:
    """GRPO's question pool (as `train` draws it), dev and test."""
    from rezero.core.io import read_jsonl
    from rezero.training.checkpoints import demonstrated_questions
    from rezero.training.passrate import candidate_questions, grpo_questions

    pool, _ = grpo_questions(
        candidate_questions(read_jsonl("data/qa/train.jsonl"), demonstrated_questions(warmstart)),
        Path("data/passrate.jsonl"),
        config.passrate,
        config.train.questions_per_step,
    )
    return {
        "grpo_pool": pool,
        "dev": read_jsonl("data/qa/dev.jsonl"),
        "test": read_jsonl("data/qa/test.jsonl"),
    }


def play(config: Any, adapter: Path, records: list[dict], samples: int) -> Any:
    """One greedy and `samples` sampled episodes per record from the base model with `adapter` merged in."""
    from rezero.episode.agent import SearchEnvironment
    from rezero.episode.rewards import reward_funcs_for
    from rezero.evaluation.scoring import run_policy
    from rezero.external.models import load_model, load_tokenizer
    from rezero.retrieval import open_retriever

    train = config.train
    params = dataclasses.replace(config.evaluate, samples=samples, temperature=train.temperature)
    env = SearchEnvironment(open_retriever("data/index"), config.agent, seed=params.seed)
    model = load_model(train.model, train.dtype, adapter).eval()
    return run_policy(
        model, load_tokenizer(train.model), env, records, reward_funcs_for(config.rewards), params
    )


def per_question(run: Any) -> dict[str, list[float]]:
    """Each question's greedy outcome, sampled accuracy, and the sampled episodes' answered and retried
    shares."""
    k = len(run.sampled)

    def share(test: Any) -> list[float]:
        return [sum(test(episodes[i]) for episodes in run.sampled) / k for i in range(len(run.records))]

    return {
        "greedy": list(run.scores["correctness"]),
        "sampled": [sum(correct[i] for correct in run.sampled_correct) / k for i in range(len(run.records))],
        "answered": share(lambda t: t.answer is not None),
        "retried": share(lambda t: len(t.queries) >= 2),
    }


def report(name: str, step0: dict[str, list[float]], trained: dict[str, list[float]]) -> dict[str, Any]:
    """The table rows of one question set and the paired difference of sampled accuracy."""
    from rezero.evaluation import statistics

    n = len(step0["sampled"])
    difference = statistics.paired_difference(step0["sampled"], trained["sampled"])
    p = statistics.paired_permutation_p({0: step0["sampled"]}, {0: trained["sampled"]})
    rows = {
        label: {key: sum(v) / n for key, v in values.items()}
        for label, values in (("step 0", step0), ("GRPO", trained))
    }
    print(f"\n{name} ({n} questions)")
    print(f"{'model':8s} {'greedy':>8s} {'sampled':>8s} {'answered':>9s} {'2nd search':>11s}")
    for label, row in rows.items():
        print(
            f"{label:8s} {row['greedy']:8.1%} {row['sampled']:8.1%} {row['answered']:9.1%} "
            f"{row['retried']:11.1%}"
        )
    print(
        f"sampled accuracy, GRPO − step 0: {difference.estimate * 100:+.1f} points "
        f"[{difference.low * 100:+.1f}, {difference.high * 100:+.1f}], permutation p {p:.3f}"
    )
    return {"questions": n, **rows, "sampled_difference": dataclasses.asdict(difference), "p": p}


def report_sets(sets: dict[str, list[dict]], outcomes: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """`report` for each question set, cut from the outcomes of all sets played in one batch."""
    reported, start = {}, 0
    for name, part in sets.items():
        stop = start + len(part)
        step0 = {key: values[start:stop] for key, values in outcomes["step 0"].items()}
        trained = {key: values[start:stop] for key, values in outcomes["GRPO"].items()}
        reported[name] = report(name, step0, trained)
        reported[name].update(ids=[r["id"] for r in part], outcomes={"step 0": step0, "GRPO": trained})
        start = stop
    return reported


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path, help="a GRPO checkpoint folder (checkpoints/checkpoint-N)")
    parser.add_argument("--warmstart", type=Path, default=Path("models/warmstart"), help="step 0's adapter")
    parser.add_argument("--samples", type=int, default=4, help="sampled episodes per question and model")
    parser.add_argument("--limit", type=int, help="at most this many questions per set")
    parser.add_argument(
        "--sets",
        default="grpo_pool,dev,test",
        help="question sets played, comma-separated (of grpo_pool,dev,test)",
    )
    parser.add_argument("--json", type=Path, help="also write every question's outcomes here")
    args = parser.parse_args()
    if min(args.samples, args.limit or 2) < 2:  # a rate needs 2 samples, an interval 2 questions
        parser.error(f"--samples and --limit must be at least 2, got {args.samples} and {args.limit}")
    configure_environment()
    setup_logging("WARNING")

    from rezero.core.config import load_config
    from rezero.training.checkpoints import check_adapters

    check_adapters([args.warmstart, args.checkpoint])  # before an hour of step 0's episodes
    config = load_config()
    sets = question_sets(config, args.warmstart)
    pool = len(sets["grpo_pool"])  # before --limit and --sets
    chosen = args.sets.split(",")
    if unknown := set(chosen) - set(sets):
        parser.error(f"--sets: unknown {', '.join(sorted(unknown))}; choose from {', '.join(sets)}")
    sets = {name: sets[name][: args.limit] for name in chosen}
    records = [r for name in sets for r in sets[name]]
    matmul_before = matmul_gflops()
    started = time.perf_counter()
    outcomes = {}
    for label, adapter in (("step 0", args.warmstart), ("GRPO", args.checkpoint)):
        outcomes[label] = per_question(play(config, adapter, records, args.samples))
    seconds = time.perf_counter() - started
    matmul_after = matmul_gflops()

    seen = config.train.max_steps * config.train.questions_per_step
    print(
        f"{args.checkpoint} against {args.warmstart}; {args.samples} samples at temperature "
        f"{config.train.temperature}; GRPO's pool {pool} questions, max_steps × questions_per_step = {seen}"
    )
    result = {
        "checkpoint": str(args.checkpoint),
        "samples": args.samples,
        "sets": report_sets(sets, outcomes),
    }
    episodes = 2 * len(records) * (args.samples + 1)
    print(
        f"\n{episodes} episodes in {seconds:.0f} s ({seconds / episodes:.2f} s each); "
        f"fp32 matmul {matmul_before:.0f} GFLOP/s before, {matmul_after:.0f} after"
    )
    if args.json:
        result.update(seconds=seconds, matmul_before=matmul_before, matmul_after=matmul_after)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Evaluate the base model and every checkpoint with the training agent loop, then find the peak.

Accuracy is the correctness reward (the same judge as training) of a greedy episode per test question.
Optionally `samples` sampled episodes per question give pass@k (any correct) and maj@k (the most common
normalised answer is correct). GRPO runs peak then decline (rezero.md), so the best checkpoint is the most
accurate one (earliest on ties) and overfitting is flagged when the final one falls below it by a margin.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rezero.agent import SearchEnvironment, Trajectory, run_episodes
from rezero.config import EvaluateParams
from rezero.judges import normalize_answer
from rezero.rewards import REWARD_NAMES

log = logging.getLogger(__name__)


@dataclass
class Peak:
    best_step: int
    best_accuracy: float
    final_step: int
    final_accuracy: float
    overfitting: bool


def reward_columns(trajectories: list[Trajectory], records: list[dict]) -> dict[str, Any]:
    """The keyword arguments TRL would pass the rewards for these episodes."""
    return {
        "turns": [t.turns for t in trajectories],
        "queries": [t.queries for t in trajectories],
        "retrieved": [t.retrieved for t in trajectories],
        "question": [r["question"] for r in records],
        "answer": [r["answer"] for r in records],
        "chunk_id": [r.get("chunk_id") or "" for r in records],
        "chunk_text": [r.get("chunk_text") or "" for r in records],
    }


def score_episodes(
    trajectories: list[Trajectory], records: list[dict], reward_funcs: list
) -> dict[str, list[float]]:
    """Each reward's score for each episode, by reward name."""
    columns = reward_columns(trajectories, records)
    completions = [t.turns[-1] if t.turns else "" for t in trajectories]
    return {
        name: list(func(completions, **columns))
        for name, func in zip(REWARD_NAMES, reward_funcs, strict=True)
    }


def episode_metrics(trajectories: list[Trajectory], scores: dict[str, list[float]]) -> dict[str, float]:
    n = len(trajectories)
    correct = scores["correctness"]
    metrics = {
        "accuracy": sum(correct) / n,
        "searches_per_question": sum(len(t.queries) for t in trajectories) / n,
        "answered_share": sum(t.answer is not None for t in trajectories) / n,
        # Answered after two or more searches: the behaviour the retry reward is meant to teach.
        "retry_share": sum(t.answer is not None and len(t.queries) >= 2 for t in trajectories) / n,
        "em_chunk_rate": sum(scores["em_chunk"]) / n,
    }
    metrics.update({f"reward/{name}": sum(values) / n for name, values in scores.items()})
    return metrics


def evaluate_policy(
    model: Any,
    tokenizer: Any,
    env: SearchEnvironment,
    records: list[dict],
    reward_funcs: list,
    params: EvaluateParams,
) -> tuple[dict[str, float], list[Trajectory], dict[str, list[float]]]:
    """Greedy accuracy and behaviour on `records`; pass@k and maj@k too when `params.samples` > 1."""
    import torch

    questions = [r["question"] for r in records]
    greedy = run_episodes(model, tokenizer, env, questions, greedy=True)
    scores = score_episodes(greedy, records, reward_funcs)
    metrics = episode_metrics(greedy, scores)
    if params.samples > 1:
        torch.manual_seed(params.seed)
        runs = []
        for _ in range(params.samples):
            sampled = run_episodes(model, tokenizer, env, questions, temperature=params.temperature)
            runs.append((sampled, score_episodes(sampled, records, reward_funcs)["correctness"]))
        metrics.update(sampled_metrics(runs, records, reward_funcs[0], params.samples))
    return metrics, greedy, scores


def sampled_metrics(runs: list, records: list[dict], correctness, k: int) -> dict[str, float]:
    """pass@k: some sampled run is correct. maj@k: the most common normalised answer is judged correct."""
    n = len(records)
    passed = sum(any(run[1][i] for run in runs) for i in range(n))
    majority_correct = 0
    for i, record in enumerate(records):
        answers = [run[0][i].answer for run in runs if run[0][i].answer]
        if not answers:
            continue
        top = Counter(normalize_answer(a) for a in answers).most_common(1)[0][0]
        chosen = next(a for a in answers if normalize_answer(a) == top)
        turn = f"<think>majority</think>\n<answer>{chosen}</answer>"
        majority_correct += correctness(
            [turn], turns=[[turn]], answer=[record["answer"]], question=[record["question"]]
        )[0]
    return {f"pass@{k}": passed / n, f"maj@{k}": majority_correct / n}


def find_peak(accuracy_by_step: dict[int, float], margin: float) -> Peak:
    """The most accurate checkpoint (earliest on ties); overfitting when the last is below it by > margin."""
    if not accuracy_by_step:
        raise ValueError("no evaluated checkpoints")
    steps = sorted(accuracy_by_step)
    best = max(steps, key=lambda s: (accuracy_by_step[s], -s))
    final = steps[-1]
    return Peak(
        best_step=best,
        best_accuracy=accuracy_by_step[best],
        final_step=final,
        final_accuracy=accuracy_by_step[final],
        overfitting=accuracy_by_step[final] < accuracy_by_step[best] - margin,
    )


def sample_rows(
    step: int, trajectories: list[Trajectory], records: list[dict], scores: dict, limit: int
) -> list[dict]:
    """A few episodes per checkpoint, readable: question, gold, each turn and injected result, the scores."""
    rows = []
    for i, (trajectory, record) in enumerate(zip(trajectories, records, strict=True)):
        if i >= limit:
            break
        rows.append(
            {
                "step": step,
                "question": record["question"],
                "gold": record["answer"],
                "answer": trajectory.answer,
                "queries": trajectory.queries,
                "stop_reason": trajectory.stop_reason,
                "messages": trajectory.messages(),
                "rewards": {name: values[i] for name, values in scores.items()},
            }
        )
    return rows


def checkpoint_step(folder: Path) -> int:
    return int(Path(folder).name.rsplit("-", 1)[-1])


def evaluate_checkpoints(
    model_spec: str,
    dtype: str,
    checkpoints: list[Path],
    env: SearchEnvironment,
    records: list[dict],
    reward_funcs: list,
    params: EvaluateParams,
    warmstart: Path | None = None,
) -> tuple[dict[int, dict[str, float]], dict[str, float], list[dict]]:
    """The raw model, the warm start (step 0) and each checkpoint: metrics by step, the raw model's
    metrics, and sample episodes. Without a warm start, step 0 is the raw model itself.

    The base model is loaded once; each adapter is attached to it, merged into one reusable copy
    (`MergedCopy`, the weights rollouts sample from) and detached again."""
    from tqdm import tqdm

    from rezero.models import MergedCopy, apply_adapter, load_model, load_tokenizer

    tokenizer = load_tokenizer(model_spec)
    base_model, merged = load_model(model_spec, dtype).eval(), MergedCopy(model_spec, dtype)
    models = [("base", None)] + ([("warmstart", warmstart)] if warmstart else [])
    models += [(f"checkpoint-{checkpoint_step(c)}", c) for c in checkpoints]
    by_label, samples = {}, []
    for label, adapter in tqdm(models, desc="evaluating checkpoints", unit="model"):
        step = checkpoint_step(adapter) if label.startswith("checkpoint-") else 0
        model = base_model
        if adapter is not None:
            with_adapter = apply_adapter(base_model, adapter)
            model = merged.refresh(with_adapter)
            base_model = with_adapter.unload()  # the LoRA layers out again, base weights untouched
        metrics, trajectories, scores = evaluate_policy(model, tokenizer, env, records, reward_funcs, params)
        by_label[label] = (step, metrics)
        samples += [
            {"model": label, **row}
            for row in sample_rows(step, trajectories, records, scores, params.sample_trajectories)
        ]
        log.info(
            "%s (step %d): accuracy %.3f, %.2f searches/question, retry share %.3f, answered %.3f",
            label,
            step,
            metrics["accuracy"],
            metrics["searches_per_question"],
            metrics["retry_share"],
            metrics["answered_share"],
        )
    by_step = {
        step: metrics for label, (step, metrics) in by_label.items() if label != "base" or not warmstart
    }
    return by_step, by_label["base"][1], samples

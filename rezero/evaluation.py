"""Evaluate the base model and every checkpoint with the training agent loop, then find the peak.

Accuracy is the correctness reward (the same judge as training) of a greedy episode per test question.
Optionally `samples` sampled episodes per question give pass@k (any correct) and maj@k (the most common
normalised answer is correct). GRPO runs peak then decline (the ReZero paper, arXiv 2504.11001), so the best
checkpoint is the most accurate one (earliest on ties) and overfitting is flagged when the final one falls
below it by a margin.

`evaluate_training` is the `evaluate` stage's work: every checkpoint of a training scored, the results logged
into the training's MLflow run, the best checkpoint's adapter exported and registered.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rezero import tracking
from rezero.agent import SearchEnvironment, Trajectory, run_episodes
from rezero.checkpoints import CHECKPOINT_PREFIX, RUN_FILE, check_adapters, checkpoint_dirs, checkpoint_step
from rezero.config import AgentParams, EvaluateParams, RewardParams, TrackingParams, TrainParams
from rezero.errors import PipelineError
from rezero.figures import by_step_figure
from rezero.io import atomic_directory, read_json
from rezero.judges import normalize_answer
from rezero.retrieval import open_retriever
from rezero.rewards import reward_funcs_for, score_episodes
from rezero.traces import flush as flush_traces
from rezero.traces import log_episode_traces

log = logging.getLogger(__name__)
BY_STEP_FIGURE = "figures/by_step.png"  # in the training's MLflow run: accuracy and searches by step


@dataclass
class Peak:
    best_step: int
    best_accuracy: float
    final_step: int
    final_accuracy: float
    overfitting: bool


def episode_metrics(
    trajectories: list[Trajectory], scores: dict[str, list[float]], records: list[dict]
) -> dict[str, float]:
    """Accuracy and search behaviour; `em_chunk_rate` only when the QA names its gold chunks (a QA file
    without `chunk_text` cannot tell, and 0.0 would read as "never found")."""
    n = len(trajectories)
    correct = scores["correctness"]
    metrics = {
        "accuracy": sum(correct) / n,
        "searches_per_question": sum(len(t.queries) for t in trajectories) / n,
        "answered_share": sum(t.answer is not None for t in trajectories) / n,
        # Answered after two or more searches: the behaviour the retry reward is meant to teach.
        "retry_share": sum(t.answer is not None and len(t.queries) >= 2 for t in trajectories) / n,
    }
    if any(r.get("chunk_text") for r in records):
        metrics["em_chunk_rate"] = sum(scores["em_chunk"]) / n
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
    metrics = episode_metrics(greedy, scores, records)
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


def evaluate_checkpoints(
    model_spec: str,
    dtype: str,
    checkpoints: list[Path],
    env: SearchEnvironment,
    records: list[dict],
    reward_funcs: list,
    params: EvaluateParams,
    warmstart: Path | None = None,
    on_evaluated: Callable[[str, int, list[Trajectory], dict[str, list[float]]], None] | None = None,
) -> tuple[dict[int, dict[str, float]], dict[str, float], list[dict]]:
    """The raw model, the warm start (step 0) and each checkpoint: metrics by step, the raw model's
    metrics, and sample episodes. Without a warm start, step 0 is the raw model itself. `on_evaluated`
    gets each model's label, step, greedy episodes and their scores (the stage logs them as traces).

    The base model is loaded once; each adapter is attached to it, merged into one reusable copy
    (`MergedCopy`, the weights rollouts sample from) and detached again."""
    from tqdm import tqdm

    from rezero.models import MergedCopy, apply_adapter, load_model, load_tokenizer

    tokenizer = load_tokenizer(model_spec)
    base_model, merged = load_model(model_spec, dtype).eval(), MergedCopy(model_spec, dtype)
    models = [("base", None)] + ([("warmstart", warmstart)] if warmstart else [])
    models += [(f"{CHECKPOINT_PREFIX}{checkpoint_step(c)}", c) for c in checkpoints]
    by_label, samples = {}, []
    for label, adapter in tqdm(models, desc="evaluating checkpoints", unit="model"):
        step = checkpoint_step(adapter) if label.startswith(CHECKPOINT_PREFIX) else 0
        model = base_model
        if adapter is not None:
            with_adapter = apply_adapter(base_model, adapter)
            model = merged.refresh(with_adapter)
            base_model = with_adapter.unload()  # the LoRA layers out again, base weights untouched
        metrics, trajectories, scores = evaluate_policy(model, tokenizer, env, records, reward_funcs, params)
        by_label[label] = (step, metrics)
        if on_evaluated is not None:
            on_evaluated(label, step, trajectories, scores)
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


@dataclass
class EvaluationSetup:
    """The params sections the `evaluate` stage reads (profile overrides applied)."""

    evaluate: EvaluateParams
    agent: AgentParams
    rewards: RewardParams
    train: TrainParams
    tracking: TrackingParams


@dataclass
class Evaluation:
    summary: dict[str, Any]  # best step and accuracy, final accuracy, overfitting flag, registered version
    by_step: dict[int, dict[str, float]]
    samples: list[dict]


def evaluate_training(
    setup: EvaluationSetup,
    records: list[dict],
    index: Path,
    checkpoints_dir: Path,
    warmstart: Path | None,
    best_out: Path,
) -> Evaluation:
    """Score the raw model, the warm start and every checkpoint in `checkpoints_dir` on `records`; log it all
    into the training's MLflow run (its `run.json`), copy the best checkpoint's adapter to `best_out` and
    register it under `tracking.registered_model` and the variant's alias."""
    checkpoints = checkpoint_dirs(checkpoints_dir)
    if not checkpoints:
        raise PipelineError(f"{checkpoints_dir}: no checkpoint-<step> folders. Run `dvc repro train` first.")
    check_adapters(checkpoints)
    run = read_json(Path(checkpoints_dir) / RUN_FILE)
    tracking.connect(setup.tracking.experiment)
    reward_funcs = reward_funcs_for(setup.rewards)
    env = SearchEnvironment(open_retriever(index), setup.agent, seed=setup.evaluate.seed)

    evaluated: list[tuple[str, int, list[Trajectory], dict]] = []  # traced after scoring, not during it
    experiment = tracking.experiment_id(setup.tracking.experiment)
    by_step, base, samples = evaluate_checkpoints(
        setup.train.model,
        setup.train.dtype,
        checkpoints,
        env,
        records,
        reward_funcs,
        setup.evaluate,
        warmstart,
        on_evaluated=(lambda *episodes: evaluated.append(episodes))
        if setup.tracking.trace_evaluation
        else None,
    )
    started = time.perf_counter()
    for label, step, trajectories, scores in evaluated:
        tags = {"source": "evaluation", "step": step, "model": label, "variant": setup.rewards.variant}
        log_episode_traces(
            trajectories, records, scores, run_id=run["mlflow_run_id"], experiment_id=experiment, tags=tags
        )
    flush_traces()
    if evaluated:
        log.info(
            "%d episodes logged as traces in %.1f s",
            len(evaluated) * len(records),
            time.perf_counter() - started,
        )
    peak = find_peak({s: m["accuracy"] for s, m in by_step.items() if s > 0}, setup.evaluate.overfit_margin)
    summary = {
        "questions": len(records),
        "base_accuracy": base["accuracy"],  # the raw model
        "step0_accuracy": by_step[0]["accuracy"],  # the warm start (the raw model without one)
        **asdict(peak),
        "accuracy_by_step": {str(s): round(m["accuracy"], 4) for s, m in by_step.items()},
        "base": {k: round(v, 4) for k, v in base.items()},
    }
    log_evaluation(run["mlflow_run_id"], by_step, base, peak)
    label = f"{setup.rewards.variant}, seed {setup.train.seed}"
    figure = by_step_figure({label: by_step}, f"{label}: the test split by checkpoint")
    tracking.log_figure(run["mlflow_run_id"], figure, BY_STEP_FIGURE)
    best = next(c for c in checkpoints if c.name == f"{CHECKPOINT_PREFIX}{peak.best_step}")
    export_adapter(best, best_out)
    summary["registered_version"] = tracking.register_adapter(
        run["mlflow_run_id"], best_out, setup.tracking.registered_model, setup.tracking.alias, peak.best_step
    )
    return Evaluation(summary=summary, by_step=by_step, samples=samples)


def log_evaluation(
    run_id: str, by_step: dict[int, dict[str, float]], base: dict[str, float], peak: Peak
) -> None:
    """`eval/<metric>` by step, the raw model's as `eval/base/<metric>`, and the peak's at step 0."""
    for step, metrics in by_step.items():
        tracking.log_metrics(run_id, {f"eval/{k}": v for k, v in metrics.items()}, step=step)
    tracking.log_metrics(run_id, {f"eval/base/{k}": v for k, v in base.items()}, step=0)
    tracking.log_metrics(run_id, {f"eval/{k}": float(v) for k, v in asdict(peak).items()}, step=0)


def export_adapter(checkpoint: Path, out: Path) -> None:
    """The checkpoint's adapter files (`adapter_*`: a PEFT folder, as `rezero ask --checkpoint` loads) in
    `out`, replaced atomically: a failed copy leaves the previous adapter in place."""
    with atomic_directory(out) as tmp:
        for item in Path(checkpoint).glob("adapter_*"):
            shutil.copy2(item, tmp / item.name)

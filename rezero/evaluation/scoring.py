"""Evaluate the base model and every checkpoint with the training agent loop; choose on dev, report on test.

Accuracy is the correctness reward (the same judge as training) of a greedy episode per question.
Optionally `samples` sampled episodes per question give the mean sampled accuracy (the pass@1 estimate),
pass@k (any correct) and maj@k (the most common normalised answer is correct). GRPO runs peak then decline
(the ReZero paper, arXiv 2504.11001), so a checkpoint must be chosen: here on the dev split (the most
accurate, earliest on ties), with overfitting flagged when the final one falls below it by a margin; the
headline is that checkpoint's accuracy on the test split, which played no part in choosing it. The test
split's own peak is reported beside it as the paper's way of choosing (optimistic by construction).

Every accuracy comes with its Wilson interval, and the chosen checkpoint is compared with the warm start (step
0) question by question (rezero/evaluation/statistics.py): a paired bootstrap interval of the difference and
McNemar's exact p. Each question's outcome under each model is kept (`outcome_rows`) so experiments over seeds
and variants can be compared pairwise later.

`evaluate_training` is the `evaluate` stage's work: every checkpoint of a training scored, the results logged
into the training's MLflow run, the chosen checkpoint's adapter exported and registered.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rezero.core.config import AgentParams, EvaluateParams, RewardParams, TrackingParams, TrainParams
from rezero.core.errors import PipelineError
from rezero.core.io import atomic_directory, read_json
from rezero.episode.agent import ChatTemplate, SearchEnvironment, Trajectory, check_questions, run_episodes
from rezero.episode.answers import first_query_showing
from rezero.episode.judges import normalize_answer
from rezero.episode.rewards import reward_funcs_for, score_episodes
from rezero.episode.traces import flush as flush_traces
from rezero.episode.traces import log_episode_traces
from rezero.evaluation import statistics
from rezero.evaluation.comparison import outcomes_at
from rezero.evaluation.figures import by_step_figure
from rezero.external import tracking
from rezero.external.models import load_tokenizer
from rezero.retrieval import open_retriever
from rezero.training.checkpoints import (
    CHECKPOINT_PREFIX,
    RUN_FILE,
    check_adapters,
    checkpoint_dirs,
    checkpoint_step,
)

log = logging.getLogger(__name__)
BY_STEP_FIGURE = "figures/by_step.png"  # in the training's MLflow run: accuracy and searches by step
OUTCOMES_ARTIFACT = "evaluation/outcomes.jsonl"  # in the training's MLflow run: every question's outcome
SPLITS = ("dev", "test")  # checkpoints are chosen on dev and reported on test
QA_FIELDS = ("question", "answer")


@dataclass
class Peak:
    best_step: int
    best_accuracy: float
    final_step: int
    final_accuracy: float
    overfitting: bool


@dataclass
class PolicyRun:
    """One model's episodes on some questions: greedy, scored by every reward, and any sampled runs."""

    records: list[dict]
    episodes: list[Trajectory]
    scores: dict[str, list[float]]
    sampled: list[list[Trajectory]] = field(default_factory=list)  # runs x questions
    sampled_correct: list[list[float]] = field(default_factory=list)  # runs x questions

    def part(self, start: int, stop: int) -> PolicyRun:
        """The same run restricted to questions start..stop-1."""
        return PolicyRun(
            records=self.records[start:stop],
            episodes=self.episodes[start:stop],
            scores={name: values[start:stop] for name, values in self.scores.items()},
            sampled=[run[start:stop] for run in self.sampled],
            sampled_correct=[run[start:stop] for run in self.sampled_correct],
        )


def episode_metrics(
    trajectories: list[Trajectory], scores: dict[str, list[float]], records: list[dict]
) -> dict[str, float]:
    """Accuracy (with its Wilson interval) and search behaviour; `em_chunk_rate` only when the QA names its
    gold chunks (a QA file without `chunk_text` cannot tell, and 0.0 would read as "never found")."""
    n = len(trajectories)
    correct = scores["correctness"]
    low, high = statistics.wilson_interval(int(sum(correct)), n)
    metrics = {
        "accuracy": sum(correct) / n,
        "accuracy_low": low,
        "accuracy_high": high,
        "searches_per_question": sum(len(t.queries) for t in trajectories) / n,
        "answered_share": sum(t.answer is not None for t in trajectories) / n,
        # Answered after two or more searches: the behaviour the retry reward is meant to teach.
        "retry_share": sum(t.answer is not None and len(t.queries) >= 2 for t in trajectories) / n,
        # Searched again although earlier results already showed the gold answer: retries that cost answers.
        "search_after_shown_share": sum(
            searched_after_shown(t, r["answer"]) for t, r in zip(trajectories, records, strict=True)
        )
        / n,
    }
    if any(r.get("chunk_text") for r in records):
        metrics["em_chunk_rate"] = sum(scores["em_chunk"]) / n
    metrics.update({f"reward/{name}": sum(values) / n for name, values in scores.items()})
    return metrics


def run_policy(
    model: Any,
    tokenizer: Any,
    env: SearchEnvironment,
    records: list[dict],
    reward_funcs: list,
    params: EvaluateParams,
) -> PolicyRun:
    """A greedy episode per record, scored; and `params.samples` sampled runs when that is above 1."""
    import torch

    questions = [r["question"] for r in records]
    greedy = run_episodes(model, tokenizer, env, questions, greedy=True)
    run = PolicyRun(records, greedy, score_episodes(greedy, records, reward_funcs))
    if params.samples > 1:
        torch.manual_seed(params.seed)
        for _ in range(params.samples):
            sampled = run_episodes(model, tokenizer, env, questions, temperature=params.temperature)
            run.sampled.append(sampled)
            run.sampled_correct.append(score_episodes(sampled, records, reward_funcs)["correctness"])
    return run


def policy_metrics(run: PolicyRun, correctness: Callable) -> dict[str, float]:
    """Greedy accuracy and behaviour; with sampled runs also the mean sampled accuracy with its interval
    (the pass@1 estimate), pass@k and maj@k."""
    metrics = episode_metrics(run.episodes, run.scores, run.records)
    if run.sampled:
        metrics.update(sampled_metrics(run, correctness))
    return metrics


def sampled_metrics(run: PolicyRun, correctness: Callable) -> dict[str, float]:
    """Mean sampled accuracy (pass@1 estimate, with a bootstrap interval over questions); pass@k: some
    sampled run is correct; maj@k: the most common normalised answer is judged correct."""
    k, n = len(run.sampled), len(run.records)
    per_question = [sum(runs[i] for runs in run.sampled_correct) / k for i in range(n)]
    passed = sum(value > 0 for value in per_question)
    majority_correct = 0
    for i, record in enumerate(run.records):
        answers = [episodes[i].answer for episodes in run.sampled if episodes[i].answer]
        if not answers:
            continue
        top = Counter(normalize_answer(a) for a in answers).most_common(1)[0][0]
        chosen = next(a for a in answers if normalize_answer(a) == top)
        turn = f"<think>majority</think>\n<answer>{chosen}</answer>"
        majority_correct += correctness(
            [turn], turns=[[turn]], answer=[record["answer"]], question=[record["question"]]
        )[0]
    metrics = {
        "sampled_accuracy": sum(per_question) / n,
        f"pass@{k}": passed / n,
        f"maj@{k}": majority_correct / n,
    }
    if n >= 2:
        interval = statistics.mean_interval(per_question)
        metrics.update(sampled_accuracy_low=interval.low, sampled_accuracy_high=interval.high)
    return metrics


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


def searched_after_shown(episode: Trajectory, answer: str) -> bool:
    """Whether the episode searched again after a query whose shown results held the gold answer."""
    shown = [[hit["shown"] for hit in hits] for hits in episode.retrieved]
    first = first_query_showing(answer, shown)
    return first is not None and len(episode.queries) > first


def outcome_rows(label: str, step: int, split: str, run: PolicyRun) -> list[dict[str, Any]]:
    """Each question's outcome under one model: right or not, searches, answered, retried (answered after
    two searches or more); with sampled runs, how many of them were right."""
    rows = []
    for i, (episode, record) in enumerate(zip(run.episodes, run.records, strict=True)):
        row = {
            "id": record.get("id", str(i)),
            "split": split,
            "model": label,
            "step": step,
            "correct": int(run.scores["correctness"][i]),
            "searches": len(episode.queries),
            "answered": int(episode.answer is not None),
            "retried": int(episode.answer is not None and len(episode.queries) >= 2),
            "searched_after_shown": int(searched_after_shown(episode, record["answer"])),
        }
        if run.sampled_correct:
            row["sampled_correct"] = int(sum(runs[i] for runs in run.sampled_correct))
            row["samples"] = len(run.sampled_correct)
        rows.append(row)
    return rows


@dataclass
class Scoring:
    """Every evaluated model on every split: metrics by split and step, the raw model's metrics by split,
    sample episodes (test) and every question's outcome."""

    by_step: dict[str, dict[int, dict[str, float]]]
    base: dict[str, dict[str, float]]
    samples: list[dict]
    outcomes: list[dict]


def evaluate_checkpoints(
    model_spec: str,
    dtype: str,
    checkpoints: list[Path],
    env: SearchEnvironment,
    splits: dict[str, list[dict]],
    reward_funcs: list,
    params: EvaluateParams,
    warmstart: Path | None = None,
    on_evaluated: Callable[[str, int, str, PolicyRun], None] | None = None,
) -> Scoring:
    """The raw model, the warm start (step 0) and each checkpoint on every split. Without a warm start,
    step 0 is the raw model itself. `on_evaluated` gets each model's label, step, split and run (the stage
    logs them as traces).

    The base model is loaded once; each adapter is attached to it, merged into one reusable copy
    (`MergedCopy`, the weights rollouts sample from) and detached again. The splits' questions are played
    as one batch per model."""
    from tqdm import tqdm

    from rezero.external.models import MergedCopy, apply_adapter, load_model

    tokenizer = load_tokenizer(model_spec)
    base_model, merged = load_model(model_spec, dtype).eval(), MergedCopy(model_spec, dtype)
    models = [("base", None)] + ([("warmstart", warmstart)] if warmstart else [])
    models += [(f"{CHECKPOINT_PREFIX}{checkpoint_step(c)}", c) for c in checkpoints]
    records = [r for name in splits for r in splits[name]]
    scoring = Scoring(by_step={name: {} for name in splits}, base={}, samples=[], outcomes=[])
    for label, adapter in tqdm(models, desc="evaluating checkpoints", unit="model"):
        step = checkpoint_step(adapter) if label.startswith(CHECKPOINT_PREFIX) else 0
        model = base_model
        if adapter is not None:
            with_adapter = apply_adapter(base_model, adapter)
            model = merged.refresh(with_adapter)
            base_model = with_adapter.unload()  # the LoRA layers out again, base weights untouched
        whole = run_policy(model, tokenizer, env, records, reward_funcs, params)
        start = 0
        for name, split_records in splits.items():
            run = whole.part(start, start + len(split_records))
            start += len(split_records)
            metrics = policy_metrics(run, reward_funcs[0])
            if label == "base":
                scoring.base[name] = metrics
            if label != "base" or not warmstart:
                scoring.by_step[name][step] = metrics
            scoring.outcomes += outcome_rows(label, step, name, run)
            if on_evaluated is not None:
                on_evaluated(label, step, name, run)
            if name == "test":
                rows = sample_rows(step, run.episodes, run.records, run.scores, params.sample_trajectories)
                scoring.samples += [{"model": label, **row} for row in rows]
            log_model_metrics(label, step, name, metrics)
    return scoring


def log_model_metrics(label: str, step: int, split: str, metrics: dict[str, float]) -> None:
    log.info(
        "%s (step %d) on %s: accuracy %.3f [%.3f, %.3f], %.2f searches/question, retry share %.3f, "
        "answered %.3f",
        label,
        step,
        split,
        metrics["accuracy"],
        metrics["accuracy_low"],
        metrics["accuracy_high"],
        metrics["searches_per_question"],
        metrics["retry_share"],
        metrics["answered_share"],
    )


def compare_with_step0(outcomes: list[dict], split: str, step: int) -> dict[str, float | int]:
    """Checkpoint `step` against the warm start (step 0) on `split`, question by question: the accuracy
    difference with its paired bootstrap interval, questions won and lost, and McNemar's exact p."""
    start, chosen = outcomes_at(outcomes, 0, split), outcomes_at(outcomes, step, split)
    ids = sorted(start)
    before, after = [start[i]["correct"] for i in ids], [chosen[i]["correct"] for i in ids]
    wins = sum(a > b for a, b in zip(after, before, strict=True))
    losses = sum(a < b for a, b in zip(after, before, strict=True))
    difference = statistics.paired_difference(before, after)
    return {
        "difference": difference.estimate,
        "difference_low": difference.low,
        "difference_high": difference.high,
        "wins": wins,
        "losses": losses,
        "mcnemar_p": statistics.mcnemar_exact(wins, losses),
    }


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
    summary: dict[str, Any]  # chosen step, its test accuracy and interval, against step 0, the test peak, ...
    by_step: dict[str, dict[int, dict[str, float]]]  # split -> step -> metrics
    samples: list[dict]
    outcomes: list[dict]


def evaluate_training(
    setup: EvaluationSetup,
    splits: dict[str, list[dict]],
    index: Path,
    checkpoints_dir: Path,
    warmstart: Path | None,
    best_out: Path,
) -> Evaluation:
    """Score the raw model, the warm start and every checkpoint in `checkpoints_dir` on the dev and test
    records in `splits`; choose the checkpoint on dev; log it all into the training's MLflow run (its
    `run.json`), copy the chosen checkpoint's adapter to `best_out` and register it under
    `tracking.registered_model` and the variant's alias."""
    checkpoints = checked_inputs(setup, splits, checkpoints_dir)
    run = read_json(Path(checkpoints_dir) / RUN_FILE)
    tracking.connect(setup.tracking.experiment)
    reward_funcs = reward_funcs_for(setup.rewards)
    env = SearchEnvironment(open_retriever(index), setup.agent, seed=setup.evaluate.seed)

    evaluated: list[tuple[str, int, str, PolicyRun]] = []  # traced after scoring, not during it
    experiment = tracking.experiment_id(setup.tracking.experiment)
    scoring = evaluate_checkpoints(
        setup.train.model,
        setup.train.dtype,
        checkpoints,
        env,
        {name: splits[name] for name in SPLITS},
        reward_funcs,
        setup.evaluate,
        warmstart,
        on_evaluated=(lambda *episodes: evaluated.append(episodes))
        if setup.tracking.trace_evaluation
        else None,
    )
    trace_evaluated(evaluated, run["mlflow_run_id"], experiment, setup.rewards.variant)
    summary = summarise(scoring, setup.evaluate.overfit_margin)
    log_evaluation(run["mlflow_run_id"], scoring, summary)
    label = f"{setup.rewards.variant}, seed {setup.train.seed}"
    figure = by_step_figure({label: scoring.by_step["test"]}, f"{label}: the test split by checkpoint")
    tracking.log_figure(run["mlflow_run_id"], figure, BY_STEP_FIGURE)
    best = next(c for c in checkpoints if c.name == f"{CHECKPOINT_PREFIX}{summary['best_step']}")
    export_adapter(best, best_out)
    summary["registered_version"] = tracking.register_adapter(
        run["mlflow_run_id"],
        best_out,
        setup.tracking.registered_model,
        setup.tracking.alias,
        summary["best_step"],
    )
    return Evaluation(
        summary=summary, by_step=scoring.by_step, samples=scoring.samples, outcomes=scoring.outcomes
    )


def checked_inputs(
    setup: EvaluationSetup, splits: dict[str, list[dict]], checkpoints_dir: Path
) -> list[Path]:
    """The checkpoints to score, once every split's questions fit an episode and every adapter loads."""
    checkpoints = checkpoint_dirs(checkpoints_dir)
    if not checkpoints:
        raise PipelineError(f"{checkpoints_dir}: no checkpoint-<step> folders. Run `dvc repro train` first.")
    template = ChatTemplate(load_tokenizer(setup.train.model), setup.agent.worked_example)
    for name in SPLITS:
        check_questions(
            splits.get(name, []), f"the {name} split", template, setup.agent.max_trajectory_tokens, QA_FIELDS
        )
    check_adapters(checkpoints)
    return checkpoints


def trace_evaluated(
    evaluated: list[tuple[str, int, str, PolicyRun]], run_id: str, experiment_id: str, variant: str
) -> None:
    """Every scored episode as an MLflow trace of the training's run, tagged by model, step and split."""
    started = time.perf_counter()
    for label, step, split, policy_run in evaluated:
        tags = {"source": "evaluation", "step": step, "model": label, "split": split, "variant": variant}
        log_episode_traces(
            policy_run.episodes,
            policy_run.records,
            policy_run.scores,
            run_id=run_id,
            experiment_id=experiment_id,
            tags=tags,
        )
    flush_traces()
    if evaluated:
        log.info(
            "%d episodes logged as traces in %.1f s",
            sum(len(e[3].episodes) for e in evaluated),
            time.perf_counter() - started,
        )


def summarise(scoring: Scoring, overfit_margin: float) -> dict[str, Any]:
    """The stage's headline: the checkpoint chosen on dev, its test accuracy with interval and against step
    0 (paired), the overfitting flag (on dev), and the test split's own peak (the paper's way)."""
    dev, test = scoring.by_step["dev"], scoring.by_step["test"]
    peak = find_peak({s: m["accuracy"] for s, m in dev.items() if s > 0}, overfit_margin)
    test_peak = find_peak({s: m["accuracy"] for s, m in test.items() if s > 0}, overfit_margin)
    chosen = test[peak.best_step]
    return {
        "questions": {
            name: sum(r["split"] == name and r["model"] == "base" for r in scoring.outcomes)
            for name in SPLITS
        },
        "chosen_on": "dev",
        "best_step": peak.best_step,
        "best_dev_accuracy": peak.best_accuracy,
        "test_accuracy": chosen["accuracy"],
        "test_accuracy_low": chosen["accuracy_low"],
        "test_accuracy_high": chosen["accuracy_high"],
        "step0_test_accuracy": test[0]["accuracy"],
        "base_test_accuracy": scoring.base["test"]["accuracy"],
        "vs_step0": compare_with_step0(scoring.outcomes, "test", peak.best_step),
        "final_step": peak.final_step,
        "final_dev_accuracy": peak.final_accuracy,
        "overfitting": peak.overfitting,
        # The paper's way: the best checkpoint on the test questions themselves (optimistic by construction).
        "test_peak_step": test_peak.best_step,
        "test_peak_accuracy": test_peak.best_accuracy,
        "accuracy_by_step": {
            name: {str(s): round(m["accuracy"], 4) for s, m in scoring.by_step[name].items()}
            for name in SPLITS
        },
        "base": {
            name: {k: round(v, 4) for k, v in metrics.items()} for name, metrics in scoring.base.items()
        },
    }


def log_evaluation(run_id: str, scoring: Scoring, summary: dict[str, Any]) -> None:
    """`eval/<metric>` (test) and `eval/dev/<metric>` by step, the raw model's as `eval/base/...`, the
    headline at step 0, and every question's outcome as an artifact."""
    for split, prefix in (("test", "eval"), ("dev", "eval/dev")):
        for step, metrics in scoring.by_step[split].items():
            tracking.log_metrics(run_id, {f"{prefix}/{k}": v for k, v in metrics.items()}, step=step)
        tracking.log_metrics(
            run_id, {f"{prefix}/base/{k}": v for k, v in scoring.base[split].items()}, step=0
        )
    headline = {k: float(v) for k, v in summary.items() if isinstance(v, int | float)}
    headline |= {f"vs_step0/{k}": float(v) for k, v in summary["vs_step0"].items()}
    tracking.log_metrics(run_id, {f"eval/{k}": v for k, v in headline.items()}, step=0)
    tracking.log_text(run_id, "".join(json.dumps(row) + "\n" for row in scoring.outcomes), OUTCOMES_ARTIFACT)


def export_adapter(checkpoint: Path, out: Path) -> None:
    """The checkpoint's adapter files (`adapter_*`: a PEFT folder, as `rezero ask --checkpoint` loads) in
    `out`, replaced atomically: a failed copy leaves the previous adapter in place."""
    with atomic_directory(out) as tmp:
        for item in Path(checkpoint).glob("adapter_*"):
            shutil.copy2(item, tmp / item.name)

"""GRPO training of the search agent: TRL's GRPOTrainer with a multi-turn rollout, LoRA, checkpoints, resume.

The story of one step (paper: one question × 6 rollouts): the rollout function plays `num_generations`
episodes of the search protocol per question, returning the sampled and injected ids with an `env_mask` so
that only the model's own tokens are trained; the six rewards score each episode; GRPO compares episodes of
the same question. The reference model is the base with the adapter disabled (no second copy).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rezero.core.config import AgentParams, RewardParams, TrackingParams, TrainParams
from rezero.core.errors import PipelineError
from rezero.core.io import read_json, write_json
from rezero.episode.agent import SearchEnvironment, Trajectory, run_episodes
from rezero.episode.judges import make_judge
from rezero.episode.rewards import REWARD_NAMES, make_correctness_reward, reward_funcs_for, score_episodes
from rezero.episode.traces import flush as flush_traces
from rezero.episode.traces import log_episode_traces
from rezero.external import tracking
from rezero.external.models import MergedCopy
from rezero.external.redaction import redact_url
from rezero.training.checkpoints import (
    PENDING_METRICS_FILE,
    RUN_FILE,
    checkpoint_dirs,
    checkpoint_problem,
    latest_checkpoint,
)

log = logging.getLogger(__name__)


@dataclass
class TrainingSetup:
    """Everything one training run is decided by; its fingerprint decides whether checkpoints can resume."""

    train: TrainParams
    agent: AgentParams
    rewards: RewardParams
    profile: str
    data_fingerprint: str
    # Where the run is logged, and the warm start's own run (tagged on it): not part of the fingerprint.
    tracking: TrackingParams = field(default_factory=TrackingParams)
    warmstart_run: str | None = None

    def as_params(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "train": asdict(self.train),
            "agent": asdict(self.agent),
            "rewards": asdict(self.rewards),
        }

    def fingerprint(self) -> str:
        payload = json.dumps([self.as_params(), self.data_fingerprint], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def run_name(self) -> str:
        return f"{self.rewards.variant}-{self.profile}-seed{self.train.seed}"


class RolloutStats:
    """Search behaviour and correctness of the rollouts since the last log line.

    A group is one question's rollouts in a step; its correctness *varies* when some rollouts were judged
    right and others wrong, the only case in which the correctness reward moves GRPO's advantages
    (`train/frac_correctness_zero_std` is the share of groups where it does not)."""

    def __init__(self, correct: Callable[[Trajectory], bool] | None = None) -> None:
        self.correct = correct or (lambda trajectory: False)
        self.rows: list[tuple[str, bool, int, bool]] = []  # question, correct, searches, answered

    def add(self, trajectories: list[Trajectory]) -> None:
        self.rows += [
            (t.question, self.correct(t), len(t.queries), t.answer is not None) for t in trajectories
        ]

    def flush(self) -> dict[str, float]:
        """The means over every process's rollouts. Under `accelerate launch` this is a collective: each
        process calls it at the same log step (TrainerCallback.on_log runs on all of them)."""
        from accelerate.utils import gather_object

        rows = gather_object(self.rows)
        self.rows = []
        if not rows:
            return {}
        by_question: dict[str, set[bool]] = {}
        for question, correct, _, _ in rows:
            by_question.setdefault(question, set()).add(correct)
        varied = sum(len(outcomes) == 2 for outcomes in by_question.values())
        n = len(rows)
        return {
            "train/searches_per_rollout": sum(r[2] for r in rows) / n,
            "train/answered_share": sum(r[3] for r in rows) / n,
            "train/retried_share": sum(r[2] >= 2 for r in rows) / n,
            "train/correct_share": sum(r[1] for r in rows) / n,
            "train/frac_correctness_zero_std": (len(by_question) - varied) / len(by_question),
        }


ROLLOUT_KEYS = ("searches_per_rollout", "answered_share", "retried_share", "correct_share")


def rollout_summary(run_id: str, max_steps: int) -> dict[str, float | None]:
    """From the run's logged history (complete across resumes): the share of question groups whose
    correctness varied over all steps, and the rollouts' search behaviour over the last quarter of steps."""
    history = tracking.metric_history(run_id, ("frac_correctness_zero_std", *ROLLOUT_KEYS), prefix="train/")
    zero_std = [m["frac_correctness_zero_std"] for m in history.values() if "frac_correctness_zero_std" in m]
    last = [m for step, m in history.items() if step > max_steps * 3 / 4]

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "correctness_varied_share": mean([1 - v for v in zero_std]),
        **{f"last_quarter_{key}": mean([m[key] for m in last if key in m]) for key in ROLLOUT_KEYS},
    }


def make_rollout_func(
    env: SearchEnvironment,
    stats: RolloutStats,
    sampler: MergedCopy | None = None,
    trace: Callable[[list[Trajectory], int], None] | None = None,
):
    """TRL's `rollout_func(prompts, trainer)`: prompts arrive repeated `num_generations` times, in order.
    With `sampler`, episodes are sampled from its LoRA-merged copy of the policy instead of the policy;
    `trace` gets each step's episodes and the step they train (`rollout_tracer`)."""

    def rollout(prompts: list[str], trainer: Any) -> dict[str, list]:
        from trl.models.utils import unwrap_model_for_generation

        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
            was_training = model.training
            model.eval()  # no dropout while sampling; gradient checkpointing would disable the KV cache
            generator = sampler.refresh(model) if sampler is not None else model
            trajectories = run_episodes(
                generator, trainer.processing_class, env, prompts, temperature=trainer.args.temperature
            )
            model.train(was_training)
        stats.add(trajectories)
        if trace is not None:
            trace(trajectories, trainer.state.global_step + 1)
        return {
            "prompt_ids": [t.prompt_ids for t in trajectories],
            "completion_ids": [t.completion_ids for t in trajectories],
            "logprobs": None,
            "env_mask": [t.env_mask for t in trajectories],
            # Extra fields reach every reward function as keyword arguments, one value per row.
            "turns": [t.turns for t in trajectories],
            "queries": [t.queries for t in trajectories],
            "retrieved": [t.retrieved for t in trajectories],
        }

    return rollout


def judged_correct(records: list[dict], judge: Any) -> Callable[[Trajectory], bool]:
    """Whether an episode of one of `records` earns the correctness reward (the same rule and judge)."""
    reward, by_question = make_correctness_reward(judge), {r["question"]: r for r in records}

    def correct(trajectory: Trajectory) -> bool:
        record = by_question[trajectory.question]
        return reward.score(trajectory.turns, record["question"], record["answer"]) > 0

    return correct


def rollout_tracer(
    setup: TrainingSetup, train_records: list[dict], run_id: str, judge: Any
) -> Callable[[list[Trajectory], int], None] | None:
    """The first `tracking.trace_rollouts` episodes of each step (one question's rollouts) as MLflow traces
    in the training's run, with their rewards; None when that is 0."""
    count = setup.tracking.trace_rollouts
    if not count:
        return None
    by_question = {r["question"]: r for r in train_records}
    reward_funcs = reward_funcs_for(setup.rewards, judge)
    experiment = tracking.experiment_id(setup.tracking.experiment)

    def trace(trajectories: list[Trajectory], step: int) -> None:
        sample = trajectories[:count]
        records = [by_question[t.question] for t in sample]
        tags = {"source": "training", "step": step, "variant": setup.rewards.variant}
        scores = score_episodes(sample, records, reward_funcs)
        log_episode_traces(sample, records, scores, run_id=run_id, experiment_id=experiment, tags=tags)

    return trace


def grpo_config(setup: TrainingSetup, output_dir: Path):
    from trl import GRPOConfig

    t = setup.train
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # set for each process by `accelerate launch`
    per_process = t.episodes_per_step // processes
    micro = t.micro_batch_size or per_process
    if not per_process or t.episodes_per_step % processes or per_process % micro:
        raise PipelineError(
            f"{t.episodes_per_step} episodes per step (train.questions_per_step x train.num_generations) "
            f"do not split evenly over {processes} processes in micro-batches of {micro} "
            "(train.micro_batch_size)."
        )
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=t.max_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=None,  # every checkpoint is evaluated
        logging_steps=1,
        report_to="none",  # MLflow is logged by our callback, with this project's metric names
        # One generation batch of all the step's episodes, each process rolling out and training its share in
        # micro-batches (TRL: steps_per_generation follows gradient_accumulation_steps).
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=per_process // micro,
        num_generations=t.num_generations,
        temperature=t.temperature,
        beta=t.beta,
        multi_objective_aggregation=t.multi_objective_aggregation,
        loss_type=t.loss_type,
        scale_rewards=t.scale_rewards,
        epsilon_high=t.epsilon_high,
        mask_truncated_completions=t.mask_truncated_completions,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio of max_steps (transformers 5)
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        adam_beta1=0.9,
        adam_beta2=0.99,  # paper
        max_completion_length=setup.agent.max_trajectory_tokens,  # the rollout enforces it itself
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=t.dtype == "bfloat16",
        use_vllm=t.use_vllm,
        seed=t.seed,
        data_seed=t.seed,
        reward_weights=[float(getattr(setup.rewards.weights, n)) for n in REWARD_NAMES],
        dataloader_num_workers=0,
        use_cpu=not _has_accelerator(),
    )


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def prepare_output_dir(output_dir: Path, setup: TrainingSetup) -> tuple[str | None, str | None]:
    """Resume when the folder holds checkpoints of this very setup; otherwise start clean.

    Returns (checkpoint to resume from, MLflow run id to continue).
    """
    run_file = output_dir / RUN_FILE
    previous = read_json(run_file) if run_file.is_file() else {}
    if previous.get("fingerprint") == setup.fingerprint():
        drop_unusable_checkpoints(output_dir)
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint:
            log.info("resuming from %s (same configuration)", checkpoint)
        return (str(checkpoint) if checkpoint else None), previous.get("mlflow_run_id")
    if output_dir.exists() and any(output_dir.iterdir()):
        # Checkpoints of another configuration cannot resume this one; completed runs stay in DVC's cache.
        log.warning("configuration changed: removing old checkpoints in %s", output_dir)
        tracking.close_abandoned_run(previous.get("mlflow_run_id"))
        shutil.rmtree(output_dir)
    return None, None


def drop_unusable_checkpoints(output_dir: Path) -> None:
    """Remove the first checkpoint that cannot be resumed from (a half-written save, a truncated or corrupt
    adapter) and every later one, so training resumes from the last whole checkpoint and re-makes them:
    the folder DVC records as `train`'s output never holds a broken checkpoint."""
    folders = checkpoint_dirs(output_dir)
    first_bad = next(((i, p) for i, f in enumerate(folders) if (p := checkpoint_problem(f))), None)
    if first_bad is None:
        return
    index, problem = first_bad
    log.warning(
        "%s cannot be used (%s): removing it and %d later checkpoint(s); training resumes from %s",
        folders[index],
        problem,
        len(folders) - index - 1,
        folders[index - 1].name if index else "the start",
    )
    for folder in folders[index:]:
        shutil.rmtree(folder)


def finished_step(checkpoint: str | None, max_steps: int) -> int | None:
    """The step a resumable checkpoint ended its training at, or None when steps remain."""
    if checkpoint is None:
        return None
    step = read_json(Path(checkpoint) / "trainer_state.json").get("global_step", 0)
    return step if step >= max_steps else None


def train(
    setup: TrainingSetup,
    train_records: list[dict],
    retriever: Any,
    output_dir: Path,
    warmstart_adapter: Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) GRPO training: checkpoints in `output_dir/checkpoint-<step>`, metrics in MLflow.

    Everything that can be refused is checked before a checkpoint is removed or a run started: the records,
    the judge's settings and the tracking server. A training that already reached `max_steps` is reported,
    not trained further (remove the checkpoint folder to train again from the start).
    """
    # Imported here: the callbacks subclass transformers' TrainerCallback, seconds to import.
    from rezero.training.callbacks import CheckpointMetadataCallback, MlflowStepCallback

    check_question_count(setup, train_records)
    judge = make_judge(setup.rewards)  # an LLM judge without its endpoint fails here, before anything else
    args = grpo_config(setup, output_dir)
    main = args.process_index == 0  # under `accelerate launch`, the process that saves and logs
    # The main process connects, cleans or resumes the folder and opens the run; the others wait, then find
    # the same checkpoint and run id in run.json.
    with args.main_process_first(local=False, desc="the checkpoint folder and the MLflow run"):
        # A tracking server that is down fails here, before a checkpoint is removed.
        tracking_uri = tracking.connect(setup.tracking.experiment) if main else None
        resume_from, run_id = prepare_output_dir(output_dir, setup)
        pending = tracking.PendingMetrics(output_dir / PENDING_METRICS_FILE)
        done = finished_step(resume_from, setup.train.max_steps)
        if done is not None and run_id:
            if main:
                close_finished_run(run_id, pending, done, resume_from, output_dir)
            return {**read_json(output_dir / RUN_FILE).get("summary", {}), "steps": done}
        if main:
            run_id, run_record = open_run(setup, train_records, output_dir, run_id, tracking_uri)
    stats = RolloutStats(correct=judged_correct(train_records, judge))
    trainer = build_trainer(
        setup,
        train_records,
        retriever,
        output_dir,
        warmstart_adapter,
        stats,
        callbacks=[MlflowStepCallback(run_id, stats, pending=pending), CheckpointMetadataCallback(setup)],
        judge=judge,
        trace=rollout_tracer(setup, train_records, run_id, judge) if main else None,
        args=args,
    )
    with tracking.closing_run_on_failure():
        result = trainer.train(resume_from_checkpoint=resume_from)
    summary = {
        "steps": trainer.state.global_step,
        "train_runtime_s": round(result.metrics.get("train_runtime", 0), 1),
        "checkpoints": len(checkpoint_dirs(output_dir)),
        "questions": len(train_records),
        "mlflow_run_id": run_id,
    }
    if main:
        summary.update(close_trained_run(run_id, pending, run_record, summary, setup, output_dir))
    return summary


def close_trained_run(
    run_id: str, pending: Any, run_record: dict, summary: dict, setup: TrainingSetup, output_dir: Path
) -> dict[str, float | None]:
    """Log what a server outage held back, record the summary in run.json, close the run; the rollouts'
    correctness-variance and search figures (`rollout_summary`)."""
    pending.require_flushed(run_id)
    rollouts = rollout_summary(run_id, setup.train.max_steps)
    write_json(output_dir / RUN_FILE, {**run_record, "summary": {**summary, **rollouts}})
    flush_traces()
    tracking.end_run()
    return rollouts


def close_finished_run(run_id: str, pending: Any, done: int, checkpoint: Path, output_dir: Path) -> None:
    """A training that already reached max_steps: say so, log what an outage held back, close its run."""
    log.info(
        "training already finished at step %d (%s): nothing to train. Remove %s to train again.",
        done,
        checkpoint,
        output_dir,
    )
    pending.require_flushed(run_id)
    tracking.finish_run(run_id)


def check_question_count(setup: TrainingSetup, train_records: list[dict]) -> None:
    if len(train_records) < setup.train.questions_per_step:
        raise PipelineError(
            f"GRPO draws {setup.train.questions_per_step} questions a step (train.questions_per_step) but "
            f"{len(train_records)} are available; check synthesize.dev_size and the `synthesize` output."
        )


def open_run(
    setup: TrainingSetup,
    train_records: list[dict],
    output_dir: Path,
    run_id: str | None,
    tracking_uri: str | None,
) -> tuple[str, dict[str, Any]]:
    """Start (or resume) the training's MLflow run and record it in run.json with the fingerprint, the
    credential-free tracking URI and the questions GRPO draws from; the run id and that record."""
    tags = tracking.run_tags(setup.rewards.variant, setup.profile)
    if setup.warmstart_run:
        tags["warmstart_run"] = setup.warmstart_run
    run_id = tracking.start_or_resume_run(run_id, setup.run_name, setup.as_params(), tags)
    run_record = {
        "fingerprint": setup.fingerprint(),
        "mlflow_run_id": run_id,
        "tracking_uri": redact_url(tracking_uri) if tracking_uri else None,
        "run_name": setup.run_name,
        "params": setup.as_params(),
        "question_ids": [r.get("id") for r in train_records],  # what GRPO drew from
    }
    write_json(output_dir / RUN_FILE, run_record)
    return run_id, run_record


def prompt_dataset(train_records: list[dict]) -> Any:
    """GRPO's dataset: each question is the prompt, and its gold answer and chunk reach the rewards."""
    from datasets import Dataset

    columns = ("question", "answer", "chunk_id", "chunk_text")
    return Dataset.from_list(
        [{"prompt": r["question"], **{c: r.get(c) or "" for c in columns}} for r in train_records]
    )


def build_trainer(
    setup: TrainingSetup,
    train_records: list[dict],
    retriever: Any,
    output_dir: Path,
    warmstart_adapter: Path | None = None,
    stats: RolloutStats | None = None,
    callbacks: Sequence[Any] = (),
    judge: Any = None,
    trace: Callable[[list[Trajectory], int], None] | None = None,
    args: Any = None,
) -> Any:
    """TRL's GRPOTrainer for `setup`, with the multi-turn rollout (also what benchmarks/grpo_step.py times);
    `args` is its GRPOConfig when the caller has built it already (`grpo_config`).

    With `warmstart_adapter` (the `warmstart` stage's LoRA folder) GRPO continues that adapter, and TRL keeps
    a frozen copy of it as the reference model (its "ref" adapter), so the KL term holds the policy near the
    warm start rather than near the raw model; without it, a new LoRA adapter starts from zero.
    """
    import torch
    from trl import GRPOTrainer

    from rezero.external.models import apply_adapter, load_model, load_tokenizer, lora_config

    args = args or grpo_config(setup, output_dir)
    torch.manual_seed(setup.train.seed)
    with args.main_process_first(desc="the model's conversion"):  # converted once per machine, then read
        tokenizer = load_tokenizer(setup.train.model)
        model = load_model(setup.train.model, setup.train.dtype)
    lora = lora_config(setup.train)
    if warmstart_adapter is not None:
        model, lora = apply_adapter(model, warmstart_adapter, trainable=True), None
    # Each process draws its own search noise (and, below, its own samples): with one seed, the processes
    # sharing a question would play the same episodes.
    env = SearchEnvironment(retriever, setup.agent, seed=setup.train.seed + args.process_index)
    sampler = MergedCopy(setup.train.model, setup.train.dtype) if setup.train.merged_rollouts else None
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs_for(setup.rewards, judge),
        args=args,
        train_dataset=prompt_dataset(train_records),
        processing_class=tokenizer,
        peft_config=lora,
        rollout_func=make_rollout_func(env, stats or RolloutStats(), sampler, trace),
        callbacks=list(callbacks),
    )
    if args.process_index:  # the Trainer seeded every process alike; a resume restores each one's own state
        torch.manual_seed(setup.train.seed + args.process_index)
    return trainer

"""Trainer callbacks: per-step metrics to MLflow, and metadata written into every checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from rezero.core.io import write_json
from rezero.external import tracking
from rezero.training.checkpoints import CHECKPOINT_FILE, CHECKPOINT_PREFIX


class MlflowStepCallback(TrainerCallback):
    """Each logged step → the run's metrics, named by `to_metrics` (GRPO: each reward's mean, total reward,
    length, KL, lr; the warm start: its loss), plus the rollouts' search behaviour when `stats` is given."""

    def __init__(
        self,
        run_id: str,
        stats: Any = None,
        to_metrics: Callable[[dict], dict[str, float]] = tracking.train_metrics,
        pending: tracking.PendingMetrics | None = None,
    ) -> None:
        self.run_id = run_id
        self.stats = stats
        self.to_metrics = to_metrics
        self.pending = pending or tracking.PendingMetrics()  # held through a server outage

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        metrics = {**self.to_metrics(logs or {}), **(self.stats.flush() if self.stats else {})}
        if metrics and state.is_world_process_zero:
            self.pending.log(self.run_id, metrics, step=state.global_step)


class CheckpointMetadataCallback(TrainerCallback):
    """A checkpoint says what made it: step, seed, variant and the resolved params."""

    def __init__(self, setup: Any) -> None:
        self.setup = setup

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:  # the process that saved the checkpoint
            return
        folder = f"{args.output_dir}/{CHECKPOINT_PREFIX}{state.global_step}"
        write_json(
            f"{folder}/{CHECKPOINT_FILE}",
            {
                "step": state.global_step,
                "seed": self.setup.train.seed,
                "variant": self.setup.rewards.variant,
                "profile": self.setup.profile,
                "params": self.setup.as_params(),
            },
        )

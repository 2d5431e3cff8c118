"""MLflow: one run per training and its evaluations, metrics by step, the best adapter in the registry.

The tracking URI comes from MLFLOW_TRACKING_URI (a server such as http://127.0.0.1:5000, or any store
MLflow accepts); without it, a SQLite store inside the project (`mlruns.db`, artifacts in `mlartifacts/`).
A server that does not answer is reported before any training starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rezero.errors import PipelineError

log = logging.getLogger(__name__)

LOCAL_STORE = "mlruns.db"
LOCAL_ARTIFACTS = "mlartifacts"
START_SERVER_HINT = (
    "Start it with `bash infra/services.sh start`, or unset MLFLOW_TRACKING_URI to use the local store."
)

# TRL's log keys → this project's metric keys (README, "Metrics").
TRAIN_METRIC_KEYS = {
    "reward": "train/reward/total",
    "reward_std": "train/reward/std",
    "frac_reward_zero_std": "train/frac_reward_zero_std",  # groups whose rollouts all scored alike: no signal
    "kl": "train/kl",
    "learning_rate": "train/learning_rate",
    "loss": "train/loss",
    "completions/mean_length": "train/completion_length",
    "grad_norm": "train/grad_norm",
    "entropy": "train/entropy",
}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(LOCAL_STORE).resolve()}"


def connect(experiment: str) -> str:
    """Point MLflow at the tracking store and experiment; fail now, naming the URL, if a server is down."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as response:
                response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise PipelineError(
                f"MLflow server at {uri} is unreachable ({err}). {START_SERVER_HINT}"
            ) from err
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_location(uri))
    mlflow.set_experiment(experiment)
    return uri


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside its database file; servers choose their own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / LOCAL_ARTIFACTS).resolve().as_uri()
    return None


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params → MLflow params (`train.learning_rate`)."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat


def run_tags(variant: str, profile: str) -> dict[str, str]:
    tags = {"variant": variant, "profile": profile}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout
        tags["mlflow.source.git.commit"] = commit.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return tags


def start_or_resume_run(
    run_id: str | None, run_name: str, params: Mapping[str, Any], tags: dict[str, str]
) -> str:
    """Reopen the run of an interrupted training, or start a new one with its params and tags."""
    import mlflow

    if run_id:
        try:
            mlflow.start_run(run_id=run_id)
            return run_id
        except mlflow.exceptions.MlflowException:
            log.warning("MLflow run %s not found in %s; starting a new run", run_id, tracking_uri())
    run = mlflow.start_run(run_name=run_name, tags=tags)
    mlflow.log_params(flatten(params))
    return run.info.run_id


def end_run() -> None:
    """Close the active MLflow run (a finished stage's run shows as FINISHED)."""
    import mlflow

    mlflow.end_run()


def train_metrics(logs: Mapping[str, float]) -> dict[str, float]:
    """TRL's step log → namespaced metrics: each reward's mean, total reward, length, KL, learning rate."""
    metrics = {}
    for key, value in logs.items():
        if not isinstance(value, int | float):
            continue
        if key.startswith("rewards/") and key.endswith("/mean"):
            metrics[f"train/reward/{key.split('/')[1]}"] = float(value)
        elif key in TRAIN_METRIC_KEYS:
            metrics[TRAIN_METRIC_KEYS[key]] = float(value)
    return metrics


WARMSTART_LOG_KEYS = ("loss", "grad_norm", "learning_rate", "mean_token_accuracy", "entropy")


def warmstart_metrics(logs: Mapping[str, float]) -> dict[str, float]:
    """SFTTrainer's step log → `warmstart/loss`, `warmstart/learning_rate`, ..."""
    return {
        f"warmstart/{key}": float(logs[key])
        for key in WARMSTART_LOG_KEYS
        if isinstance(logs.get(key), int | float)
    }


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value), step=step)


def register_adapter(run_id: str, adapter_dir: Path, model_name: str, alias: str, step: int) -> str:
    """Log the adapter folder to the run, register it as a new version of `model_name` and point the run's
    variant alias at it (`best` for ReZero, `best-no_retry` for the baseline, so evaluating one never moves
    the other's); returns the version. The adapter is a PEFT folder (`rezero ask --checkpoint`)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    client.log_artifacts(run_id, str(adapter_dir), artifact_path="best_adapter")
    with contextlib.suppress(MlflowException):  # already registered: add a version
        client.create_registered_model(model_name)
    run = client.get_run(run_id)
    version = client.create_model_version(
        model_name, f"{run.info.artifact_uri}/best_adapter", run_id=run_id, tags={"step": str(step)}
    )
    client.set_registered_model_alias(
        model_name, variant_alias(alias, run.data.tags.get("variant")), version.version
    )
    return str(version.version)


def variant_alias(alias: str, variant: str | None) -> str:
    return alias if variant in (None, "rezero") else f"{alias}-{variant}"

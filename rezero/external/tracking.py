"""MLflow: one run per training and its evaluations, metrics by step, the best adapter in the registry.

The tracking URI comes from MLFLOW_TRACKING_URI (a server such as http://127.0.0.1:5000, or any store
MLflow accepts); without it, a SQLite store inside the project (`mlruns.db`, artifacts in `mlartifacts/`).
A server that does not answer is reported before any training starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rezero.core.errors import PipelineError
from rezero.core.io import atomic_write_text
from rezero.external.redaction import authorized_request, redact_url, split_credentials

log = logging.getLogger(__name__)

LOCAL_STORE = "mlruns.db"
LOCAL_ARTIFACTS = "mlartifacts"
EXPERIMENT_KIND, MODEL_TRAINING = (
    "mlflow.experimentKind",
    "custom_model_development",
)  # MLflow's tag and value
START_SERVER_HINT = (
    "Start it with `bash infra/services.sh start`, or unset MLFLOW_TRACKING_URI to use the local store."
)

# TRL's log keys → this project's metric keys (docs/design.md, "Metrics").
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
    """MLFLOW_TRACKING_URI, else the local SQLite store. Credentials in a server's URL
    (`https://user:password@host`) move to MLflow's own MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
    in this process, so the URL MLflow prints ("View run ... at") and the project stores holds none."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(LOCAL_STORE).resolve()}"
    if uri.startswith(("http://", "https://")):
        clean, username, password = split_credentials(uri)
        if username is not None:
            os.environ.setdefault("MLFLOW_TRACKING_USERNAME", username)
            os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", password or "")
            os.environ["MLFLOW_TRACKING_URI"] = uri = clean
    return uri


def check_server(uri: str) -> None:
    """A server's /health must answer (with MLflow's own credential variables, if set), else one error
    naming the server's redacted URL."""
    request = authorized_request(
        f"{uri.rstrip('/')}/health",
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        os.environ.get("MLFLOW_TRACKING_TOKEN"),
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = f"HTTP {err.code} {err.reason}" if isinstance(err, urllib.error.HTTPError) else err
        raise PipelineError(
            f"MLflow server at {redact_url(uri)} is unreachable ({reason}). {START_SERVER_HINT}"
        ) from err


def connect(experiment: str) -> str:
    """Point MLflow at the tracking store and experiment; fail now, naming the URL, if a server is down."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            mlflow.create_experiment(experiment, artifact_location=artifact_location(uri))
        if found is None or EXPERIMENT_KIND not in found.tags:
            # Without it, an experiment holding traces opens in the UI's GenAI view, not the training one.
            mlflow.MlflowClient(uri).set_experiment_tag(
                mlflow.get_experiment_by_name(experiment).experiment_id, EXPERIMENT_KIND, MODEL_TRAINING
            )
        mlflow.set_experiment(experiment)
    except MlflowException as err:  # a server's /health answers without credentials; its API may not
        raise PipelineError(
            f"MLflow server at {redact_url(uri)} refused experiment {experiment!r} "
            f"({str(err).splitlines()[0][:300]}). Check MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or the credentials in MLFLOW_TRACKING_URI)."
        ) from err
    return uri


def experiment_id(experiment: str) -> str:
    """The id of `experiment` in the store `connect` pointed at."""
    import mlflow

    return mlflow.get_experiment_by_name(experiment).experiment_id


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
            log.warning(
                "MLflow run %s not found in %s; starting a new run", run_id, redact_url(tracking_uri())
            )
    run = mlflow.start_run(run_name=run_name, tags=tags)
    mlflow.log_params(flatten(params))
    return run.info.run_id


def end_run(status: str = "FINISHED") -> None:
    """Close the active MLflow run: FINISHED, or FAILED / KILLED when the stage stops on an error or a
    signal, so no run is left RUNNING by a process that has gone."""
    import mlflow

    mlflow.end_run(status=status)


def close_abandoned_run(run_id: str | None) -> None:
    """Mark KILLED a run still RUNNING whose process died without closing it (`kill -9`, a lost machine):
    found when a new training replaces it. A run that is gone or already closed is left as it is."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if not run_id:
        return
    client = MlflowClient(tracking_uri())
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="KILLED")
            log.warning("MLflow run %s was left RUNNING by a training that died; marked KILLED", run_id)
    except MlflowException:
        pass


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


class PendingMetrics:
    """A training's step metrics on their way to MLflow, held through a server outage.

    `log` sends the held metrics and the new ones in one batch; when the server does not answer (after the
    client's retries, MLFLOW_HTTP_REQUEST_MAX_RETRIES) they stay held, also in `path` when given (in the
    checkpoint folder), the training goes on, and the next step or the next run of the stage sends them.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.held: list[dict[str, Any]] = (
            json.loads(self.path.read_text()) if self.path and self.path.is_file() else []
        )

    def log(self, run_id: str, metrics: Mapping[str, float], step: int) -> bool:
        timestamp = int(time.time() * 1000)
        self.held += [
            {"key": k, "value": float(v), "step": step, "timestamp": timestamp} for k, v in metrics.items()
        ]
        return self.flush(run_id)

    def flush(self, run_id: str) -> bool:
        """Send what is held; True when nothing is left."""
        from mlflow.entities import Metric
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        if not self.held:
            return True
        try:
            client = MlflowClient(tracking_uri())
            for start in range(0, len(self.held), 1000):  # MLflow's limit per batch
                client.log_batch(run_id, metrics=[Metric(**m) for m in self.held[start : start + 1000]])
        except (MlflowException, OSError) as err:
            if self.path:
                atomic_write_text(self.path, json.dumps(self.held))
            log.warning(
                "MLflow at %s did not answer (%s); %d metric values held (%s), sent with the next step",
                redact_url(tracking_uri()),
                type(err).__name__,
                len(self.held),
                self.path or "in memory",
            )
            return False
        if self.path and self.path.is_file():
            log.info("MLflow answers again: %d held metric values logged", len(self.held))
            self.path.unlink()
        self.held = []
        return True

    def require_flushed(self, run_id: str) -> None:
        if not self.flush(run_id):
            raise PipelineError(
                f"MLflow at {redact_url(tracking_uri())} does not answer: {len(self.held)} metric values of "
                f"the finished training wait in {self.path}. {START_SERVER_HINT} Then re-run `dvc repro "
                "train`: it logs them and closes the run without training again."
            )


@contextlib.contextmanager
def closing_run_on_failure() -> Iterator[None]:
    """End the active run as KILLED (Ctrl-C, SIGTERM) or FAILED (an error) when the body raises; the
    process's own error still propagates. A server that is down by then is not waited for twice."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        yield
    except BaseException as err:
        with contextlib.suppress(MlflowException, OSError):
            mlflow.end_run(status="KILLED" if isinstance(err, KeyboardInterrupt | SystemExit) else "FAILED")
        raise


def finish_run(run_id: str) -> None:
    """Mark a run FINISHED (a finished training found again, whose run a server outage left open)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    if client.get_run(run_id).info.status != "FINISHED":
        client.set_terminated(run_id, status="FINISHED")


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


def metric_history(run_id: str, keys: tuple[str, ...], prefix: str) -> dict[int, dict[str, float]]:
    """A run's `<prefix><key>` metrics by step: {step: {key: value}} (e.g. prefix "train/")."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri())
    by_step: dict[int, dict[str, float]] = {}
    for key in keys:
        for metric in client.get_metric_history(run_id, f"{prefix}{key}"):
            by_step.setdefault(metric.step, {})[key] = metric.value
    return dict(sorted(by_step.items()))


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """Save text as an artifact of the run (e.g. JSON lines of every question's outcome)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri()).log_text(run_id, text, artifact_file)


def log_figure(run_id: str, figure: Any, artifact_file: str) -> None:
    """Save a matplotlib figure as an artifact of the run (a PNG viewable in the run's Artifacts tab)."""
    from matplotlib import pyplot as plt
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri()).log_figure(run_id, figure, artifact_file)
    plt.close(figure)

"""The Markdown the flows publish as Prefect artifacts: a run's key metrics, the ReZero-versus-baseline
table, and links into the MLflow UI. Reads only what the stages wrote (metrics/*.json, checkpoints/run.json).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rezero.core.io import read_json
from rezero.training import checkpoints

RUN_FILE = Path("checkpoints") / checkpoints.RUN_FILE  # the train stage's, in dvc.yaml's paths.checkpoints
EVALUATE_METRICS = Path("metrics/evaluate.json")
COMPARISON_FIGURE = "comparison.png"  # artifact of the comparison flow's MLflow run
HEADLINE = [  # which variant, how long, the dev-chosen checkpoint's test accuracy, step 0, the decline
    "train/variant",
    "train/seed",
    "train/profile",
    "train/steps",
    "evaluate/test_accuracy",
    "evaluate/test_accuracy_low",
    "evaluate/test_accuracy_high",
    "evaluate/best_step",
    "evaluate/best_dev_accuracy",
    "evaluate/step0_test_accuracy",
    "evaluate/test_peak_accuracy",
    "evaluate/final_dev_accuracy",
    "evaluate/overfitting",
    "evaluate/base_test_accuracy",
]


@dataclass
class MlflowRun:
    """Where a training's MLflow run lives; `ui_url` is empty for a store without a server (sqlite)."""

    run_id: str
    experiment_id: str
    tracking_uri: str

    @property
    def ui_url(self) -> str:
        if not self.tracking_uri.startswith(("http://", "https://")):
            return ""
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def markdown(self) -> str:
        if self.ui_url:
            return f"[{self.run_id[:8]}]({self.ui_url})"
        return (
            f"`{self.run_id}` in `{self.tracking_uri}` (`mlflow ui --backend-store-uri {self.tracking_uri}`)"
        )


def find_mlflow_run(project: Path) -> MlflowRun:
    """The training's MLflow run (from checkpoints/run.json) and its experiment; asks the tracking store."""
    from mlflow.tracking import MlflowClient

    from rezero.external import tracking
    from rezero.external.redaction import MASK

    run = read_json(project / RUN_FILE)
    uri = run["tracking_uri"]
    if MASK in uri:  # stored redacted: the store's credentials are in this process's environment
        uri = tracking.tracking_uri()
    experiment_id = MlflowClient(uri).get_run(run["mlflow_run_id"]).info.experiment_id
    return MlflowRun(run_id=run["mlflow_run_id"], experiment_id=experiment_id, tracking_uri=uri)


def scalar_metrics(project: Path) -> dict[str, Any]:
    """Every scalar of metrics/*.json as `<file stem>/<key>` (accuracy_by_step and other maps left out)."""
    found = {}
    for path in sorted((project / "metrics").glob("*.json")):
        for key, value in read_json(path).items():
            if isinstance(value, int | float | str | bool):
                found[f"{path.stem}/{key}"] = value
    return found


def fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def pipeline_report(metrics: Mapping[str, Any], run: MlflowRun, overrides: Mapping[str, Any]) -> str:
    """The headline metrics first (HEADLINE, those present), then every other scalar of metrics/*.json."""
    headline = [key for key in HEADLINE if key in metrics]
    lines = [
        "# ReZero pipeline run",
        "",
        f"MLflow run: {run.markdown()}",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| **{key}** | **{fmt(metrics[key])}** |" for key in headline]
    lines += [f"| {key} | {fmt(value)} |" for key, value in metrics.items() if key not in headline]
    lines += ["", "Parameters set by this run (params.yaml):", ""]
    lines += [f"- `{key}` = `{value}`" for key, value in overrides.items()] or ["- none"]
    return "\n".join(lines) + "\n"


def experiment_row(project: Path, variant: str, seed: int, experiment: str, run: MlflowRun) -> dict[str, Any]:
    """One variant and seed's line of the comparison, from the workspace right after its `dvc exp run`."""
    metrics = read_json(project / EVALUATE_METRICS)
    low, high = metrics["test_accuracy_low"], metrics["test_accuracy_high"]
    return {
        "variant": variant,
        "seed": seed,
        "experiment": experiment,
        "test_accuracy": f"{metrics['test_accuracy']:.4f} [{low:.3f}, {high:.3f}]",
        "best_step": metrics["best_step"],
        "step0_test_accuracy": metrics["step0_test_accuracy"],
        "test_peak_accuracy": metrics["test_peak_accuracy"],
        "overfitting": metrics["overfitting"],
        "mlflow": run.markdown(),
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "tracking_uri": run.tracking_uri,
    }


def comparison_report(rows: list[dict[str, Any]], table: str, figure: MlflowRun | None = None) -> str:
    """Each run's line (the dev-chosen checkpoint's test accuracy with its interval, the step chosen, step
    0, the test split's own peak, overfitting), the over-seeds table with paired intervals (`table`, from
    rezero.evaluation.comparison.markdown), then the comparison figure (inline when MLflow is a reachable
    server)."""
    lines = [
        "# ReZero vs. no-retry baseline",
        "",
        "| variant | seed | DVC experiment | test accuracy, chosen on dev [95 %] | chosen step "
        "| step 0 | test peak (the paper's way) | overfitting | MLflow run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keys = ["variant", "seed", "experiment", "test_accuracy", "best_step", "step0_test_accuracy"]
    keys += ["test_peak_accuracy", "overfitting", "mlflow"]
    lines += ["| " + " | ".join(fmt(row[k]) for k in keys) + " |" for row in rows]
    lines += ["", "## Over seeds", "", table]
    uri = rows[0]["tracking_uri"] if rows else ""
    if uri.startswith(("http://", "https://")):
        runs = quote(json.dumps([row["run_id"] for row in rows], separators=(",", ":")))
        experiments = quote(json.dumps(sorted({row["experiment_id"] for row in rows}), separators=(",", ":")))
        link = f"{uri.rstrip('/')}/#/compare-runs?runs={runs}&experiments={experiments}"
        lines += ["", f"[Compare the runs in MLflow]({link})"]
    if figure is not None:
        lines += [
            "",
            f"Accuracy and searches per question by checkpoint, every variant and seed: {figure.markdown()}",
        ]
        if figure.ui_url:
            server = figure.tracking_uri.rstrip("/")
            image = f"{server}/get-artifact?path={COMPARISON_FIGURE}&run_uuid={figure.run_id}"
            lines += ["", f"![ReZero vs. no-retry by checkpoint]({image})"]
    names = " ".join(row["experiment"] for row in rows)
    lines += [
        "",
        f"In DVC: `dvc exp show --only-changed`, `dvc exp diff {names}` or `dvc plots diff {names}`.",
    ]
    return "\n".join(lines) + "\n"

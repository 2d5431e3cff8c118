"""ReZero against the paper's no-retry baseline: two DVC experiments that differ only in
rewards.weights.retry, logged to one MLflow experiment (tracking.experiment), and a Prefect artifact with
the paper's headline table (peak accuracy, peak step, final accuracy and the overfitting flag per variant)
with a figure of every variant's and seed's accuracy and searches by checkpoint, logged to MLflow.

They run in turn in the workspace (`dvc exp run -n <name> -S ...`), not from DVC's queue, whose temporary
copies lack ../shared beside them; two trainings at once gain nothing on a CPU anyway. The workspace ends
with the baseline's results; `dvc exp apply <name>` brings back either.

    python flows/compare.py --steps 20 --set evaluate.max_questions=32
"""

import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from rezero.config import read_params_file
from rezero.runtime import configure_environment

# `python flows/compare.py` puts flows/ on sys.path, not the project root that holds the `flows` package
# (Prefect's loader adds its working directory, the project root, and pytest adds the root too).
if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import reports, support


@task(
    task_run_name="dvc exp run {name}",
    retries=1,
    retry_delay_seconds=60,
    retry_condition_fn=support.is_transient,
)
def run_experiment(project: str, name: str, set_args: list[str]) -> None:
    support.run_dvc(Path(project), ["exp", "run", "-n", name, *set_args], get_run_logger().info)


@task(task_run_name="comparison figure")
def comparison_figure(experiment: str, name: str) -> reports.MlflowRun:
    """Every ReZero and baseline run of the experiment (each seed) on the same axes, logged as
    `comparison.png` of a new MLflow run `name` (tagged kind=comparison)."""
    import mlflow

    from rezero import tracking
    from rezero.figures import by_step_figure

    tracking.connect(experiment)
    curves = {
        f"{r.data.tags['variant']}, seed {r.data.params.get('train.seed', '?')}": tracking.eval_history(
            r.info.run_id, ("accuracy", "searches_per_question")
        )
        for r in tracking.evaluated_runs(experiment)
    }
    figure = by_step_figure(curves, "ReZero vs. the no-retry baseline, by checkpoint")
    with mlflow.start_run(run_name=name, tags={"kind": "comparison"}) as run:
        tracking.log_figure(run.info.run_id, figure, reports.COMPARISON_FIGURE)
    return reports.MlflowRun(run.info.run_id, run.info.experiment_id, tracking.tracking_uri())


@flow(name="rezero-compare", log_prints=True)
def compare(
    profile: str | None = None,
    steps: int | None = None,
    overrides: dict[str, Any] | None = None,
    name_prefix: str | None = None,
    project_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate both variants with the same settings; DVC experiment names are
    `<name_prefix>-<variant>` (default prefix: `cmp-<date>-<time>`)."""
    configure_environment()
    project = support.project_root(project_dir, __file__)
    support.check_mlflow_server()
    prefix = name_prefix or time.strftime("cmp-%Y%m%d-%H%M%S")
    rows = []
    for variant in support.VARIANTS:
        params = read_params_file(project / "params.yaml")
        resolved = support.resolve_overrides(params, profile, variant, steps, overrides)
        run_experiment(str(project), f"{prefix}-{variant}", support.set_param_args(params, resolved))
        run = support.find_mlflow_run(str(project))  # the run the experiment trained (run.json)
        rows.append(reports.experiment_row(project, variant, f"{prefix}-{variant}", run))
    experiment = read_params_file(project / "params.yaml")["tracking"]["experiment"]
    figure = comparison_figure(experiment, f"{prefix}-comparison")
    create_markdown_artifact(
        reports.comparison_report(rows, figure), key="rezero-comparison", description="ReZero vs. no-retry"
    )
    return rows


if __name__ == "__main__":
    support.main(compare)

"""ReZero against the paper's no-retry baseline over N training seeds: for each seed, two DVC experiments that
differ only in rewards.weights.retry (both continue the same warm start and draw from the same pass-rate
stage, which DVC reuses), logged to one MLflow experiment (tracking.experiment). Each finished run's summaries
and per-question outcomes are kept in `docs/results/<name_prefix>/<variant>-seed<seed>/`, so an experiment can
be resumed on another day or machine (it starts at its lowest recorded seed, and runs already recorded there
are not run again) and its table is computed from those files: per variant the dev-chosen checkpoint's test
accuracy over seeds with its interval, and ReZero minus the baseline paired by seed and question
(rezero/evaluation/comparison.py). The Prefect artifact shows it with a figure of every run's accuracy and
searches by checkpoint, logged to MLflow.

They run in turn in the workspace (`dvc exp run -n <name> -S ...`), not from DVC's queue, whose temporary
copies lack ../shared beside them; two trainings at once gain nothing on a CPU anyway. The workspace ends
with the last run's results; `dvc exp apply <name>` brings back any.

    python flows/compare.py --seeds 3 --name-prefix dec07
"""

import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from rezero.core.config import load_config, read_params_file
from rezero.core.errors import PipelineError
from rezero.core.runtime import configure_environment
from rezero.evaluation import comparison

# `python flows/compare.py` puts flows/ on sys.path, not the project root that holds the `flows` package
# (Prefect's loader adds its working directory, the project root, and pytest adds the root too).
if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import reports, support

RESULTS_DIR = Path("docs/results")  # kept in the repository: each run's summaries and per-question outcomes


@task(
    task_run_name="dvc exp run {name}",
    retries=1,
    retry_delay_seconds=60,
    retry_condition_fn=support.is_transient,
)
def run_experiment(project: str, name: str, set_args: list[str]) -> None:
    support.run_dvc(Path(project), ["exp", "run", "-n", name, *set_args], get_run_logger().info)


@task(task_run_name="comparison figure")
def comparison_figure(experiment: str, name: str, results: str, table: dict[str, Any]) -> reports.MlflowRun:
    """Every ReZero and baseline run recorded in `results` (each seed) on the same axes, logged as
    `comparison.png` of a new MLflow run `name` (tagged kind=comparison), with the over-seeds table
    (`comparison.json`, `comparison.md`) and its headline numbers as metrics."""
    import mlflow

    from rezero.evaluation.figures import by_step_figure
    from rezero.external import tracking

    tracking.connect(experiment)
    runs = comparison.load_runs(Path(results))
    figure = by_step_figure(comparison.curves(runs), "ReZero vs. the no-retry baseline, by checkpoint")
    with mlflow.start_run(run_name=name, tags={"kind": "comparison"}) as run:
        tracking.log_figure(run.info.run_id, figure, reports.COMPARISON_FIGURE)
        mlflow.log_dict(table, "comparison.json")
        mlflow.log_text(comparison.markdown(table), "comparison.md")
        metrics = {f"{v}/test_accuracy": row["accuracy"]["estimate"] for v, row in table["variants"].items()}
        difference = table["rezero_minus_baseline"]
        if difference is not None:  # None: no seed run by both variants yet
            metrics |= {
                "rezero_minus_baseline/accuracy": difference["correct"]["estimate"],
                "rezero_minus_baseline/accuracy_low": difference["correct"]["low"],
                "rezero_minus_baseline/accuracy_high": difference["correct"]["high"],
                "rezero_minus_baseline/accuracy_p": difference["accuracy_p"],
                "rezero_minus_baseline/retry_share": difference["retried"]["estimate"],
            }
        mlflow.log_metrics(metrics)
    return reports.MlflowRun(run.info.run_id, run.info.experiment_id, tracking.tracking_uri())


@task(task_run_name="comparison table")
def comparison_table(results: str) -> dict[str, Any]:
    """ReZero against the baseline over every seed recorded in `results` (a missing variant is named)."""
    return comparison.compare(comparison.load_runs(Path(results)))


@flow(name="rezero-compare", log_prints=True)
def compare(
    profile: str | None = None,
    steps: int | None = None,
    seeds: int = 1,
    overrides: dict[str, Any] | None = None,
    name_prefix: str | None = None,
    project_dir: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate both variants with the same settings for `seeds` training seeds (train.seed,
    train.seed + 1, ...); DVC experiment names are `<name_prefix>-<variant>-seed<seed>` (default prefix:
    `cmp-<date>-<time>`). Returns the comparison (rezero/evaluation/comparison.py `compare`)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise PipelineError(f"seeds must be a whole number of training seeds >= 1, got {seeds!r}.")
    configure_environment()
    project = support.project_root(project_dir, __file__)
    support.check_mlflow_server()
    prefix = name_prefix or time.strftime("cmp-%Y%m%d-%H%M%S")
    results = project / RESULTS_DIR / prefix
    params = read_params_file(project / "params.yaml")
    first_seed = (overrides or {}).get("train.seed")
    if first_seed is None:  # a resumed experiment's first seed, else params.yaml's
        first_seed = comparison.first_recorded_seed(results)
    if first_seed is None:
        first_seed = load_config(project / "params.yaml").train.seed
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        for variant in support.VARIANTS:
            name = f"{prefix}-{variant}-seed{seed}"
            if (results / f"{variant}-seed{seed}" / comparison.OUTCOMES_FILE).is_file():
                get_run_logger().info("%s: already recorded in %s, not run again", name, results)
                continue
            params = read_params_file(project / "params.yaml")
            resolved = support.resolve_overrides(
                params, profile, variant, steps, {**(overrides or {}), "train.seed": seed}
            )
            run_experiment(str(project), name, support.set_param_args(params, resolved))
            run = support.find_mlflow_run(str(project))  # the run the experiment trained (run.json)
            rows.append(reports.experiment_row(project, variant, seed, name, run))
            comparison.save_run(project, results)
    table = comparison_table(str(results))
    experiment = params["tracking"]["experiment"]
    figure = comparison_figure(experiment, f"{prefix}-comparison", str(results), table)
    create_markdown_artifact(
        reports.comparison_report(rows, comparison.markdown(table), figure),
        key="rezero-comparison",
        description="ReZero vs. no-retry",
    )
    return table


if __name__ == "__main__":
    support.main(compare)

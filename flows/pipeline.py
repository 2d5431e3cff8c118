"""The DVC pipeline as a Prefect flow: a task per stage of dvc.yaml, in its order, each `dvc repro
--single-item <stage>`: DVC decides what is up to date, and a re-run resumes from what it has cached.

Parameters are written into params.yaml first (comments kept, as `dvc exp run -S` does) rather than passed
to `dvc exp run`, which runs the whole pipeline as one command: this way each stage has its own task, logs,
state and retries. They stay there, so params.yaml, dvc.lock and the outputs agree (`git diff params.yaml`).

    python flows/pipeline.py --variant no_retry --steps 50 --set evaluate.max_questions=16
"""

import sys
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from rezero.core.config import read_params_file
from rezero.core.runtime import configure_environment

# `python flows/pipeline.py` puts flows/ on sys.path, not the project root that holds the `flows` package
# (Prefect's loader adds its working directory, the project root, and pytest adds the root too).
if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import reports, support


@task(
    task_run_name="dvc repro {stage}",
    retries=2,
    retry_delay_seconds=[30, 120],
    retry_condition_fn=support.is_transient,  # a busy DVC lock or a lost server; not stage errors
)
def repro_stage(project: str, stage: str) -> None:
    support.run_dvc(Path(project), ["repro", "--single-item", stage], get_run_logger().info)


@flow(name="rezero-pipeline", log_prints=True)
def pipeline(
    profile: str | None = None,
    variant: Literal["rezero", "no_retry"] | None = "rezero",
    steps: int | None = None,
    overrides: dict[str, Any] | None = None,
    project_dir: str | None = None,
) -> dict[str, Any]:
    """Run the pipeline; `profile` (cpu, paper) and `steps` (train.max_steps) keep params.yaml's values
    when left empty; `overrides` maps dotted params.yaml keys to values (`{"train.save_steps": 5}`)."""
    configure_environment()
    project = support.project_root(project_dir, __file__)
    support.check_mlflow_server()
    params = read_params_file(project / "params.yaml")
    resolved = support.resolve_overrides(params, profile, variant, steps, overrides)
    support.write_params(project / "params.yaml", resolved)
    for stage in support.stage_names(project):
        repro_stage(str(project), stage)
    metrics = reports.scalar_metrics(project)
    report = reports.pipeline_report(metrics, support.find_mlflow_run(str(project)), resolved)
    create_markdown_artifact(report, key="rezero-pipeline", description="Key metrics and the MLflow run")
    return metrics


if __name__ == "__main__":
    support.main(pipeline)

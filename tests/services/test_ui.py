"""The UIs users look at, in headless Chromium: Prefect lists the flow runs, the comparison's tasks, both
artifacts and the deployments; MLflow shows both variants' runs in one experiment, in its model-training view,
and the trace of an evaluated episode with its search. Screenshots are saved in test-outputs/services/ for a
person to look at."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.services.conftest import OUTPUTS, api, browse

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_prefect_ui_lists_the_flow_runs(comparison, nightly_run, services):
    dom = browse(f"{services.prefect_url}/runs", OUTPUTS / "prefect-runs.png")
    for run in (comparison, nightly_run):
        assert run["flow_run"]["name"] in dom
    assert "rezero-compare" in dom and "rezero-pipeline" in dom

    flow_run = comparison["flow_run"]

    dom = browse(f"{services.prefect_url}/runs/flow-run/{flow_run['id']}", OUTPUTS / "prefect-flow-run.png")
    assert flow_run["name"] in dom
    assert "Completed" in dom


def test_prefect_ui_shows_the_comparison_artifact(comparison, services):
    (artifact,) = api(
        f"{services.prefect_url}/api/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [comparison["flow_run"]["id"]]}}},
    )
    dom = browse(
        f"{services.prefect_url}/artifacts/artifact/{artifact['id']}", OUTPUTS / "prefect-artifact.png"
    )
    assert "ReZero vs. no-retry baseline" in dom
    assert "svc-no_retry" in dom


def test_prefect_ui_shows_the_pipeline_run_metrics(nightly_run, services):
    flow_run = nightly_run["flow_run"]
    (artifact,) = api(
        f"{services.prefect_url}/api/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}},
    )
    dom = browse(
        f"{services.prefect_url}/artifacts/artifact/{artifact['id']}", OUTPUTS / "prefect-pipeline.png"
    )
    assert "ReZero pipeline run" in dom and "evaluate/test_accuracy" in dom


def test_prefect_ui_lists_the_deployments(deployments, services):
    dom = browse(f"{services.prefect_url}/deployments", OUTPUTS / "prefect-deployments.png")
    assert "nightly" in dom and "weekly" in dom


def test_mlflow_ui_shows_the_variants_and_their_warm_start_in_one_experiment(comparison, services):
    experiment = next(
        e
        for e in api(f"{services.mlflow_url}/api/2.0/mlflow/experiments/search", {"max_results": 100})[
            "experiments"
        ]
        if e["name"] != "Default"
    )
    runs = api(
        f"{services.mlflow_url}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]}
    )["runs"]
    names = sorted(run["info"]["run_name"] for run in runs)
    # Both variants for the comparison's 2 seeds, the warm start they share, and the comparison's figure.
    assert names == [
        "no_retry-cpu-seed42",
        "no_retry-cpu-seed43",
        "rezero-cpu-seed42",
        "rezero-cpu-seed43",
        "svc-comparison",
        "warmstart-cpu-seed42",
    ]
    kind = {t["key"]: t["value"] for t in experiment.get("tags", [])}.get("mlflow.experimentKind")
    assert kind == "custom_model_development"  # opens in the model-training view, not the GenAI one
    dom = browse(
        f"{services.mlflow_url}/#/experiments/{experiment['experiment_id']}/runs", OUTPUTS / "mlflow-runs.png"
    )
    for name in names:
        assert name in dom

    ids = quote(json.dumps([run["info"]["run_id"] for run in runs], separators=(",", ":")))
    experiments = quote(json.dumps([experiment["experiment_id"]], separators=(",", ":")))
    dom = browse(
        f"{services.mlflow_url}/#/compare-runs?runs={ids}&experiments={experiments}",
        OUTPUTS / "mlflow-compare.png",
    )
    for name in names:
        assert name in dom


def test_mlflow_trace_view_shows_an_episode_and_its_search(services):
    """An episode as the traces module logs it (hand-made, since the tiny test model rarely finishes a search
    in 16 tokens; tests/services/test_flows.py checks the evaluated episodes' traces on this server)."""
    import mlflow

    from rezero.episode.traces import flush, log_episode_traces
    from tests.unit.test_traces import GOLD, episode

    mlflow.set_tracking_uri(services.mlflow_url)
    experiment = mlflow.create_experiment("trace-view")
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            pass
        trajectory = episode("When did oxygen tank 2 fail?", "55:54", searched=True)
        (trace_id,) = log_episode_traces(
            [trajectory],
            [{"answer": "55:54", "chunk_text": GOLD}],
            {"correctness": [1.0]},
            run_id=run.info.run_id,
            experiment_id=experiment,
            tags={"source": "evaluation", "step": 4, "variant": "rezero", "model": "checkpoint-4"},
        )
        flush()
        dom = browse(
            f"{services.mlflow_url}/#/experiments/{experiment}/traces"
            f"?selectedEvaluationId={trace_id}&traceId={trace_id}",
            OUTPUTS / "mlflow-trace.png",
        )
        assert "episode" in dom and "search 1" in dom and "turn 1" in dom
    finally:
        mlflow.delete_experiment(experiment)  # the other UI tests look at the pipeline's experiment only

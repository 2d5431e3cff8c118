"""The MLflow registry in a real SQLite store: each variant's best adapter keeps its own alias."""

from __future__ import annotations

import pytest

from rezero.external import tracking
from tests.model.conftest import environment


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the local store and its artifacts land in this test's folder
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    with environment(MLFLOW_TRACKING_URI=uri):
        tracking.connect("rezero-test")
        yield uri


def register(tmp_path, variant: str, step: int) -> str:
    import mlflow

    adapter = tmp_path / f"adapter-{variant}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with mlflow.start_run(tags=tracking.run_tags(variant, "cpu")) as run:
        pass
    tracking.register_adapter(run.info.run_id, adapter, "rezero-searcher", "best", step)
    return run.info.run_id


def test_baseline_evaluation_does_not_move_the_rezero_alias(store, tmp_path):
    from mlflow.tracking import MlflowClient

    rezero_run = register(tmp_path, "rezero", step=8)
    baseline_run = register(tmp_path, "no_retry", step=4)
    client = MlflowClient(store)
    assert client.get_model_version_by_alias("rezero-searcher", "best").run_id == rezero_run
    baseline = client.get_model_version_by_alias("rezero-searcher", "best-no_retry")
    assert baseline.run_id == baseline_run and baseline.tags["step"] == "4"
    artifacts = [f.path for f in client.list_artifacts(rezero_run, "best_adapter")]
    assert artifacts == ["best_adapter/adapter_config.json"]


def test_a_run_left_running_by_a_dead_training_is_marked_killed_when_found(store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("rezero-test").experiment_id
    abandoned = client.create_run(experiment).info.run_id  # RUNNING, its process gone (never ended)
    finished = client.create_run(experiment).info.run_id
    client.set_terminated(finished, status="FINISHED")
    tracking.close_abandoned_run(abandoned)
    tracking.close_abandoned_run(finished)
    tracking.close_abandoned_run("0" * 32)  # a run the store does not hold is left alone
    assert client.get_run(abandoned).info.status == "KILLED"
    assert client.get_run(finished).info.status == "FINISHED"


@pytest.mark.parametrize(
    ("error", "status"), [(RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")]
)
def test_a_stage_that_stops_on_an_error_or_a_signal_closes_its_run(store, error, status):
    import mlflow
    from mlflow.tracking import MlflowClient

    run = mlflow.start_run()
    with pytest.raises(type(error)), tracking.closing_run_on_failure():
        raise error
    assert mlflow.active_run() is None
    assert MlflowClient(store).get_run(run.info.run_id).info.status == status

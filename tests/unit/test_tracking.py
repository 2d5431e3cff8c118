"""The MLflow registry in a real SQLite store: each variant's best adapter keeps its own alias."""

from __future__ import annotations

import pytest

from rezero import tracking
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

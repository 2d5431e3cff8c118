"""The Prefect flows over DVC: parameters into params.yaml, one task per stage, failures and stopped servers
reported clearly, the pipeline and the comparison end to end on a tiny configuration, the deployments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from flows import support
from rezero.core.errors import PipelineError
from tests.conftest import PROJECT_ROOT
from tests.services.conftest import TINY, api, copy_project, free_port

pytestmark = pytest.mark.services

PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


class TestResolveOverrides:
    def test_variant_sets_the_retry_weight(self):
        assert support.resolve_overrides(PARAMS, None, "no_retry", None, None) == {
            "rewards.weights.retry": 0.0
        }
        assert support.resolve_overrides(PARAMS, None, "rezero", None, None) == {
            "rewards.weights.retry": 1.0  # the paper's weight
        }

    def test_a_key_the_profile_sets_is_set_in_the_profile_too(self):
        resolved = support.resolve_overrides(PARAMS, "paper", None, 50, {"evaluate.samples": 4})
        assert resolved["train.max_steps"] == resolved["profiles.paper.train.max_steps"] == 50
        assert "profiles.paper.evaluate.samples" not in resolved  # the paper profile leaves it alone

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"train.max_stpes": 2}, "train has no key 'max_stpes'"),
            ({"nonsense.key": 1}, "expected <section>.<key>"),
            ({"rewards.weights.retry": 0.5}, "contradicts the flow's parameters"),
        ],
    )
    def test_bad_overrides_are_rejected_with_the_key(self, overrides, message):
        with pytest.raises(PipelineError, match=message):
            support.resolve_overrides(PARAMS, None, "no_retry", None, overrides)

    def test_an_unknown_profile_is_rejected(self):
        with pytest.raises(PipelineError, match="profile 'gpu' is not defined"):
            support.resolve_overrides(PARAMS, "gpu", None, None, None)


def test_write_params_changes_only_the_values(tmp_path: Path):
    path = tmp_path / "params.yaml"
    original = (PROJECT_ROOT / "params.yaml").read_text()
    path.write_text(original)
    support.write_params(path, {"train.max_steps": 3, "agent.result_chars": None})
    changed = [
        (a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines(), strict=True) if a != b
    ]
    assert [b.split("#")[0].strip() for _, b in changed] == ["result_chars: null", "max_steps: 3"]


def test_set_param_args_use_hydra_syntax_and_add_missing_keys():
    args = support.set_param_args(
        PARAMS, {"train.max_steps": 2, "index.new_key": "x", "agent.result_chars": None}
    )
    assert args == ["-S", "train.max_steps=2", "-S", '++index.new_key="x"', "-S", "agent.result_chars=null"]


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("ERROR: Unable to acquire lock. Most likely another DVC process is running", True),
        ("MLflow server at http://127.0.0.1:5000 is unreachable (Connection refused)", True),
        ("train: error: params.yaml: train: max_steps and save_steps must be >= 1.", False),
    ],
)
def test_only_lock_and_service_failures_are_retried(message, transient):
    assert support.is_transient(None, None, SimpleNamespace(message=message)) is transient


@pytest.mark.parametrize("seeds", [0, -2, 1.5, True])
def test_the_comparison_refuses_a_seed_count_below_one_before_anything_runs(seeds, tmp_path: Path):
    from flows.compare import compare

    with pytest.raises(PipelineError, match=r"seeds must be a whole number of training seeds >= 1"):
        compare.fn(seeds=seeds, project_dir=str(tmp_path))  # not a project: nothing else was looked at


@pytest.fixture
def scratch_project(tmp_path: Path, mission_report: Path) -> Path:
    return copy_project(tmp_path, TINY)


def test_a_failing_stage_fails_the_flow_with_the_stage_error(scratch_project: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline

    with prefect_test_harness():
        state = pipeline(
            variant=None,
            overrides={"chunk.chunk_size": 0},
            project_dir=str(scratch_project),
            return_state=True,
        )
        APILogHandler().flush()  # send the buffered logs before reading them back
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
            )
            task_runs = client.read_task_runs()
    assert state.is_failed()
    assert "dvc repro --single-item chunk" in state.message
    assert "chunk_size must be a positive number" in state.message
    assert any("chunk_size must be a positive number" in log.message for log in logs)
    runs = {run.name: run for run in task_runs}
    assert runs["dvc repro ingest"].state.is_completed()
    assert runs["dvc repro chunk"].run_count == 1  # a stage's own error is not retried
    assert "dvc repro index" not in runs  # stages after the failure do not start


def test_a_stopped_mlflow_server_is_named_with_the_command_that_starts_it(scratch_project: Path, monkeypatch):
    from prefect.testing.utilities import prefect_test_harness

    import flows.pipeline as module

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    quick = support.check_mlflow_server.with_options(retries=0)  # the flow retries it for 35 s
    monkeypatch.setattr(support, "check_mlflow_server", quick)
    with prefect_test_harness():
        state = module.pipeline(project_dir=str(scratch_project), return_state=True)
    assert state.is_failed()
    assert f"MLflow server at {url} is unreachable" in state.message
    assert "bash infra/services.sh start" in state.message
    assert not (scratch_project / "data" / "ingest" / "document.txt").exists()  # no stage ran


def test_a_stopped_prefect_server_is_named_with_the_command_that_starts_it(scratch_project: Path):
    url = f"http://127.0.0.1:{free_port()}/api"
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "flows" / "pipeline.py"), "--project-dir", str(scratch_project)],
        env={**os.environ, "PREFECT_API_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"Prefect server at {url} is unreachable" in result.stderr
    assert "bash infra/services.sh start" in result.stderr


def test_services_status_names_the_urls(services):
    status = services.script("status").stdout
    assert "prefect-server: healthy" in status and services.prefect_url in status
    assert "mlflow-server: healthy" in status and services.mlflow_url in status
    assert "prefect-worker: healthy" in status


def test_the_mlflow_server_serves_the_store_the_pipeline_logs_to_without_it(services, monkeypatch):
    """`bash infra/pipeline.sh` logs to the project's mlruns.db (no MLFLOW_TRACKING_URI); the UI of
    `bash infra/services.sh start` must show those runs, and their artifacts."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from rezero.external import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{services.project / 'mlruns.db'}")
    tracking.connect("store-check")  # as a stage without a server would: artifacts in mlartifacts/
    with mlflow.start_run(run_name="logged-without-the-server") as run:
        mlflow.log_text("hello", "note.txt")
    served = MlflowClient(services.mlflow_url)
    assert served.get_run(run.info.run_id).info.run_name == "logged-without-the-server"
    note = f"{services.mlflow_url}/get-artifact?path=note.txt&run_uuid={run.info.run_id}"
    with urllib.request.urlopen(note, timeout=30) as response:
        assert response.read() == b"hello"
    served.delete_experiment(tracking.experiment_id("store-check"))  # the flow tests count experiments


def test_deployments_are_registered_with_cron_schedules(deployments):
    by_name = {d["name"]: d for d in deployments}
    assert set(by_name) >= {"nightly", "weekly"}
    for name in ("nightly", "weekly"):
        assert by_name[name]["work_pool_name"] == "rezero-local"
        assert by_name[name]["schedules"][0]["schedule"]["cron"]
        assert by_name[name]["schedules"][0]["active"]
    assert by_name["nightly"]["parameters"]["variant"] == "rezero"


@pytest.mark.slow
def test_pipeline_flow_runs_every_stage_and_publishes_metrics(pipeline_run, flow_project: Path, services):
    state = pipeline_run["state"]
    print(f"pipeline flow: {pipeline_run['seconds']:.0f} s")
    assert state.is_completed(), state.message
    metrics = state.result()
    assert metrics["train/variant"] == "rezero"
    assert metrics["train/steps"] == TINY["train.max_steps"]
    assert 0 <= metrics["evaluate/test_accuracy_low"] <= metrics["evaluate/test_accuracy"]
    (artifact,) = pipeline_run["artifacts"]
    assert "evaluate/test_accuracy" in artifact.data and "evaluate/best_dev_accuracy" in artifact.data
    assert f"{services.mlflow_url}/#/experiments/" in artifact.data  # the link to the MLflow run
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=flow_project, capture_output=True, text=True, check=True
    )
    assert "up to date" in status.stdout  # every stage ran and dvc.lock records it
    assert_splits_are_kept_apart(flow_project)


def assert_splits_are_kept_apart(project: Path) -> None:
    """The dev split never trains: the warm start demonstrates, and GRPO draws from, training questions
    only, and never the same ones; dev and test are disjoint from each other and from training."""

    def ids(path: str) -> set[str]:
        return {json.loads(line)["id"] for line in (project / path).read_text().splitlines()}

    train, dev, test = ids("data/qa/train.jsonl"), ids("data/qa/dev.jsonl"), ids("data/qa/test.jsonl")
    demonstrated = set(
        json.loads((project / "models/warmstart/warmstart.json").read_text())["demonstrated_ids"]
    )
    grpo = set(json.loads((project / "checkpoints/run.json").read_text())["question_ids"])
    assert len(dev) == TINY["synthesize.dev_size"] and not (train & dev or train & test or dev & test)
    assert demonstrated and grpo and demonstrated <= train and grpo <= train and not demonstrated & grpo


@pytest.mark.slow
def test_comparison_flow_leaves_its_runs_in_one_mlflow_experiment(comparison, services):
    flow_run = comparison["flow_run"]
    print(f"comparison flow (through the deployment): {comparison['seconds']:.0f} s")
    assert flow_run and flow_run["state"]["type"] == "COMPLETED", comparison["cli"].stdout[-3000:]
    (artifact,) = api(
        f"{services.prefect_url}/api/artifacts/filter",
        {"artifacts": {"key": {"any_": ["rezero-comparison"]}, "flow_run_id": {"any_": [flow_run["id"]]}}},
    )
    names = [f"svc-{variant}-seed{seed}" for seed in (42, 43) for variant in ("rezero", "no_retry")]
    for column in (
        "test accuracy, chosen on dev",
        "chosen step",
        "test peak (the paper's way)",
        "overfitting",
        "Over seeds",
        "Seeds 42, 43",
        "ReZero minus baseline, paired by seed and question",
        *names,
    ):
        assert column in artifact["data"]
    # Each run's summaries and per-question outcomes are kept: the table is rebuilt from them.
    results = services.project / "docs/results/svc"
    assert sorted(p.name for p in results.iterdir()) == sorted(n.removeprefix("svc-") for n in names)
    rebuilt = subprocess.run(
        [sys.executable, "benchmarks/variants.py", str(results)],
        cwd=services.project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert rebuilt.strip() in artifact["data"]
    runs = api(
        f"{services.mlflow_url}/api/2.0/mlflow/runs/search",
        {"experiment_ids": [e["experiment_id"] for e in experiments(services)], "max_results": 50},
    )["runs"]
    variants, figures = {}, []
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        if tags.get("kind") == "comparison":
            figures.append(run)
        else:
            variants[tags.get("variant")] = run["info"]["experiment_id"]
    # One warm start for every run: its stage reads neither reward weights nor seed, so DVC runs it once.
    assert len(runs) == 6
    assert set(variants) == {"rezero", "no_retry", "warmstart"}
    assert len(set(variants.values()) | {r["info"]["experiment_id"] for r in figures}) == 1  # one experiment
    # The comparison figure (both variants' curves, tests/unit/test_figures.py) is in MLflow and the artifact.
    (figure_run,) = figures
    image = f"{services.mlflow_url}/get-artifact?path=comparison.png&run_uuid={figure_run['info']['run_id']}"
    assert f"]({image})" in artifact["data"]
    with urllib.request.urlopen(image, timeout=30) as response:
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"
    listed = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "list", "--name-only"],
        cwd=services.project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(names) <= set(listed)
    plots = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "diff", names[0], names[1], "--json"],
        cwd=services.project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    curves = json.loads(plots)["data"]["Accuracy by checkpoint (test, dev)"]
    assert {tuple(c["revisions"]) for c in curves} == {(names[0], names[1])}  # both experiments' curves
    assert "by_step.csv" in json.dumps(curves) and "by_step_dev.csv" in json.dumps(curves)  # test and dev
    # Every evaluated episode of both variants is a trace on the server: each model of each variant.
    import mlflow

    mlflow.set_tracking_uri(services.mlflow_url)
    traces = mlflow.search_traces(
        locations=list(set(variants.values())),
        filter_string="tags.source = 'evaluation'",
        return_type="list",
    )
    assert {t.info.tags["variant"] for t in traces} == {"rezero", "no_retry"}
    assert {t.info.tags["model"] for t in traces} == {"base", "warmstart", "checkpoint-1", "checkpoint-2"}


def experiments(services) -> list[dict]:
    found = api(f"{services.mlflow_url}/api/2.0/mlflow/experiments/search", {"max_results": 100})
    return [e for e in found["experiments"] if e["name"] != "Default"]


@pytest.mark.slow
def test_a_triggered_deployment_run_completes_from_dvc_cache(nightly_run, services):
    flow_run = nightly_run["flow_run"]
    print(f"pipeline deployment run (all stages cached): {nightly_run['seconds']:.0f} s")
    assert flow_run and flow_run["state"]["type"] == "COMPLETED", nightly_run["cli"].stdout[-3000:]
    logs = api(
        f"{services.prefect_url}/api/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run["id"]]}}}
    )
    skipped = [log["message"] for log in logs if "didn't change, skipping" in log["message"]]
    assert len(skipped) == 9  # every stage, streamed from DVC into the run's logs
    (artifact,) = api(
        f"{services.prefect_url}/api/artifacts/filter",
        {"artifacts": {"key": {"any_": ["rezero-pipeline"]}, "flow_run_id": {"any_": [flow_run["id"]]}}},
    )
    assert "| **train/variant** | **no_retry** |" in artifact["data"]

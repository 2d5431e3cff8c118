"""The `train` stage on 2 CPU processes (infra/accelerate/cpu-2-processes.yaml: torchrun, gloo) through `dvc
repro`, with the real small model: each process rolls out its share of every step, the main process saves
the checkpoints and logs one MLflow run, a removed checkpoint is trained again by resuming, and `evaluate`
reads the checkpoints as it reads a single process's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.pipeline.conftest import copy_tiny, run, set_params

TWO_PROCESSES = {"REZERO_ACCELERATE_CONFIG": "infra/accelerate/cpu-2-processes.yaml"}


def rezero_runs(project: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{project / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("rezero")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return client, [r for r in runs if r.data.tags.get("variant") == "rezero"]


@pytest.mark.slow
def test_two_cpu_processes_train_resume_and_log_one_run(tmp_path, tiny_before_training):
    project = copy_tiny(tiny_before_training, tmp_path / "copy")
    set_params(project, {"train.max_steps": 2})  # 2 episodes a step: one per process
    checkpoints = project / "checkpoints"

    trained = run(project, "dvc", "repro", "train", env=TWO_PROCESSES)

    assert "cpu-2-processes.yaml" in trained.stderr + trained.stdout  # the stage re-launched itself
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    for step in (1, 2):
        checkpoint = checkpoints / f"checkpoint-{step}"
        # One RNG state per process (a single process writes rng_state.pth), one checkpoint's metadata.
        assert sorted(p.name for p in checkpoint.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
        assert json.loads((checkpoint / "rezero_checkpoint.json").read_text())["step"] == step
    assert json.loads((project / "metrics/train.json").read_text())["steps"] == 2
    client, runs = rezero_runs(project)
    assert [r.info.status for r in runs] == ["FINISHED"]
    run_id = runs[0].info.run_id
    for metric in ("train/reward/total", "train/searches_per_rollout"):  # TRL's and ours, each once a step
        assert [m.step for m in client.get_metric_history(run_id, metric)] == [1, 2], metric

    # Resume: the last checkpoint removed, DVC re-runs the stage, which trains step 2 again from checkpoint-1
    # into the same run.
    first = (checkpoints / "checkpoint-1/adapter_model.safetensors").read_bytes()
    for path in sorted((checkpoints / "checkpoint-2").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (checkpoints / "checkpoint-2").rmdir()
    resumed = run(project, "dvc", "repro", "train", env=TWO_PROCESSES)

    assert "resuming from" in resumed.stderr + resumed.stdout
    assert (checkpoints / "checkpoint-2/rng_state_1.pth").is_file()
    assert (checkpoints / "checkpoint-1/adapter_model.safetensors").read_bytes() == first
    client, runs = rezero_runs(project)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "FINISHED")]
    state = json.loads((checkpoints / "checkpoint-2/trainer_state.json").read_text())
    assert state["global_step"] == 2

    run(project, "dvc", "repro", "evaluate")  # one process, reading what two processes saved
    report = json.loads((project / "metrics/evaluate.json").read_text())
    assert {split: sorted(by_step, key=int) for split, by_step in report["accuracy_by_step"].items()} == {
        "dev": ["0", "1", "2"],
        "test": ["0", "1", "2"],
    }

"""Which warm-start adapter `train` and `evaluate` continue, and the errors that name the stage to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rezero.core.errors import PipelineError
from rezero.training.checkpoints import WARMSTART_FILE, warmstart_adapter


def folder_with(tmp_path: Path, manifest: dict | None, adapter: bool) -> Path:
    folder = tmp_path / "warmstart"
    folder.mkdir()
    if manifest is not None:
        (folder / WARMSTART_FILE).write_text(json.dumps(manifest))
    if adapter:
        (folder / "adapter_config.json").write_text("{}")
    return folder


def test_an_enabled_warm_start_gives_its_folder_and_mlflow_run(tmp_path):
    folder = folder_with(tmp_path, {"enabled": True, "mlflow_run_id": "abc"}, adapter=True)
    assert warmstart_adapter(folder, expected=True) == (folder, "abc")


def test_without_warm_starts_nothing_is_continued_whatever_the_folder_holds(tmp_path):
    assert warmstart_adapter(tmp_path / "absent", expected=False) == (None, None)


def test_a_missing_warm_start_names_the_stage_to_run(tmp_path):
    with pytest.raises(PipelineError, match=r"warmstart\.json is missing.*dvc repro warmstart"):
        warmstart_adapter(tmp_path / "absent", expected=True)


def test_a_folder_written_with_warm_starts_off_names_the_stage_to_run(tmp_path):
    folder = folder_with(tmp_path, {"enabled": False}, adapter=False)
    with pytest.raises(PipelineError, match=r"holds no warm-start adapter.*dvc repro warmstart"):
        warmstart_adapter(folder, expected=True)

"""What the `evaluate` stage hands the package besides scores: the best adapter exported atomically, and a
missing training refused before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from rezero.core.config import AgentParams, EvaluateParams, RewardParams, TrackingParams, TrainParams
from rezero.core.errors import PipelineError
from rezero.evaluation.scoring import EvaluationSetup, evaluate_training, export_adapter


def test_export_adapter_copies_only_the_adapter_files_and_replaces_the_old_folder(tmp_path: Path):
    checkpoint = tmp_path / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "optimizer.pt", "trainer_state.json"):
        (checkpoint / name).write_text(name)
    out = tmp_path / "models" / "best_adapter"
    out.mkdir(parents=True)
    (out / "adapter_model.safetensors").write_text("an older checkpoint's")
    (out / "stale.txt").write_text("left over")
    export_adapter(checkpoint, out)
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert (out / "adapter_model.safetensors").read_text() == "adapter_model.safetensors"
    assert [p.name for p in out.parent.iterdir()] == ["best_adapter"]  # no temporary folder left


def test_evaluate_training_without_checkpoints_names_the_stage_to_run(tmp_path: Path):
    setup = EvaluationSetup(EvaluateParams(), AgentParams(), RewardParams(), TrainParams(), TrackingParams())
    with pytest.raises(PipelineError, match=r"no checkpoint-<step> folders\. Run `dvc repro train` first"):
        evaluate_training(setup, [], tmp_path / "index", tmp_path / "checkpoints", None, tmp_path / "best")
    assert not (tmp_path / "best").exists()

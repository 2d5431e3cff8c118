"""Checkpoint folders: a training that has finished is recognised, and an adapter that cannot load is
refused by name before anything is scored."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from rezero.core.errors import PipelineError
from rezero.training.checkpoints import (
    adapter_fingerprint,
    check_adapters,
    checkpoint_dirs,
    checkpoint_problem,
)
from rezero.training.grpo import drop_unusable_checkpoints, finished_step


def save_checkpoint(root, step: int, global_step: int | None = None):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 2}))
    save_file(
        {"lora_A": torch.ones(2, 8), "lora_B": torch.zeros(8, 2)}, str(folder / "adapter_model.safetensors")
    )
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": global_step or step}))
    return folder


def test_loadable_adapters_pass(tmp_path):
    for step in (1, 2):
        save_checkpoint(tmp_path, step)
    check_adapters(checkpoint_dirs(tmp_path))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "adapter_model.safetensors").write_bytes(b"x" * 100), "header"),
        (lambda f: (f / "adapter_model.safetensors").unlink(), "No such file"),
        (lambda f: (f / "adapter_config.json").write_text("{"), "not valid JSON"),
    ],
    ids=["truncated", "missing-weights", "broken-config"],
)
def test_a_broken_adapter_is_named_with_its_reason(tmp_path, damage, reason):
    save_checkpoint(tmp_path, 1)
    damage(save_checkpoint(tmp_path, 2))
    with pytest.raises(PipelineError, match=rf"checkpoint-2 \(.*{reason}.*Nothing was evaluated"):
        check_adapters(checkpoint_dirs(tmp_path))


def test_a_partly_written_tensor_is_caught(tmp_path):
    weights = save_checkpoint(tmp_path, 1) / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])
    with pytest.raises(PipelineError, match="checkpoint-1"):
        check_adapters(checkpoint_dirs(tmp_path))


def test_a_training_at_max_steps_is_finished(tmp_path):
    assert finished_step(None, 3) is None
    assert finished_step(str(save_checkpoint(tmp_path, 2)), 3) is None
    assert finished_step(str(save_checkpoint(tmp_path, 3)), 3) == 3


def test_a_damaged_checkpoint_and_every_later_one_are_removed_so_training_resumes_before_it(tmp_path, caplog):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-2/adapter_model.safetensors").write_bytes(b"x" * 100)  # truncated
    with caplog.at_level("WARNING", logger="rezero.training.grpo"):
        drop_unusable_checkpoints(tmp_path)
    assert [f.name for f in checkpoint_dirs(tmp_path)] == ["checkpoint-1"]
    assert "checkpoint-2 cannot be used" in caplog.text and "resumes from checkpoint-1" in caplog.text
    assert checkpoint_problem(tmp_path / "checkpoint-1") is None


def test_a_checkpoint_whose_save_did_not_complete_is_unusable(tmp_path):
    folder = save_checkpoint(tmp_path, 1)
    (folder / "trainer_state.json").unlink()
    assert "did not complete" in checkpoint_problem(folder)
    drop_unusable_checkpoints(tmp_path)
    assert checkpoint_dirs(tmp_path) == []


def test_the_warm_starts_fingerprint_is_its_content_not_its_path_or_order(tmp_path):
    first, second = save_checkpoint(tmp_path / "a", 1), save_checkpoint(tmp_path / "b", 1)
    config = {"r": 2, "base_model_name_or_path": "/cache/model-1", "target_modules": ["q_proj", "v_proj"]}
    (first / "adapter_config.json").write_text(json.dumps(config))
    moved = {**config, "base_model_name_or_path": "/cache/model-2", "target_modules": ["v_proj", "q_proj"]}
    (second / "adapter_config.json").write_text(json.dumps(moved))
    (second / "warmstart.json").write_text(json.dumps({"mlflow_run_id": "another run"}))
    assert adapter_fingerprint(first) == adapter_fingerprint(second)
    save_file(
        {"lora_A": torch.ones(2, 8) * 2, "lora_B": torch.zeros(8, 2)},
        str(second / "adapter_model.safetensors"),
    )
    assert adapter_fingerprint(first) != adapter_fingerprint(second)  # other weights: another warm start

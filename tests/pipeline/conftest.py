"""Throwaway copies of the project (with ../shared beside it) where DVC can run without touching this one, and
one tiny project whose stages before `train` DVC has run once per session, copied by the tests that train."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_project

# The smallest training that still saves a checkpoint each step: the raw model (no warm start) with the
# worked example, 4 questions scored for GRPO, 5 steps of 2 rollouts of 2 turns of 16 tokens; 4 dev questions.
TINY_TRAINING = {
    "synthesize.dev_size": 4,
    "warmstart.enabled": False,
    "passrate.questions": 4,
    "passrate.min_questions": 1,
    "agent.worked_example": True,
    "agent.max_turns": 2,
    "agent.max_turn_tokens": 16,
    "agent.max_trajectory_tokens": 200,
    "agent.result_chars": 100,
    "train.max_steps": 5,
    "train.save_steps": 1,
    "train.questions_per_step": 1,
    "train.num_generations": 2,
    "train.micro_batch_size": None,
}


# A warm start of one SFT step on 4 single-search episodes, measured greedily on 4 dev questions.
TINY_WARMSTART = {
    "warmstart.enabled": True,
    "agent.worked_example": False,
    "warmstart.episodes": 4,
    "warmstart.min_episodes": 4,
    "warmstart.dev_samples": 0,
    "warmstart.epochs": 1.0,
}


def set_params(project: Path, overrides: dict[str, object]) -> None:
    """Write dotted-key overrides (`chunk.chunk_size`) into the copy's params.yaml."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def run(
    project: Path, *command: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`command` in `project`, logging to its own MLflow store; `env` adds variables."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlruns.db'}", **(env or {})}
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path)


@pytest.fixture(scope="session")
def tiny_before_training(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy with TINY_TRAINING whose data stages, (disabled) warm start and pass rates DVC has run: the
    tests that train start from a copy of it (`copy_tiny`) instead of running those stages again."""
    project = copy_project(tmp_path_factory.mktemp("tiny"))
    set_params(project, TINY_TRAINING)
    run(project, "dvc", "repro", "passrate")
    return project


def copy_tiny(tiny: Path, target: Path) -> Path:
    """A copy of `tiny_before_training` (its git history, DVC cache and outputs, the ../shared link) in
    target/main; none of its stages logs to MLflow, so the copy has no MLflow store yet."""
    shutil.copytree(tiny.parent, target, symlinks=True)
    assert not (target / "main" / "mlruns.db").exists()
    return target / "main"

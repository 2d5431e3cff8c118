"""A throwaway copy of the project (with ../shared beside it) where DVC can run without touching this one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_project

# The smallest training that still saves a checkpoint each step: the raw model (no warm start) with the
# worked example, 4 questions scored for GRPO, 5 steps of 2 rollouts of 2 turns of 16 tokens.
TINY_TRAINING = {
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
    "synthesize.dev_size": 4,
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

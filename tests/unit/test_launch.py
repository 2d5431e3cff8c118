"""The stages' launcher: REZERO_ACCELERATE_CONFIG re-runs a stage under `accelerate launch`
(rezero/core/runtime.py), and every config in infra/accelerate/ is one accelerate reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from rezero.core.errors import PipelineError
from rezero.core.runtime import ACCELERATE_CONFIG_ENV, relaunch_under_accelerate

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "infra/accelerate").glob("*.yaml"))
# Each process writes its own file: two processes printing to one pipe can interleave mid-line.
PROBE = """
import os, sys
from pathlib import Path
rank, config = os.environ.get("RANK", "-"), os.environ.get("REZERO_ACCELERATE_CONFIG", "unset")
words = ["probe", rank, os.environ.get("WORLD_SIZE", "-"), config]
Path(__file__).with_name(f"probe-{rank}.txt").write_text(" ".join(words + sys.argv[1:]))
"""


def test_the_shipped_configs_are_the_four_the_readme_names():
    assert [c.name for c in CONFIGS] == [
        "cpu-2-processes.yaml",
        "deepspeed-zero2.yaml",
        "multi-gpu.yaml",
        "one-gpu.yaml",
    ]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_accelerate_reads_each_config(config):
    loaded = load_config_from_file(str(config))
    expected = {
        "cpu-2-processes": ("MULTI_GPU", 2, True),  # torchrun's launcher, on the CPU (the file says why)
        "one-gpu": ("NO", 1, False),
        "multi-gpu": ("MULTI_GPU", 8, False),
        "deepspeed-zero2": ("DEEPSPEED", 8, False),
    }[config.stem]
    assert (loaded.distributed_type.value, loaded.num_processes, loaded.use_cpu) == expected
    if config.stem == "deepspeed-zero2":
        assert loaded.deepspeed_config["zero_stage"] == 2


def test_without_the_variable_the_stage_runs_in_this_process(monkeypatch):
    monkeypatch.delenv(ACCELERATE_CONFIG_ENV, raising=False)
    assert relaunch_under_accelerate("stages/train.py", []) is None


def test_a_missing_config_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(ACCELERATE_CONFIG_ENV, str(tmp_path / "nope.yaml"))
    refused = r"REZERO_ACCELERATE_CONFIG=.*nope.yaml: no such accelerate config"
    with pytest.raises(PipelineError, match=refused):
        relaunch_under_accelerate("stages/train.py", [])


def test_the_cpu_config_starts_two_processes_that_run_the_script_with_its_arguments(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    launcher = (
        "import sys; from rezero.core.runtime import relaunch_under_accelerate; "
        f"relaunch_under_accelerate({str(probe)!r}, ['a', '--b']); print('not launched')"
    )
    config = ROOT / "infra/accelerate/cpu-2-processes.yaml"
    env = {**os.environ, ACCELERATE_CONFIG_ENV: str(config)}
    done = subprocess.run(
        [sys.executable, "-c", launcher], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = sorted(path.read_text() for path in tmp_path.glob("probe-*.txt"))
    # Each process has its rank, runs the script (not the launcher again: the variable is unset) with its
    # arguments, and the launching process is replaced (nothing after the call runs).
    assert lines == ["probe 0 2 unset a --b", "probe 1 2 unset a --b"]
    assert "not launched" not in done.stdout

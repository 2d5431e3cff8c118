"""Checkpoint folders and the files that describe them: their names, listing by step, the latest complete
one, the training's run file, and the warm-start folder's manifest.

Written by the `train` and `warmstart` stages (rezero/training/grpo.py, rezero/training/callbacks.py,
stages/warmstart.py); read by `evaluate`, the `rezero` command and the flows. Nothing here loads a model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rezero.core.errors import PipelineError
from rezero.core.io import read_json

RUN_FILE = "run.json"  # in the checkpoints folder: config fingerprint and MLflow run id, for resume
CHECKPOINT_FILE = "rezero_checkpoint.json"  # in each checkpoint: step, seed, resolved params
WARMSTART_FILE = "warmstart.json"  # in the warm-start folder: enabled or not, its MLflow run
PENDING_METRICS_FILE = "mlflow_pending.json"  # in the checkpoints folder: metrics a server outage held
CHECKPOINT_PREFIX = "checkpoint-"  # TRL's folder names: checkpoint-<global step>


def checkpoint_step(folder: str | Path) -> int:
    """The training step a `checkpoint-<step>` folder was saved at."""
    return int(Path(folder).name.rsplit("-", 1)[-1])


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Checkpoint folders, by step."""
    found = [p for p in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint whose save completed (TRL writes trainer_state.json last)."""
    complete = [p for p in checkpoint_dirs(output_dir) if (p / "trainer_state.json").is_file()]
    return complete[-1] if complete else None


def warmstart_adapter(folder: str | Path, expected: bool) -> tuple[Path | None, str | None]:
    """The warm-start adapter to continue (None when warm starts are off) and its MLflow run id.

    The `warmstart` stage always writes `folder/warmstart.json`; when params expect an adapter, a missing
    or disabled one is an error that names the stage to run.
    """
    manifest = Path(folder) / WARMSTART_FILE
    if not expected:
        return None, None
    run = "`dvc repro warmstart` (or set warmstart.enabled: false to train from the raw model)"
    if not manifest.is_file():
        raise PipelineError(f"{manifest} is missing: the warm start has not run. Run {run}.")
    info = read_json(manifest)
    if not info.get("enabled") or not (Path(folder) / "adapter_config.json").is_file():
        raise PipelineError(
            f"{folder} holds no warm-start adapter (it was written with warmstart.enabled: false). Run {run}."
        )
    return Path(folder), info.get("mlflow_run_id")


def check_adapters(folders: list[Path]) -> None:
    """Refuse, before any scoring, checkpoints whose adapter cannot be loaded: a missing or unreadable
    adapter_config.json, or adapter_model.safetensors missing, truncated or corrupt (every tensor is read,
    without a model). One error names each bad folder."""
    bad = [f"{folder} ({problem})" for folder in folders if (problem := adapter_problem(folder))]
    if bad:
        raise PipelineError(
            f"cannot load the adapter of {'; '.join(bad)}. Nothing was evaluated. Remove the bad folder(s) "
            "to evaluate the others, or the whole checkpoint folder and `dvc repro train` to train again."
        )


def demonstrated_questions(folder: str | Path) -> set[str]:
    """The ids of the training questions the warm start demonstrated (none without a warm start)."""
    manifest = Path(folder) / WARMSTART_FILE
    return set(read_json(manifest).get("demonstrated_ids", [])) if manifest.is_file() else set()


def adapter_problem(folder: str | Path) -> str | None:
    """Why the LoRA adapter in `folder` cannot be loaded (its config unreadable, its weights missing,
    truncated or corrupt: every tensor is read, without a model), or None when it can."""
    from safetensors import SafetensorError, safe_open

    try:
        read_json(Path(folder) / "adapter_config.json")
        with safe_open(str(Path(folder) / "adapter_model.safetensors"), framework="pt") as tensors:
            for name in tensors.keys():  # noqa: SIM118 (safe_open has no __iter__)
                tensors.get_tensor(name)
    except (PipelineError, SafetensorError, OSError, ValueError) as err:
        return str(err).splitlines()[0][:120]
    return None


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why a training checkpoint cannot be resumed from or called finished: its trainer state missing or
    unreadable (TRL writes it last), or its adapter unloadable; None when it is whole."""
    state = Path(folder) / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json: the save did not complete"
    try:
        read_json(state)
    except PipelineError as err:
        return str(err)
    return adapter_problem(folder)


def adapter_fingerprint(folder: str | Path) -> str:
    """What an adapter is, not where or when it was made: its weights' bytes and its config without the
    base model's cache path (which names the machine's install), target modules sorted (PEFT writes a set
    in process order). Equal for a warm start re-run bit for bit."""
    folder = Path(folder)
    config = read_json(folder / "adapter_config.json")
    config.pop("base_model_name_or_path", None)
    config["target_modules"] = sorted(config.get("target_modules") or [])
    digest = hashlib.sha256((folder / "adapter_model.safetensors").read_bytes())
    digest.update(json.dumps(config, sort_keys=True).encode())
    return digest.hexdigest()

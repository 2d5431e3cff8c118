"""Checkpoint folders and the files that describe them: their names, listing by step, the latest complete
one, the training's run file, and the warm-start folder's manifest.

Written by the `train` and `warmstart` stages (rezero/training.py, rezero/training_callbacks.py,
stages/warmstart.py); read by `evaluate`, the `rezero` command and the flows. Nothing here loads a model.
"""

from __future__ import annotations

from pathlib import Path

from rezero.errors import PipelineError
from rezero.io import read_json

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
    from safetensors import SafetensorError, safe_open

    bad = []
    for folder in folders:
        weights = Path(folder) / "adapter_model.safetensors"
        try:
            read_json(Path(folder) / "adapter_config.json")
            with safe_open(str(weights), framework="pt") as tensors:
                for name in tensors.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    tensors.get_tensor(name)
        except (PipelineError, SafetensorError, OSError, ValueError) as err:
            bad.append(f"{folder} ({str(err).splitlines()[0][:120]})")
    if bad:
        raise PipelineError(
            f"cannot load the adapter of {'; '.join(bad)}. Nothing was evaluated. Remove the bad folder(s) "
            "to evaluate the others, or the whole checkpoint folder and `dvc repro train` to train again."
        )


def demonstrated_questions(folder: str | Path) -> set[str]:
    """The ids of the training questions the warm start demonstrated (none without a warm start)."""
    manifest = Path(folder) / WARMSTART_FILE
    return set(read_json(manifest).get("demonstrated_ids", [])) if manifest.is_file() else set()

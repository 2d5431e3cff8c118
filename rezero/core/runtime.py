"""Process setup for entry points: offline and no-telemetry settings, logging, seeds, the exit path.

Library modules never call these; stages, flows, the CLI, benchmarks and tests do, first thing.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rezero.core.errors import PipelineError

# Nothing may reach a model hub or a telemetry host at run time.
OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "false",
    # MLflow's client retries a request 7 times (~4 minutes); a training holds its metrics through an outage
    # instead (rezero/external/tracking.py PendingMetrics), so 3 retries (~14 s) per step are enough.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
}


def configure_environment() -> None:
    """Set the offline and no-telemetry variables unless the user already chose a value, and keep freed
    memory in the process (`keep_freed_memory`)."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    keep_freed_memory()
    # transformers 5 renames (gradient → activation checkpointing) warn on every step inside TRL.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")


# glibc's mallopt parameters (malloc.h) and the values set: blocks up to 32 MiB (its maximum) come from the
# heap instead of fresh mmaps, and freed heap is neither trimmed nor returned below 4 GiB.
MALLOPT = {-3: 32 * 2**20, -1: 4 * 2**30, -2: 256 * 2**20}  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD


def keep_freed_memory() -> None:
    """Stop glibc returning each step's activations to the kernel only to fault them in again (page faults
    took a large share of a training step's CPU time; docs/benchmarks.md). A no-op without glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return
    for parameter, value in MALLOPT.items():
        libc.mallopt(parameter, value)


def setup_logging(level: str | None = None) -> None:
    """INFO (REZERO_LOG_LEVEL) on the main process; the other processes of a launched training say only
    what goes wrong, so each line is printed once."""
    default = os.environ.get("REZERO_LOG_LEVEL", "INFO") if is_main_process() else "WARNING"
    logging.basicConfig(
        level=(level or default).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def seed_everything(seed: int) -> None:
    """The one place seeds are applied (Python, NumPy, and torch when it is loaded)."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


# The accelerate config a stage re-launches itself with (docs/operations.md, "Scaling out"). A variable, not
# a param: how many processes run a training is the machine's business, not what it trains, so changing it
# neither re-runs the stage for DVC nor discards its checkpoints.
ACCELERATE_CONFIG_ENV = "REZERO_ACCELERATE_CONFIG"


def process_rank() -> int:
    """This process's rank among a launched training's processes (RANK, set by torchrun, which `accelerate
    launch` runs, and by DeepSpeed's launcher); 0 when the stage runs alone."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_rank() == 0


def relaunch_under_accelerate(script: str, argv: list[str]) -> None:
    """With REZERO_ACCELERATE_CONFIG set, replace this process by `accelerate launch --config_file <it>
    <script> <argv>`, which starts the configured processes (each runs the stage with the variable unset);
    without it, return and run here. The stage command in dvc.yaml stays the same either way."""
    config = os.environ.get(ACCELERATE_CONFIG_ENV)
    if not config:
        return
    if not Path(config).is_file():
        raise PipelineError(
            f"{ACCELERATE_CONFIG_ENV}={config}: no such accelerate config file (infra/accelerate/ has one "
            "for 2 CPU processes, 1 GPU, several GPUs and DeepSpeed ZeRO-2)."
        )
    env = {k: v for k, v in os.environ.items() if k != ACCELERATE_CONFIG_ENV}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, script, *argv]
    logging.getLogger(__name__).info("launching %s", " ".join(command[2:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main; a PipelineError becomes one clear line on stderr and exit status 1. SIGTERM
    (a scheduler stopping the job) unwinds like Ctrl-C, so the stage can close what it opened."""
    configure_environment()
    setup_logging()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        main()
    except PipelineError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def matmul_gflops(size: int = 2048, repeats: int = 8) -> float:
    """Best fp32 GFLOP/s of a square matrix multiply on the threads torch uses here: the machine's speed,
    printed beside every timing (machines of one kind differ up to 2x)."""
    import time

    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9

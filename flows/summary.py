"""What `bash infra/pipeline.sh` prints when `dvc repro` is done: accuracy by checkpoint with intervals, the
checkpoint chosen and how, each stage's minutes, and where to look next.

    dvc repro | python flows/summary.py record infra/run/stage_seconds.json   # DVC's output passes through
    python flows/summary.py show infra/run/stage_seconds.json                  # the summary

`record` times each stage from DVC's "Running stage '<name>'" lines (a stage runs until the next one starts
or the output ends); stages DVC skipped have no time. `show` reads only what the stages wrote (metrics/,
evaluation/, checkpoints/run.json).
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

if __name__ == "__main__":  # `python flows/summary.py` puts flows/ on sys.path, not the project root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import reports
from rezero.core.errors import PipelineError
from rezero.core.io import read_json, write_json
from rezero.core.runtime import configure_environment, matmul_gflops

RUNNING_RE = re.compile(r"^Running stage '([^']+)'")
BY_STEP = {"test": Path("evaluation/by_step.csv"), "dev": Path("evaluation/by_step_dev.csv")}


def record(lines: Iterable[str], out: TextIO, clock: Any = time.monotonic) -> dict[str, float]:
    """Copy `lines` to `out` and return the seconds each stage that ran took, in order."""
    seconds: dict[str, float] = {}
    current, started = None, 0.0
    for line in lines:
        out.write(line)
        out.flush()
        match = RUNNING_RE.match(line)
        if match:
            now = clock()
            if current:
                seconds[current] = round(now - started, 1)
            current, started = match.group(1), now
    if current:
        seconds[current] = round(clock() - started, 1)
    return seconds


def pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def interval(values: Mapping[str, float], key: str) -> str:
    """`values[key]`'s 95 % interval from `<key>_low` and `<key>_high`, in percent."""
    return f"[{100 * values[f'{key}_low']:.1f}, {100 * values[f'{key}_high']:.1f}]"


def read_by_step(path: Path) -> dict[int, dict[str, float]]:
    with path.open(encoding="utf-8") as handle:
        return {
            int(row["step"]): {k: float(v) for k, v in row.items() if k != "step"}
            for row in csv.DictReader(handle)
        }


def summary(
    project: Path, stage_seconds: Mapping[str, float], mlflow_run: str, gflops: float | None = None
) -> str:
    """The text `show` prints; `mlflow_run` says where the training's MLflow run is; `gflops` is this
    machine's matmul rate, shown beside the minutes (machines of one kind differ up to 2x)."""
    metrics = read_json(project / reports.EVALUATE_METRICS)
    test, dev = (read_by_step(project / BY_STEP[split]) for split in ("test", "dev"))
    counts, base = metrics["questions"], metrics["base"]["test"]
    lines = [
        f"Accuracy on {counts['test']} test questions (greedy, 95 % Wilson interval) and {counts['dev']} dev"
        " questions, by checkpoint:",
        f"  {'raw model':<10} test {pct(base['accuracy']):>7} {interval(base, 'accuracy')}",
    ]
    for step, row in sorted(test.items()):
        label = "warm start" if step == 0 else f"step {step}"
        shown = f"{pct(row['accuracy']):>7} {interval(row, 'accuracy'):<13}"
        mark = "  <- chosen on dev" if step == metrics["best_step"] else ""
        lines.append(f"  {label:<10} test {shown} dev {pct(dev[step]['accuracy']):>7}{mark}")
    versus = metrics["vs_step0"]
    chosen = f"{pct(metrics['test_accuracy'])} {interval(metrics, 'test_accuracy')}"
    difference = f"{100 * versus['difference']:+.1f} points {interval(versus, 'difference')}"
    minutes = ", ".join(f"{stage} {seconds / 60:.1f}" for stage, seconds in stage_seconds.items())
    speed = f" (this machine: fp32 matmul {gflops:.0f} GFLOP/s, measured now)" if gflops and minutes else ""
    lines += [
        "",
        f"Chosen: step {metrics['best_step']}, the best GRPO checkpoint on dev (earliest of ties):"
        f" test {chosen},",
        f"  {difference} against the warm start (questions won {versus['wins']}, lost {versus['losses']},"
        f" McNemar p {versus['mcnemar_p']:.2f}).",
        f"The test split's own peak (the paper's way, optimistic): step {metrics['test_peak_step']},"
        f" {pct(metrics['test_peak_accuracy'])}.",
        "",
        f"Minutes per stage: {minutes or 'none ran (all up to date)'}{speed}.",
        "",
        f"Next: the MLflow run {mlflow_run}; `dvc plots show`;",
        '  `rezero ask "When did oxygen tank 2 fail?" --checkpoint models/best_adapter`.',
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in ("record", "show"):
        sys.exit(f"usage: {Path(__file__).name} record|show SECONDS_JSON (see the module docstring)")
    command, path = argv[0], Path(argv[1])
    if command == "record":
        write_json(path, record(sys.stdin, sys.stdout))
        return
    from mlflow.exceptions import MlflowException

    project = Path.cwd()
    try:
        run = reports.find_mlflow_run(project)
        where = run.ui_url or f"{run.run_id} (`mlflow ui --backend-store-uri {run.tracking_uri}`)"
    except (PipelineError, MlflowException) as err:  # the summary still helps without the tracking store
        where = f"unknown ({err})"
    stage_seconds = read_json(path) if path.is_file() else {}
    print(summary(project, stage_seconds, where, matmul_gflops() if stage_seconds else None))


if __name__ == "__main__":
    configure_environment()
    main(sys.argv[1:])

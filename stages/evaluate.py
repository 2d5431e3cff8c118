"""Stage `evaluate`: the raw model (`base`), the warm start (step 0) and every saved checkpoint on the test
split, greedy, with the training agent loop. Writes metrics (best step and accuracy, final accuracy,
overfitting flag), plots by step, sample trajectories, and the best checkpoint's adapter; logs all of it to
the training's MLflow run and registers the best adapter under the configured alias.

Params: evaluate.*, agent.*, rewards.*, train.model, train.dtype, tracking.*, warmstart.enabled (and the
profile's overrides).
"""

import argparse
import csv
import io
from pathlib import Path

from rezero.checkpoints import warmstart_adapter
from rezero.config import load_section
from rezero.io import atomic_write_text, read_jsonl, write_json, write_jsonl
from rezero.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("test_qa", type=Path, help="test QA JSONL from `synthesize`")
    parser.add_argument("index", type=Path, help="index folder from `index`")
    parser.add_argument("warmstart", type=Path, help="warm-start adapter folder from `warmstart`")
    parser.add_argument("checkpoints", type=Path, help="checkpoint folder from `train`")
    parser.add_argument("metrics_out", type=Path, help="summary metrics JSON (written)")
    parser.add_argument("by_step_out", type=Path, help="metrics by step CSV, for `dvc plots` (written)")
    parser.add_argument("samples_out", type=Path, help="sample trajectories JSONL (written)")
    parser.add_argument("best_out", type=Path, help="the best checkpoint's adapter folder (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from rezero.evaluation import EvaluationSetup, evaluate_training

    names = ("evaluate", "agent", "rewards", "train", "tracking", "warmstart")
    params = {n: load_section(n, args.params) for n in names}
    warmstart, _ = warmstart_adapter(args.warmstart, params.pop("warmstart").enabled)
    setup = EvaluationSetup(**params)
    records = read_jsonl(args.test_qa)[: setup.evaluate.max_questions]
    result = evaluate_training(setup, records, args.index, args.checkpoints, warmstart, args.best_out)
    write_json(args.metrics_out, result.summary)
    atomic_write_text(args.by_step_out, by_step_csv(result.by_step))
    write_jsonl(args.samples_out, result.samples)


def by_step_csv(by_step: dict[int, dict[str, float]]) -> str:
    columns = sorted({k for m in by_step.values() for k in m})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", *columns])
    for step in sorted(by_step):
        writer.writerow([step, *(round(by_step[step].get(c, 0.0), 4) for c in columns)])
    return out.getvalue()


if __name__ == "__main__":
    run_stage("evaluate", main)

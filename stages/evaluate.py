"""Stage `evaluate`: the raw model (`base`), the warm start (step 0) and every saved checkpoint on the dev and
test splits, greedy, with the training agent loop. The checkpoint is chosen on dev; its test accuracy is the
headline, with its interval and a paired comparison with step 0 (the test split's own peak is reported too,
as the paper chose). Writes metrics, plots by step for both splits, every question's outcome, sample
trajectories, and the chosen checkpoint's adapter; logs all of it to the training's MLflow run and registers
the adapter under the configured alias.

Params: evaluate.*, agent.*, rewards.*, train.model, train.dtype, tracking.*, warmstart.enabled (and the
profile's overrides).
"""

import argparse
import csv
import io
from pathlib import Path

from rezero.core.config import load_config
from rezero.core.io import atomic_write_text, read_jsonl, write_json, write_jsonl
from rezero.core.runtime import run_stage
from rezero.training.checkpoints import warmstart_adapter


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("test_qa", type=Path, help="test QA JSONL from `synthesize`")
    parser.add_argument(
        "dev_qa", type=Path, help="dev QA JSONL from `synthesize` (checkpoints are chosen on it)"
    )
    parser.add_argument("index", type=Path, help="index folder from `index`")
    parser.add_argument("warmstart", type=Path, help="warm-start adapter folder from `warmstart`")
    parser.add_argument("checkpoints", type=Path, help="checkpoint folder from `train`")
    parser.add_argument("metrics_out", type=Path, help="summary metrics JSON (written)")
    parser.add_argument("by_step_out", type=Path, help="test metrics by step CSV, for `dvc plots` (written)")
    parser.add_argument(
        "dev_by_step_out", type=Path, help="dev metrics by step CSV, for `dvc plots` (written)"
    )
    parser.add_argument("outcomes_out", type=Path, help="every question's outcome by model, JSONL (written)")
    parser.add_argument("samples_out", type=Path, help="sample trajectories JSONL (written)")
    parser.add_argument("best_out", type=Path, help="the best checkpoint's adapter folder (written)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from rezero.evaluation.scoring import EvaluationSetup, evaluate_training

    config = load_config(args.params)
    warmstart, _ = warmstart_adapter(args.warmstart, config.warmstart.enabled)
    setup = EvaluationSetup(
        evaluate=config.evaluate,
        agent=config.agent,
        rewards=config.rewards,
        train=config.train,
        tracking=config.tracking,
    )
    limit = setup.evaluate.max_questions
    splits = {"dev": read_jsonl(args.dev_qa)[:limit], "test": read_jsonl(args.test_qa)[:limit]}
    result = evaluate_training(setup, splits, args.index, args.checkpoints, warmstart, args.best_out)
    write_json(args.metrics_out, result.summary)
    atomic_write_text(args.by_step_out, by_step_csv(result.by_step["test"]))
    atomic_write_text(args.dev_by_step_out, by_step_csv(result.by_step["dev"]))
    write_jsonl(args.outcomes_out, result.outcomes)
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

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
import shutil
from dataclasses import asdict
from pathlib import Path

from rezero.config import load_section
from rezero.errors import PipelineError
from rezero.io import atomic_directory, atomic_write_text, read_json, read_jsonl, write_json, write_jsonl
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

    from rezero import tracking
    from rezero.agent import SearchEnvironment
    from rezero.evaluation import evaluate_checkpoints, find_peak
    from rezero.retrieval import open_retriever
    from rezero.rewards import build_reward_funcs
    from rezero.training import RUN_FILE, checkpoint_dirs, make_judge, warmstart_adapter

    names = ("evaluate", "agent", "rewards", "train", "tracking", "warmstart")
    params = {n: load_section(n, args.params) for n in names}
    warmstart, _ = warmstart_adapter(args.warmstart, params["warmstart"].enabled)
    ev = params["evaluate"]
    records = read_jsonl(args.test_qa)[: ev.max_questions]
    checkpoints = checkpoint_dirs(args.checkpoints)
    if not checkpoints:
        raise PipelineError(f"{args.checkpoints}: no checkpoint-<step> folders. Run `dvc repro train` first.")
    run = read_json(args.checkpoints / RUN_FILE)
    tracking.connect(params["tracking"].experiment)
    reward_funcs, _ = build_reward_funcs(
        params["rewards"].weights, make_judge(params["rewards"]), params["rewards"].retry
    )
    env = SearchEnvironment(open_retriever(args.index), params["agent"], seed=ev.seed)
    by_step, base, samples = evaluate_checkpoints(
        params["train"].model, params["train"].dtype, checkpoints, env, records, reward_funcs, ev, warmstart
    )
    peak = find_peak({s: m["accuracy"] for s, m in by_step.items() if s > 0}, ev.overfit_margin)

    summary = {
        "questions": len(records),
        "base_accuracy": base["accuracy"],  # the raw model
        "step0_accuracy": by_step[0]["accuracy"],  # the warm start (the raw model without one)
        **asdict(peak),
        "accuracy_by_step": {str(s): round(m["accuracy"], 4) for s, m in by_step.items()},
        "base": {k: round(v, 4) for k, v in base.items()},
    }
    for step, metrics in by_step.items():
        tracking.log_metrics(run["mlflow_run_id"], {f"eval/{k}": v for k, v in metrics.items()}, step=step)
    tracking.log_metrics(run["mlflow_run_id"], {f"eval/base/{k}": v for k, v in base.items()}, step=0)
    tracking.log_metrics(
        run["mlflow_run_id"], {f"eval/{k}": float(v) for k, v in asdict(peak).items()}, step=0
    )
    best_dir = next(c for c in checkpoints if c.name == f"checkpoint-{peak.best_step}")
    with atomic_directory(args.best_out) as tmp:
        for item in best_dir.glob("adapter_*"):
            shutil.copy2(item, tmp / item.name)
    summary["registered_version"] = tracking.register_adapter(
        run["mlflow_run_id"],
        args.best_out,
        params["tracking"].registered_model,
        params["tracking"].alias,
        peak.best_step,
    )
    write_json(args.metrics_out, summary)
    atomic_write_text(args.by_step_out, by_step_csv(by_step))
    write_jsonl(args.samples_out, samples)


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

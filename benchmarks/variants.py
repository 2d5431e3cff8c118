"""ReZero against the no-retry baseline over seeds, read back from MLflow: the README's results table.

For every finished training run of the experiment (`tracking.experiment`), tagged `variant` rezero or
no_retry, it reads the evaluation the `evaluate` stage logged: accuracy of the raw model (`eval/base/...`),
of the warm start (step 0) and of every checkpoint, and the best checkpoint's searches per question, retry
share and answered share. The newest run of each (variant, seed) counts. It prints one Markdown row per run
and the mean of each variant, and logs the table to MLflow as the run `variants` (artifacts `variants.md`
and `variants.json`), so the comparison lives beside the runs it summarises.

    python benchmarks/variants.py [--experiment rezero] [--no-log]
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from rezero.runtime import configure_environment, setup_logging

BEHAVIOUR = ("searches_per_question", "retry_share", "answered_share")


def run_row(run: Any) -> dict[str, Any]:
    """One run: accuracy at every evaluated step and, at the best checkpoint, how it searched."""
    from rezero import tracking

    history = tracking.eval_history(run.info.run_id, ("accuracy", *BEHAVIOUR))
    best = int(run.data.metrics["eval/best_step"])
    return {
        "variant": run.data.tags["variant"],
        "seed": run.data.params.get("train.seed", "?"),
        "run": run.info.run_name,
        "base": run.data.metrics.get("eval/base/accuracy"),
        "accuracy_by_step": {step: m["accuracy"] for step, m in history.items() if "accuracy" in m},
        "best_step": best,
        **{key: history.get(best, {}).get(key) for key in BEHAVIOUR},
        **{f"step0_{key}": history.get(0, {}).get(key) for key in BEHAVIOUR},
    }


def mean_row(rows: list[dict[str, Any]], variant: str) -> dict[str, Any]:
    mine = [r for r in rows if r["variant"] == variant]
    steps = sorted({s for r in mine for s in r["accuracy_by_step"]})

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.fmean(present) if present else None

    return {
        "variant": variant,
        "seed": "mean",
        "run": f"{len(mine)} seeds",
        "base": mean([r["base"] for r in mine]),
        "accuracy_by_step": {s: mean([r["accuracy_by_step"].get(s) for r in mine]) for s in steps},
        "best_step": None,
        **{key: mean([r[key] for r in mine]) for key in BEHAVIOUR},
        **{f"step0_{key}": mean([r[f"step0_{key}"] for r in mine]) for key in BEHAVIOUR},
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    steps = sorted({s for r in rows for s in r["accuracy_by_step"]})

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}"

    def num(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    head = ["variant", "seed", "base", *(f"step {s}" for s in steps), "best step"]
    head += ["searches / q", "retry share", "answered"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], str(r["seed"]), pct(r["base"])]
        cells += [pct(r["accuracy_by_step"].get(s)) for s in steps]
        cells += [str(r["best_step"]) if r["best_step"] is not None else "—"]
        cells += [num(r["searches_per_question"]), pct(r["retry_share"]), pct(r["answered_share"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", default=None, help="MLflow experiment (default: tracking.experiment)")
    parser.add_argument("--no-log", action="store_true", help="print only; do not log the table to MLflow")
    args = parser.parse_args()
    configure_environment()
    setup_logging()
    import mlflow

    from rezero import tracking
    from rezero.config import load_section

    experiment = args.experiment or load_section("tracking").experiment
    tracking.connect(experiment)
    rows = [run_row(run) for run in tracking.evaluated_runs(experiment)]
    variants = sorted({r["variant"] for r in rows}, key=lambda v: v != "rezero")
    table = rows + [mean_row(rows, v) for v in variants]
    text = markdown(table)
    print(text)
    if not args.no_log:
        with mlflow.start_run(run_name="variants", tags={"kind": "comparison"}):
            mlflow.log_text(text, "variants.md")
            mlflow.log_text(json.dumps(table, indent=2), "variants.json")


if __name__ == "__main__":
    main()

"""The summary `bash infra/pipeline.sh` ends with (flows/summary.py): stage times from DVC's output, and the
accuracy table read from what `evaluate` wrote."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

from flows import summary


def test_record_passes_dvc_output_through_and_times_each_stage_that_ran():
    lines = [
        "Stage 'ingest' didn't change, skipping\n",
        "Running stage 'train':\n",
        "> python stages/train.py\n",
        "Running stage 'evaluate':\n",
        "done\n",
    ]
    out = io.StringIO()
    clock = itertools.count(start=100, step=30).__next__  # train starts at 100, evaluate at 130, ends at 160
    assert summary.record(lines, out, clock) == {"train": 30.0, "evaluate": 30.0}
    assert out.getvalue() == "".join(lines)
    assert summary.record([], io.StringIO()) == {}


def write_evaluation(project: Path) -> None:
    (project / "metrics").mkdir()
    (project / "evaluation").mkdir()
    metrics = {
        "questions": {"dev": 32, "test": 32},
        "best_step": 4,
        "test_accuracy": 0.25,
        "test_accuracy_low": 0.1333,
        "test_accuracy_high": 0.4213,
        "vs_step0": {
            "difference": -0.03125,
            "difference_low": -0.125,
            "difference_high": 0.0625,
            "wins": 1,
            "losses": 2,
            "mcnemar_p": 1.0,
        },
        "test_peak_step": 8,
        "test_peak_accuracy": 0.28125,
        "base": {"test": {"accuracy": 0.0, "accuracy_low": 0.0, "accuracy_high": 0.1072}},
    }
    (project / "metrics/evaluate.json").write_text(json.dumps(metrics))
    header = "step,accuracy,accuracy_high,accuracy_low,retry_share\n"
    (project / "evaluation/by_step.csv").write_text(
        header + "0,0.2812,0.4537,0.1556,0.1\n4,0.25,0.4213,0.1333,0.2\n"
    )
    (project / "evaluation/by_step_dev.csv").write_text(
        header + "0,0.1875,0.35,0.09,0.1\n4,0.2188,0.39,0.11,0.2\n"
    )


def test_summary_shows_each_checkpoint_with_its_interval_the_choice_and_the_minutes(tmp_path):
    write_evaluation(tmp_path)
    text = summary.summary(tmp_path, {"warmstart": 882.0, "train": 1338.0}, "abc123")
    assert "raw model  test   0.0 % [0.0, 10.7]" in text
    assert "warm start test  28.1 % [15.6, 45.4]  dev  18.8 %" in text
    assert "step 4     test  25.0 % [13.3, 42.1]  dev  21.9 %  <- chosen on dev" in text
    assert "-3.1 points [-12.5, 6.2] against the warm start (questions won 1, lost 2, McNemar p 1.00)" in text
    assert "step 8, 28.1 %" in text
    assert "Minutes per stage: warmstart 14.7, train 22.3." in text
    timed = summary.summary(tmp_path, {"train": 60.0}, "abc123", gflops=187.4)
    assert "Minutes per stage: train 1.0 (this machine: fp32 matmul 187 GFLOP/s, measured now)." in timed
    assert "the MLflow run abc123" in text and "rezero ask" in text
    assert "none ran (all up to date)" in summary.summary(tmp_path, {}, "abc123")

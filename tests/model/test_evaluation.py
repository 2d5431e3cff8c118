"""The evaluate stage on two real checkpoints: metrics, plots and samples files, MLflow, the registry."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from rezero.core.errors import PipelineError
from rezero.evaluation.scoring import find_peak
from tests.conftest import PROJECT_ROOT
from tests.model.conftest import MODEL


class TestFindPeak:
    def test_paper_curve_peaks_at_250_and_is_flagged(self):
        paper = {
            50: 21.88,
            100: 28.12,
            150: 28.12,
            200: 37.5,
            250: 46.88,
            300: 31.25,
            350: 12.5,
            400: 18.75,
            450: 0.0,
            500: 3.12,
            550: 0.0,
        }
        peak = find_peak({s: a / 100 for s, a in paper.items()}, margin=0.0625)
        assert (peak.best_step, peak.final_step, peak.overfitting) == (250, 550, True)

    def test_earliest_checkpoint_wins_a_tie(self):
        assert find_peak({10: 0.5, 20: 0.5, 30: 0.5}, 0.1).best_step == 10

    def test_small_dip_within_margin_is_not_overfitting(self):
        assert not find_peak({10: 0.5, 20: 0.45}, margin=0.0625).overfitting


@pytest.mark.slow
def test_evaluate_stage_scores_every_checkpoint_and_registers_the_best(trained, index_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    test_qa, dev_qa = tmp_path / "test.jsonl", tmp_path / "dev.jsonl"
    test_qa.write_text("".join(json.dumps(r) + "\n" for r in trained["records"][:3]))
    dev_qa.write_text("".join(json.dumps(r) + "\n" for r in trained["records"][3:6]))
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["agent"] = {**params["agent"], "max_turns": 2, "max_turn_tokens": 24, "max_trajectory_tokens": 200}
    params["train"]["model"] = MODEL
    params["evaluate"]["max_questions"] = 2
    params["tracking"]["experiment"] = "rezero-test"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    names = ("evaluate.json", "by_step.csv", "by_step_dev.csv", "outcomes.jsonl", "samples.jsonl", "best")
    outputs = [tmp_path / n for n in names]
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "stages/evaluate.py"),
            str(test_qa),
            str(dev_qa),
            str(index_dir),
            str(trained["warmstart"]),
            str(trained["root"] / "checkpoints"),
            *map(str, outputs),
            "--params",
            str(tmp_path / "params.yaml"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": trained["store"]},
    )
    assert result.returncode == 0, result.stderr[-3000:]

    summary = json.loads(outputs[0].read_text())
    # Step 0 is the warm start; the raw model is reported apart, as `base`. Chosen on dev, reported on test.
    for split in ("dev", "test"):
        assert set(summary["accuracy_by_step"][split]) == {"0", "1", "2"}
    assert summary["questions"] == {"dev": 2, "test": 2} and summary["chosen_on"] == "dev"
    assert summary["step0_test_accuracy"] == summary["accuracy_by_step"]["test"]["0"]
    assert summary["base_test_accuracy"] == summary["base"]["test"]["accuracy"]
    best = str(summary["best_step"])
    assert summary["best_step"] in (1, 2) and isinstance(summary["overfitting"], bool)
    assert summary["best_dev_accuracy"] == max(summary["accuracy_by_step"]["dev"][s] for s in ("1", "2"))
    assert summary["test_accuracy"] == summary["accuracy_by_step"]["test"][best]
    assert summary["test_accuracy_low"] <= summary["test_accuracy"] <= summary["test_accuracy_high"]
    assert {"difference", "difference_low", "difference_high", "wins", "losses", "mcnemar_p"} == set(
        summary["vs_step0"]
    )
    for table in outputs[1:3]:
        rows = list(csv.DictReader(table.open()))
        assert [r["step"] for r in rows] == ["0", "1", "2"]
        assert {"accuracy", "accuracy_low", "accuracy_high", "searches_per_question", "retry_share"} <= set(
            rows[0]
        )
    outcomes = [json.loads(line) for line in outputs[3].read_text().splitlines()]
    # 4 models (raw, warm start, 2 checkpoints) x 2 splits x 2 questions, each with what it did.
    assert len(outcomes) == 16 and {o["split"] for o in outcomes} == {"dev", "test"}
    assert {"id", "split", "model", "step", "correct", "searches", "answered", "retried"} <= set(outcomes[0])
    step = {o["id"]: o for o in outcomes if o["split"] == "test" and o["model"] == f"checkpoint-{best}"}
    assert sum(o["correct"] for o in step.values()) / 2 == summary["test_accuracy"]
    samples = [json.loads(line) for line in outputs[4].read_text().splitlines()]
    assert {s["step"] for s in samples} == {0, 1, 2} and all("messages" in s for s in samples)
    assert {s["model"] for s in samples} == {"base", "warmstart", "checkpoint-1", "checkpoint-2"}
    assert (outputs[5] / "adapter_model.safetensors").is_file()

    client = MlflowClient(trained["store"])
    run_id = trained["summary"]["mlflow_run_id"]
    assert [m.step for m in client.get_metric_history(run_id, "eval/accuracy")] == [0, 1, 2]
    assert [m.step for m in client.get_metric_history(run_id, "eval/dev/accuracy")] == [0, 1, 2]
    assert [m.step for m in client.get_metric_history(run_id, "eval/base/accuracy")] == [0]
    assert "evaluation/outcomes.jsonl" in [a.path for a in client.list_artifacts(run_id, "evaluation")]
    version = client.get_model_version_by_alias("rezero-searcher", "best")
    assert version.run_id == run_id and version.tags["step"] == str(summary["best_step"])
    assert "figures/by_step.png" in [a.path for a in client.list_artifacts(run_id, "figures")]
    evaluated = trained["records"][:2] + trained["records"][3:5]  # test and dev questions
    assert_episode_traces(trained["store"], run_id, evaluated, samples)


def assert_episode_traces(store: str, run_id: str, records: list[dict], samples: list[dict]) -> None:
    """Each model's greedy episodes are traces in the training's run: an AGENT root span with the question,
    the answer, the judgement and each reward; an LLM span per turn; a RETRIEVER span per search."""
    import mlflow
    from mlflow.entities import SpanType

    mlflow.set_tracking_uri(store)
    experiments = [mlflow.get_run(run_id).info.experiment_id]
    found = mlflow.search_traces(
        locations=experiments,
        run_id=run_id,
        filter_string="tags.source = 'evaluation'",
        return_type="list",
    )
    models = sorted(t.info.tags["model"] for t in found)
    assert models == sorted(["base", "warmstart", "checkpoint-1", "checkpoint-2"] * len(records))
    step_1 = mlflow.search_traces(
        locations=experiments,
        run_id=run_id,
        filter_string="tags.source = 'evaluation' AND tags.step = '1'",
        return_type="list",
    )
    assert [t.info.tags["model"] for t in step_1] == ["checkpoint-1"] * len(records)
    searches = 0
    for trace in found:
        root, *children = trace.data.spans
        assert (root.name, root.span_type, root.parent_id) == ("episode", SpanType.AGENT, None)
        assert root.inputs["question"] in {r["question"] for r in records}
        assert {"gold_answer", "stop_reason", "reward.correctness", "reward.retry", "step"} <= set(
            root.attributes
        )
        assert trace.info.tags["correct"] == str(root.attributes["reward.correctness"] > 0).lower()
        assert trace.info.tags["variant"] == "rezero" and "answer" in root.outputs
        assert all(c.parent_id == root.span_id for c in children)
        turns = [c for c in children if c.span_type == SpanType.LLM]
        assert turns and all(isinstance(t.outputs, str) and t.attributes["tokens"] > 0 for t in turns)
        for search in (c for c in children if c.span_type == SpanType.RETRIEVER):
            searches += 1
            assert search.inputs["query"] and search.outputs
            assert {"chunk_id", "score", "original", "gold", "shown"} == set(search.outputs[0])
            assert search.start_time_ns <= search.end_time_ns
    assert searches == sum(len(s["queries"]) for s in samples)  # a search span for each search run


@pytest.mark.slow
def test_missing_or_corrupt_checkpoint_is_a_clear_error(trained, tmp_path):
    import shutil

    from rezero.external.models import load_model

    with pytest.raises(PipelineError, match="not a complete LoRA checkpoint"):
        load_model(MODEL, adapter=tmp_path / "nothing-here")
    broken = tmp_path / "checkpoint-9"
    shutil.copytree(trained["root"] / "checkpoints/checkpoint-1", broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PipelineError, match="corrupt"):
        load_model(MODEL, adapter=broken)

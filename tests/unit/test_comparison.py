"""ReZero against the baseline over seeds, from run folders: the dev-chosen checkpoint's test outcomes
averaged over seeds, paired by seed and question, and every missing piece named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rezero.core.errors import PipelineError
from rezero.core.io import write_json, write_jsonl
from rezero.evaluation.comparison import (
    compare,
    curves,
    first_recorded_seed,
    load_runs,
    markdown,
    save_run,
)

# Test outcomes by (variant, seed): the warm start's (step 0) and the chosen checkpoint's (step 4).
STEP0 = [1, 0, 0, 0]
CHOSEN = {
    ("rezero", 1): [1, 1, 0, 0],
    ("rezero", 2): [1, 1, 1, 0],
    ("no_retry", 1): [1, 0, 0, 0],
    ("no_retry", 2): [1, 1, 0, 0],
}


def outcome_rows(correct_step0: list[int], correct_chosen: list[int], retried: list[int]) -> list[dict]:
    rows = []
    for model, step, correct in (("warmstart", 0, correct_step0), ("checkpoint-4", 4, correct_chosen)):
        for i, value in enumerate(correct):
            is_retry = retried[i] if step == 4 else 0
            rows.append(
                {
                    "id": f"q{i}",
                    "split": "test",
                    "model": model,
                    "step": step,
                    "correct": value,
                    "searches": 1 + is_retry,
                    "answered": 1,
                    "retried": is_retry,
                }
            )
            # A dev row and the raw model's row, which the comparison must not mix in.
            rows.append({**rows[-1], "split": "dev", "correct": 1 - value})
            rows.append({**rows[-2], "model": "base", "step": 0, "correct": 0})
    return rows


def write_run(
    folder: Path, variant: str, seed: int, chosen: list[int], retried: list[int] | None = None
) -> None:
    run = folder / f"{variant}-seed{seed}"
    retried = retried or [0] * len(chosen)
    train = {
        "variant": variant,
        "seed": seed,
        "last_quarter_retried_share": 0.1 * seed,
        "last_quarter_searches_per_rollout": 1.0,
        "correctness_varied_share": 0.5,
    }
    evaluate = {"best_step": 4, "test_peak_accuracy": max(sum(chosen), sum(STEP0)) / len(chosen)}
    write_json(run / "summary.json", {"variant": variant, "seed": seed, "train": train, "evaluate": evaluate})
    write_jsonl(run / "outcomes.jsonl", outcome_rows(STEP0, chosen, retried))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for (variant, seed), chosen in CHOSEN.items():
        write_run(tmp_path, variant, seed, chosen, retried=[0, 1, 0, 0] if variant == "rezero" else None)
    return tmp_path


def test_each_variant_is_the_mean_over_seeds_of_its_dev_chosen_checkpoints_test_accuracy(results):
    table = compare(load_runs(results))
    rezero, baseline = table["variants"]["rezero"], table["variants"]["no_retry"]
    assert rezero["accuracy"]["estimate"] == (0.5 + 0.75) / 2
    assert baseline["accuracy"]["estimate"] == (0.25 + 0.5) / 2
    assert rezero["step0_accuracy"]["estimate"] == 0.25  # the warm start, not the raw model's zeros
    assert rezero["vs_step0"]["estimate"] == (0.25 + 0.5) / 2
    assert rezero["accuracy"]["low"] <= rezero["accuracy"]["estimate"] <= rezero["accuracy"]["high"]
    assert rezero["retry_share"]["estimate"] == 0.25 and baseline["retry_share"]["estimate"] == 0
    assert rezero["train_last_quarter_retried_share"] == pytest.approx(0.15)
    assert table["seeds"] == table["paired_seeds"] == [1, 2] and table["questions"] == 4
    assert table["note"] == "2 seeds; intervals resample questions, each averaged over the seeds"


def test_rezero_minus_baseline_is_paired_by_seed_and_question(results):
    difference = compare(load_runs(results))["rezero_minus_baseline"]
    assert difference["correct"]["estimate"] == 0.25
    assert difference["retried"]["estimate"] == 0.25 and difference["retried"]["n"] == 4  # questions
    assert difference["retried"]["low"] < 0.25 < difference["retried"]["high"]
    assert difference["searches"]["estimate"] == 0.25
    assert 0 < difference["accuracy_p"] <= 1


def remove_run(results: Path, name: str) -> None:
    for file in ("summary.json", "outcomes.jsonl"):
        (results / name / file).unlink()
    (results / name).rmdir()


def test_a_seed_with_one_variant_only_counts_in_its_row_and_is_named_not_paired(results):
    remove_run(results, "no_retry-seed2")
    table = compare(load_runs(results))
    assert table["variants"]["rezero"]["seeds"] == [1, 2] and table["variants"]["no_retry"]["seeds"] == [1]
    assert table["variants"]["rezero"]["accuracy"]["estimate"] == (0.5 + 0.75) / 2
    assert table["seeds"] == [1, 2] and table["paired_seeds"] == [1]
    assert table["rezero_minus_baseline"]["correct"]["estimate"] == 0.5 - 0.25  # seed 1 only
    assert table["rezero_minus_baseline"]["correct"]["n"] == 4
    assert "rezero seed 2 not yet run by the other variant" in table["note"]
    assert "paired by seed and question (seeds 1): accuracy 25.0 [" in markdown(table)


def test_no_seed_in_common_gives_each_variants_row_and_names_the_missing_difference(results):
    remove_run(results, "no_retry-seed1")
    remove_run(results, "rezero-seed2")
    table = compare(load_runs(results))
    assert table["variants"]["rezero"]["seeds"] == [1] and table["variants"]["no_retry"]["seeds"] == [2]
    assert table["paired_seeds"] == [] and table["rezero_minus_baseline"] is None
    assert "no seed was run by both variants" in table["note"]
    assert "(rezero: seeds 1; no_retry: seeds 2)" in table["note"]
    assert "ReZero minus baseline, paired" not in markdown(table)


def test_one_variant_run_so_far_gives_its_row_only(results):
    remove_run(results, "no_retry-seed1")
    remove_run(results, "no_retry-seed2")
    table = compare(load_runs(results))
    assert list(table["variants"]) == ["rezero"] and table["rezero_minus_baseline"] is None
    assert "no_retry: seeds none" in table["note"]
    assert "| rezero | 62.5 [" in markdown(table)  # seeds 1 and 2: (0.5 + 0.75) / 2


def test_no_run_of_either_variant_is_an_error():
    with pytest.raises(PipelineError, match="no runs of the variants rezero, no_retry"):
        compare([])


def test_a_run_folder_without_its_outcomes_is_named_not_skipped(results):
    (results / "rezero-seed1" / "outcomes.jsonl").unlink()
    with pytest.raises(PipelineError, match=r"incomplete run folders: rezero-seed1 \(no outcomes.jsonl\)"):
        load_runs(results)


def test_one_seed_says_its_intervals_hold_only_question_noise(tmp_path):
    write_run(tmp_path, "rezero", 1, CHOSEN[("rezero", 1)])
    write_run(tmp_path, "no_retry", 1, CHOSEN[("no_retry", 1)])
    table = compare(load_runs(tmp_path))
    assert table["note"].startswith("one seed")
    assert "one seed" in markdown(table)


def test_the_table_shows_each_variant_and_the_paired_difference(results):
    text = markdown(compare(load_runs(results)))
    assert "| rezero | 62.5 [" in text and "| no_retry | 37.5 [" in text
    assert "ReZero minus baseline, paired by seed and question (seeds 1, 2): accuracy 25.0 [" in text


def test_save_run_copies_a_finished_runs_files_from_the_workspace(tmp_path):
    project = tmp_path / "project"
    write_json(project / "metrics/train.json", {"variant": "no_retry", "seed": 7, "steps": 12})
    write_json(project / "metrics/evaluate.json", {"best_step": 4})
    write_jsonl(project / "evaluation/outcomes.jsonl", outcome_rows(STEP0, STEP0, [0] * 4))
    folder = save_run(project, tmp_path / "results")
    assert folder == tmp_path / "results" / "no_retry-seed7"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["train"]["steps"] == 12 and summary["evaluate"]["best_step"] == 4
    assert len((folder / "outcomes.jsonl").read_text().splitlines()) == 24


def test_curves_follow_each_runs_test_accuracy_and_searches_by_step(results):
    found = curves(load_runs(results))
    assert list(found) == ["rezero, seed 1", "rezero, seed 2", "no_retry, seed 1", "no_retry, seed 2"]
    assert found["rezero, seed 1"] == {
        0: {"accuracy": 0.25, "searches_per_question": 1.0},
        4: {"accuracy": 0.5, "searches_per_question": 1.25},
    }


def test_a_resumed_experiment_starts_at_its_lowest_recorded_seed(results, tmp_path):
    assert first_recorded_seed(results) == 1
    assert first_recorded_seed(tmp_path / "new") is None  # nothing recorded: params.yaml's seed

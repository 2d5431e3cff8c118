"""ReZero against the no-retry baseline over seeds, rebuilt from the small files each finished run leaves.

A run's folder (`save_run`: `<variant>-seed<seed>/summary.json` and `outcomes.jsonl`) holds the `evaluate`
stage's summary, the `train` stage's summary and every question's outcome under every evaluated model, so an
experiment may span days and machines and its table is computed from files kept in the repository, never
typed. `compare` reads a folder of such runs:

- per variant, the mean over seeds of the dev-selected checkpoint's test accuracy, with a bootstrap interval
  over questions (each averaged over the seeds), and its paired difference from the warm start (step 0);
- ReZero minus the baseline, seed by seed on the same questions (both continue the same warm start), over the
  seeds both variants ran (a seed only one has run yet counts in that variant's row, named in the note): the
  paired difference in accuracy, retry share and searches per question, each with its bootstrap interval
  over questions, and a sign-flip permutation p for accuracy (rezero/evaluation/statistics.py);
- the training rollouts' retry share and searches over the last quarter of steps (per seed, from the
  training's logged history), and the share of GRPO groups whose correctness varied.

Intervals over one seed hold only the question noise of that seed; the result says so.
"""

from __future__ import annotations

import re
import statistics as pystats
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rezero.core.errors import PipelineError
from rezero.core.io import read_json, read_jsonl, write_json, write_jsonl
from rezero.evaluation import statistics

SUMMARY_FILE, OUTCOMES_FILE = "summary.json", "outcomes.jsonl"
VARIANTS = ("rezero", "no_retry")  # the paper's method and its baseline (rewards.weights.retry = 0)
OUTCOME_KEYS = ("correct", "retried", "searches")  # per question: accuracy, retry share, searches


def outcomes_at(outcomes: Sequence[dict[str, Any]], step: int, split: str) -> dict[str, dict[str, Any]]:
    """Each question's outcome (by id) under the model of `step` on `split`: step 0 is the warm start, or
    the raw model when there was none (`outcome_rows` in rezero/evaluation/scoring.py)."""
    rows = [r for r in outcomes if r["split"] == split and r["step"] == step]
    warm_started = any(r["model"] != "base" for r in rows)
    return {r["id"]: r for r in rows if r["model"] != "base" or not warm_started}


@dataclass
class RunResult:
    """One finished training and its evaluation: variant, seed, the stages' summaries, every outcome."""

    variant: str
    seed: int
    evaluate: dict[str, Any]
    train: dict[str, Any]
    outcomes: list[dict[str, Any]]

    def at_step(self, step: int, split: str = "test") -> dict[str, dict[str, Any]]:
        """Each question's outcome (by id) under the model of `step` on `split`; step 0 is the warm start."""
        return outcomes_at(self.outcomes, step, split)

    @property
    def chosen(self) -> dict[str, dict[str, Any]]:
        """Test outcomes of the checkpoint chosen on dev."""
        return self.at_step(self.evaluate["best_step"])


def save_run(project: Path, results: Path) -> Path:
    """Copy a finished run's summaries and outcomes from the workspace (metrics/train.json,
    metrics/evaluate.json, evaluation/outcomes.jsonl) into `results/<variant>-seed<seed>/`."""
    train = read_json(project / "metrics/train.json")
    evaluate = read_json(project / "metrics/evaluate.json")
    folder = Path(results) / f"{train['variant']}-seed{train['seed']}"
    write_json(
        folder / SUMMARY_FILE,
        {"variant": train["variant"], "seed": train["seed"], "train": train, "evaluate": evaluate},
    )
    write_jsonl(folder / OUTCOMES_FILE, read_jsonl(project / "evaluation/outcomes.jsonl"))
    return folder


def first_recorded_seed(results: Path) -> int | None:
    """The lowest seed with a run folder under `results`, None when there is none: a resumed experiment
    starts there, not at the seed the last `dvc exp run -S train.seed=...` left in the workspace."""
    found = (re.fullmatch(r".+-seed(\d+)", f.name) for f in Path(results).glob("*-seed*") if f.is_dir())
    return min((int(m.group(1)) for m in found if m), default=None)


def load_runs(results: Path) -> list[RunResult]:
    """Every run folder under `results`; a folder missing either file is named, not skipped."""
    folders = sorted(p for p in Path(results).iterdir() if p.is_dir()) if Path(results).is_dir() else []
    if not folders:
        raise PipelineError(f"{results}: no run folders (<variant>-seed<seed>/) here.")
    incomplete = [
        f"{f.name} (no {name})"
        for f in folders
        for name in (SUMMARY_FILE, OUTCOMES_FILE)
        if not (f / name).is_file()
    ]
    if incomplete:
        raise PipelineError(f"{results}: incomplete run folders: {', '.join(incomplete)}.")
    runs = []
    for folder in folders:
        summary = read_json(folder / SUMMARY_FILE)
        runs.append(
            RunResult(
                summary["variant"],
                int(summary["seed"]),
                summary["evaluate"],
                summary["train"],
                read_jsonl(folder / OUTCOMES_FILE),
            )
        )
    return runs


def by_seed(runs: Sequence[RunResult], variant: str) -> dict[int, RunResult]:
    return {run.seed: run for run in runs if run.variant == variant}


def _column(outcomes: dict[str, dict[str, Any]], ids: list[str], key: str) -> list[float]:
    return [float(outcomes[i][key]) for i in ids]


def _ids(runs: Sequence[RunResult]) -> list[str]:
    """The test questions every run answered (they must be the same set)."""
    sets = {run.variant + f" seed {run.seed}": frozenset(run.chosen) for run in runs}
    first = next(iter(sets.values()))
    differing = [name for name, ids in sets.items() if ids != first]
    if differing:
        raise PipelineError(f"runs scored different test questions: {', '.join(differing)}.")
    return sorted(first)


def variant_summary(runs: dict[int, RunResult], ids: list[str]) -> dict[str, Any]:
    """One variant over its seeds: dev-selected test accuracy (interval over questions), against step 0,
    evaluation retry share and searches, training rollouts' last quarter, correctness variance."""
    chosen = {seed: run.chosen for seed, run in runs.items()}
    step0 = {seed: run.at_step(0) for seed, run in runs.items()}

    def interval(outcomes: dict[int, dict[str, dict]], key: str) -> dict[str, float | int]:
        return statistics.mean_over_seeds({s: _column(o, ids, key) for s, o in outcomes.items()}).as_dict()

    def train_mean(key: str) -> float | None:
        values = [run.train.get(key) for run in runs.values()]
        return pystats.fmean(values) if values and None not in values else None

    versus = statistics.paired_difference_over_seeds(
        {s: _column(o, ids, "correct") for s, o in step0.items()},
        {s: _column(o, ids, "correct") for s, o in chosen.items()},
    )
    return {
        "seeds": sorted(runs),
        "best_steps": [runs[s].evaluate["best_step"] for s in sorted(runs)],
        "accuracy": interval(chosen, "correct"),
        "accuracy_by_seed": {str(s): pystats.fmean(_column(o, ids, "correct")) for s, o in chosen.items()},
        "step0_accuracy": interval(step0, "correct"),
        "vs_step0": versus.as_dict(),
        "vs_step0_p": statistics.paired_permutation_p(
            {s: _column(o, ids, "correct") for s, o in step0.items()},
            {s: _column(o, ids, "correct") for s, o in chosen.items()},
        ),
        "test_peak_accuracy": pystats.fmean(run.evaluate["test_peak_accuracy"] for run in runs.values()),
        "retry_share": interval(chosen, "retried"),
        "searches_per_question": interval(chosen, "searches"),
        "train_last_quarter_retried_share": train_mean("last_quarter_retried_share"),
        "train_last_quarter_searches_per_rollout": train_mean("last_quarter_searches_per_rollout"),
        "train_correctness_varied_share": train_mean("correctness_varied_share"),
    }


def curves(runs: Sequence[RunResult], split: str = "test") -> dict[str, dict[int, dict[str, float]]]:
    """Each run's accuracy and searches per question by step on `split` (step 0: the warm start), labelled
    "<variant>, seed <seed>", for rezero/evaluation/figures.py."""
    found = {}
    for run in sorted(runs, key=lambda r: (r.variant != "rezero", r.seed)):
        steps = sorted({row["step"] for row in run.outcomes if row["split"] == split})
        by_step = {}
        for step in steps:
            rows = list(run.at_step(step, split).values())
            by_step[step] = {
                "accuracy": pystats.fmean(row["correct"] for row in rows),
                "searches_per_question": pystats.fmean(row["searches"] for row in rows),
            }
        found[f"{run.variant}, seed {run.seed}"] = by_step
    return found


def compare(runs: Sequence[RunResult]) -> dict[str, Any]:
    """ReZero and the baseline, each over the seeds it ran, and ReZero minus the baseline over the seeds both
    ran, seed by seed. A seed only one variant ran (an experiment still under way) counts in that variant's
    row and is named in the note; with no seed in common (one variant run so far) the table holds the rows
    of the variants run and "rezero_minus_baseline" is None, named in the note. No run at all: an error."""
    found = {variant: by_seed(runs, variant) for variant in VARIANTS}
    every_seed = sorted(set().union(*found.values()))
    if not every_seed:
        raise PipelineError(f"no runs of the variants {', '.join(VARIANTS)} to compare.")
    rezero, baseline = found["rezero"], found["no_retry"]
    seeds = sorted(set(rezero) & set(baseline))
    ids = _ids(runs)
    note = (
        "one seed: the intervals hold only that seed's question noise, not the spread between seeds"
        if len(every_seed) < 2
        else f"{len(every_seed)} seeds; intervals resample questions, each averaged over the seeds"
    )
    unpaired = [f"{v} seed {s}" for v in VARIANTS for s in sorted(found[v]) if s not in seeds]
    if not seeds:
        ran = "; ".join(f"{v}: seeds {', '.join(map(str, sorted(found[v]))) or 'none'}" for v in VARIANTS)
        note += f"; no seed was run by both variants, so there is no ReZero minus baseline yet ({ran})"
    elif unpaired:
        note += (
            f"; {', '.join(unpaired)} not yet run by the other variant: in its variant's row only, not in "
            f"ReZero minus baseline (seeds {', '.join(map(str, seeds))})"
        )
    return {
        "seeds": every_seed,
        "paired_seeds": seeds,
        "questions": len(ids),
        "variants": {v: variant_summary(found[v], ids) for v in VARIANTS if found[v]},
        "rezero_minus_baseline": difference(rezero, baseline, seeds, ids) if seeds else None,
        "note": note,
    }


def difference(
    rezero: dict[int, RunResult], baseline: dict[int, RunResult], seeds: list[int], ids: list[str]
) -> dict[str, Any]:
    """ReZero minus the baseline on `seeds` (both ran them), paired by seed and question: a bootstrap
    interval for each outcome and the permutation p of accuracy."""
    paired = {
        key: statistics.paired_difference_over_seeds(
            {s: _column(baseline[s].chosen, ids, key) for s in seeds},
            {s: _column(rezero[s].chosen, ids, key) for s in seeds},
        ).as_dict()
        for key in OUTCOME_KEYS
    }
    p = statistics.paired_permutation_p(
        {s: _column(baseline[s].chosen, ids, "correct") for s in seeds},
        {s: _column(rezero[s].chosen, ids, "correct") for s in seeds},
    )
    return {**paired, "accuracy_p": p}


def markdown(comparison: dict[str, Any]) -> str:
    """The results table: each variant's dev-selected test accuracy over seeds with its interval, against
    step 0, retry share and searches (evaluation and training), then ReZero minus the baseline."""

    def pct(interval: dict[str, float]) -> str:
        return f"{100 * interval['estimate']:.1f} [{100 * interval['low']:.1f}, {100 * interval['high']:.1f}]"

    def num(interval: dict[str, float]) -> str:
        return f"{interval['estimate']:.2f} [{interval['low']:.2f}, {interval['high']:.2f}]"

    def share(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}"

    lines = [
        f"Seeds {', '.join(map(str, comparison['seeds']))}; {comparison['questions']} test questions; "
        f"[95 % interval]; {comparison['note']}.",
        "",
        "| variant | test accuracy, dev-selected (%) | step 0 (%) | minus step 0 (points) | p | chosen steps "
        "| retry share, eval (%) | searches / q, eval | training retry share, last quarter (%) "
        "| training searches / rollout, last quarter | groups with correctness varying (%) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in comparison["variants"].items():
        cells = [
            name,
            pct(v["accuracy"]),
            pct(v["step0_accuracy"]),
            pct(v["vs_step0"]),
            f"{v['vs_step0_p']:.2f}",
            ", ".join(map(str, v["best_steps"])),
            pct(v["retry_share"]),
            num(v["searches_per_question"]),
            share(v["train_last_quarter_retried_share"]),
            "—"
            if v["train_last_quarter_searches_per_rollout"] is None
            else f"{v['train_last_quarter_searches_per_rollout']:.2f}",
            share(v["train_correctness_varied_share"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    d = comparison["rezero_minus_baseline"]
    if d is None:  # one variant run so far: the note says which
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"ReZero minus baseline, paired by seed and question (seeds "
        f"{', '.join(map(str, comparison['paired_seeds']))}): accuracy {pct(d['correct'])} points "
        f"(permutation p = {d['accuracy_p']:.2f}), retry share {pct(d['retried'])} points, searches per "
        f"question {num(d['searches'])}.",
    ]
    return "\n".join(lines) + "\n"

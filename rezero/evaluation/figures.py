"""Accuracy and searches per question by checkpoint as a figure (matplotlib, no display needed).

One curve per labelled run on shared axes: the `evaluate` stage draws its own run; the comparison flow draws
every ReZero and baseline run of the experiment, so variants and seeds read side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PANELS = (("accuracy", "accuracy (greedy, test split)"), ("searches_per_question", "searches per question"))


def by_step_figure(curves: Mapping[str, Mapping[int, Mapping[str, float]]], title: str) -> Any:
    """`curves`: label → step → metrics (as in `evaluation/by_step.csv`); one line per label per panel."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and CI
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, len(PANELS), figsize=(11, 4), constrained_layout=True)
    for ax, (key, label) in zip(axes, PANELS, strict=True):
        for name, by_step in curves.items():
            steps = sorted(s for s, metrics in by_step.items() if key in metrics)
            ax.plot(steps, [by_step[s][key] for s in steps], marker="o", label=name)
        ax.set_xlabel("GRPO step (0: the warm start)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.suptitle(title)
    return figure

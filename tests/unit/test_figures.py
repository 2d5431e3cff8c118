"""The by-step figure: one curve per run on each panel, on shared axes."""

from __future__ import annotations

from rezero.evaluation.figures import PANELS, by_step_figure


def test_each_panel_has_one_curve_per_run():
    curves = {
        "rezero, seed 42": {0: {"accuracy": 0.28, "searches_per_question": 1.0}, 4: {"accuracy": 0.31}},
        "no_retry, seed 42": {0: {"accuracy": 0.28, "searches_per_question": 1.0}},
    }
    figure = by_step_figure(curves, "ReZero vs. no-retry")
    accuracy, searches = figure.axes
    assert [line.get_label() for line in accuracy.lines] == list(curves)
    assert list(accuracy.lines[0].get_xdata()) == [0, 4]  # a step without the metric is left out
    assert list(searches.lines[0].get_xdata()) == [0]
    assert [ax.get_ylabel() for ax in figure.axes] == [label for _, label in PANELS]

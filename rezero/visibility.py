"""Answer visibility: does the agent get to see the gold answer at all?

A question's answer is visible when it appears (normalised as the judge normalises, on word boundaries) in
the results the agent is shown when the question itself is the query. No policy can answer better than this
share from a single search, so the `synthesize` stage reports it for both splits, and the warm start keeps
only demonstrations whose answer is visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from rezero.agent import SearchEnvironment
from rezero.judges import normalize_answer


def answer_visible(answer: str, shown: str) -> bool:
    """Whether `answer` occurs in `shown` as whole words after normalisation (punctuation dropped or read
    as a space, as the judge does), so "Nov. 7" is found in "on Nov.7," and "tank" is not found in "tanks".

    >>> answer_visible("55 hours", "at about 55 hours, 54 minutes"), answer_visible("tank", "two tanks")
    (True, False)
    """
    for punctuation_to in ("", " "):
        wanted = normalize_answer(answer, punctuation_to)
        if wanted and f" {wanted} " in f" {normalize_answer(shown, punctuation_to)} ":
            return True
    return False


def first_result_showing(answer: str, shown: Sequence[str]) -> int | None:
    """The number (1-based) of the first shown result that holds the answer, or None."""
    return next((n for n, text in enumerate(shown, 1) if answer_visible(answer, text)), None)


def answer_visibility(records: Sequence[dict], env: SearchEnvironment) -> float:
    """Share of records whose answer is visible in the results shown for their question as the query."""
    if not records:
        return 0.0
    visible = sum(
        first_result_showing(record["answer"], [hit.shown for hit in env.search(record["question"])])
        is not None
        for record in records
    )
    return visible / len(records)

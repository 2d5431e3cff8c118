"""Answer visibility: does the agent get to see the gold answer at all?

A question's answer is visible when it appears (normalised as the judge normalises, on word boundaries) in
the results the agent is shown when the question itself is the query. No policy can answer better than this
share from a single search, so the `synthesize` stage reports it for both splits, and the warm start keeps
only demonstrations whose answer is visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from rezero.episode.agent import SearchEnvironment
from rezero.episode.answers import first_result_showing


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

"""The paper's train/test split: one seeded shuffle; the first round(n * fraction) records are the test."""

from __future__ import annotations

import random
from typing import Any

from rezero.errors import PipelineError


def held_out_count(n: int, test_fraction: float) -> int:
    """round(n * fraction), at least 1 and at most n - 1 once there are two records (318 -> 32)."""
    if n < 2:
        return 0
    return min(n - 1, max(1, round(n * test_fraction)))


def split_train_test(
    records: list[dict[str, Any]], test_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shuffle a copy of `records` with `random.Random(seed)`; return (train, test).

    The same records in the same order and the same seed always give the same split (paper: 318 pairs,
    fraction 0.1, seed 42 -> 286 train / 32 test). Records keep their shuffled order in both parts.
    """
    if not isinstance(records, list) or not records:
        raise PipelineError(
            "split: no QA records to split. The synthesis step kept no pair; check its summary "
            "(pairs_dropped_*) and the generator settings."
        )
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float)
        or not 0 < test_fraction < 1
    ):
        raise PipelineError(
            f"split: test_fraction must be a number between 0 and 1 (paper: 0.1), got {test_fraction!r}."
        )
    ids = [record.get("id") if isinstance(record, dict) else None for record in records]
    if None in ids or len(set(ids)) != len(ids):
        raise PipelineError(
            "split: every record needs a unique 'id' so train and test cannot share a question; "
            "run the records through keep_grounded first."
        )
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    n_test = held_out_count(len(shuffled), test_fraction)
    return shuffled[n_test:], shuffled[:n_test]

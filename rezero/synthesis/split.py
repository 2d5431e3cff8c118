"""The paper's train/test split, made by the library the paper used: Hugging Face `datasets`'
`train_test_split(test_size=fraction, seed=seed)`. It draws `numpy.random.default_rng(seed).permutation(n)`
and holds out its first ceil(n * fraction) indices, so the paper's 318 pairs in file order give its exact
286 / 32 split with seed 42. The dev split (`split_dev`) is then drawn from the training split, so the test
split stays the paper's.
"""

from __future__ import annotations

import math
import random
from typing import Any

from rezero.core.errors import PipelineError


def held_out_count(n: int, test_fraction: float) -> int:
    """ceil(n * fraction) as `datasets` computes it, at most n - 1 (318 -> 32); 0 below two records."""
    if n < 2:
        return 0
    return min(n - 1, max(1, math.ceil(n * test_fraction)))


def split_train_test(
    records: list[dict[str, Any]], test_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split a copy of `records` as `datasets.Dataset.train_test_split(test_size, seed=seed)` does; return
    (train, test), each in the permutation's order. The same records in the same order and the same seed
    always give the same split (paper: 318 pairs, fraction 0.1, seed 42 -> 286 train / 32 test).
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
    if len(records) < 2:  # datasets refuses to split one row; it becomes training data
        return list(records), []
    from datasets import Dataset  # imported here: it takes a second or two, and only this step needs it

    # Split row numbers, not the records: the records come back exactly as they went in (no Arrow typing).
    parts = Dataset.from_dict({"row": list(range(len(records)))}).train_test_split(
        test_size=held_out_count(len(records), test_fraction), seed=seed
    )
    return [records[i] for i in parts["train"]["row"]], [records[i] for i in parts["test"]["row"]]


def split_dev(
    train: list[dict[str, Any]], dev_size: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hold `dev_size` records of the training split out as the dev split; return (train, dev), each in
    the order it came in. Checkpoints are chosen on dev, so the test split is scored only once per model.
    The same records and seed always give the same split.
    """
    if not 0 < dev_size < len(train):
        raise PipelineError(
            f"split: synthesize.dev_size = {dev_size} must be at least 1 and leave training questions: the "
            f"training split has {len(train)}. Lower synthesize.dev_size."
        )
    held = set(random.Random(seed).sample(range(len(train)), dev_size))
    return (
        [record for i, record in enumerate(train) if i not in held],
        [record for i, record in enumerate(train) if i in held],
    )

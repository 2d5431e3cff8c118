"""Data contracts of the chunk and QA outputs, checked with Great Expectations before a stage writes them.

Each contract is a GX expectation suite run in-process on a pandas DataFrame of the records. Rules that are
not plain column checks (grounding, leakage, stripped text) become derived columns that a stock
expectation checks, so GX still produces the validation result the failure report is built from. Any
failed expectation raises one PipelineError listing every failure with its observed value and a hint.

GX takes about 3 s to import, so it and pandas are imported inside the functions: importing
this module stays cheap for stages and tests that never validate.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rezero.core.errors import PipelineError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CHUNK_FIELDS = ("chunk_id", "position", "text")
QA_FIELDS = ("id", "question", "answer", "chunk_id", "chunk_text", "difficulty", "generator")
# Row labels listed per failed expectation; the rest is counted, so a broken run gives a readable message.
MAX_LISTED = 10


# --- shared: build a suite, run it on a DataFrame, turn failures into plain words ----------------------


def run_suite(name: str, frame: pd.DataFrame, expectations: Sequence[Any], labels: list[str]) -> list[str]:
    """Validate `frame` against `expectations` with GX; one plain-words line per failed expectation.

    Each expectation carries its `description` (what a failing row or table is, e.g. "chunks longer than
    1000 characters"); `meta={"values": "lengths"}` also lists the observed values under that word.
    Failing rows are named by `labels` (one per row of `frame`).
    """
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    start = time.perf_counter()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(name)
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=list(expectations)))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    # COMPLETE: every failing row's index, so the message can name all of them by id, not a sample.
    result = definition.run(batch_parameters={"dataframe": frame}, result_format="COMPLETE")
    failures = [describe_failure(item, labels) for item in result.results if not item.success]
    log.info(
        "validated %s: %d rows, %d expectations, %d failed in %.2f s",
        name,
        len(frame),
        len(expectations),
        len(failures),
        time.perf_counter() - start,
    )
    return failures


def import_gx() -> Any:
    """great_expectations, imported on first use, with its INFO chatter kept out of the pipeline's logs."""
    package_logger = logging.getLogger("great_expectations")
    if package_logger.level == logging.NOTSET:  # an entry point that chose a level for GX keeps it
        package_logger.setLevel(logging.WARNING)
    import great_expectations as gx

    # This module pins its own logger to INFO at import and logs a temporary docs directory per context.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    return gx


def row_labels(ids: Sequence[Any], prefix: str) -> list[str]:
    """Each record's id, or its place in the list ('#3', 'test #0') when it has none."""
    return [value if text_or_empty(value) else f"{prefix}#{row}" for row, value in enumerate(ids)]


def describe_failure(item: Any, labels: list[str]) -> str:
    """'3 of 341 chunks longer than 1000 characters: ids a, b, c (lengths 1200, ...)' or 'expected 341 chunks,
    got 340'; 'could not check ...' when GX raised while computing the expectation."""
    config, result = item.expectation_config, item.result
    what = config.description
    error = exception_message(item.exception_info or {})
    if error:
        return f"could not check {what}: {error}"
    if "unexpected_count" not in result:
        return f"{what}, got {result.get('observed_value')}"
    # GX gives DataFrame index values; the frames built here have a RangeIndex, so these are row numbers.
    ids = _listing(dict.fromkeys(labels[i] for i in result["unexpected_index_list"]))
    line = f"{result['unexpected_count']} of {result['element_count']} {what}: ids {ids}"
    values_word = (config.meta or {}).get("values")
    if values_word:
        line += f" ({values_word} {_listing(result['unexpected_list'])})"
    return line


def exception_message(info: dict[str, Any]) -> str | None:
    """GX reports an error either directly or per metric ({metric id: {...}}); the first message, if any."""
    for entry in (info, *info.values()):
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def _listing(items: Sequence[Any] | dict[Any, None]) -> str:
    items = list(items)
    shown = ", ".join(str(item) for item in items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def raise_on_failures(what: str, failures: list[str], hint: str) -> None:
    """One PipelineError naming every failure, so a single run shows all that is wrong."""
    if failures:
        raise PipelineError(f"{what}: {len(failures)} check(s) failed: {'; '.join(failures)}. {hint}")


def records_frame(records: Any, fields: Sequence[str], what: str) -> pd.DataFrame:
    """A DataFrame with exactly `fields` as columns; a missing key becomes a null the suite reports."""
    import pandas as pd

    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        got = "a list with non-dict items" if isinstance(records, list) else type(records).__name__
        raise PipelineError(
            f"{what}: expected a list of records (dicts), got {got}. Re-run the stage that writes them."
        )
    # dtype=object keeps values as written: an int column with one gap must not turn into floats.
    return pd.DataFrame({name: [record.get(name) for record in records] for name in fields}, dtype=object)


def text_or_empty(value: Any) -> str:
    """A missing or non-string field counts as empty text, so the non-empty rule reports it."""
    return value.strip() if isinstance(value, str) else ""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- chunks ---------------------------------------------------------------------------------------------


def validate_chunks(chunks: list[dict], chunk_size: int, expected_count: int | None) -> None:
    """Check the chunk stage's output; raise PipelineError listing every broken rule.

    Rules: exactly `expected_count` chunks when set (at least one otherwise), no empty or whitespace-only
    text, no text longer than `chunk_size` characters, chunk_id and position present and unique.
    """
    frame = records_frame(chunks, CHUNK_FIELDS, "chunk validation")
    # An empty id or a non-integer position is as unusable downstream as a missing one.
    # `where` keeps the object dtype: positions stay ints, not floats, in the message.
    frame["chunk_id"] = frame["chunk_id"].where(frame["chunk_id"].map(text_or_empty).astype(bool), None)
    frame["position"] = frame["position"].where(frame["position"].map(is_int), None)
    frame["text_stripped"] = frame["text"].map(text_or_empty)
    frame["text_length"] = frame["text"].map(lambda text: len(text) if isinstance(text, str) else 0)
    labels = row_labels(list(frame["chunk_id"]), "")
    failures = run_suite("chunks", frame, chunk_expectations(chunk_size, expected_count), labels)
    raise_on_failures(
        "chunk validation",
        failures,
        "Check chunk.chunk_size / chunk.expected_count in params.yaml and the source document, "
        "then re-run the chunk stage.",
    )


def chunk_expectations(chunk_size: int, expected_count: int | None) -> list[Any]:
    gxe = import_gx().expectations

    if expected_count is None:
        count = gxe.ExpectTableRowCountToBeBetween(min_value=1, description="expected at least one chunk")
    else:
        count = gxe.ExpectTableRowCountToEqual(
            value=expected_count, description=f"expected {expected_count} chunks"
        )
    return [
        count,
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text_stripped", min_value=1, description="chunks with empty or whitespace-only text"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="text_length",
            max_value=chunk_size,
            description=f"chunks longer than {chunk_size} characters",
            meta={"values": "lengths"},
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="chunk_id", description="chunks without a chunk_id"),
        gxe.ExpectColumnValuesToBeUnique(column="chunk_id", description="chunks with a duplicate chunk_id"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="position", description="chunks without an integer position"
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="position", description="chunks with a duplicate position", meta={"values": "positions"}
        ),
    ]


# --- QA pairs -------------------------------------------------------------------------------------------


def validate_qa(
    train: list[dict], test: list[dict], test_fraction: float, dev: list[dict] | None = None
) -> None:
    """Check the synthesize stage's train, test and dev records; raise PipelineError naming every broken rule.

    Rules: non-empty question, answer and chunk_id; the answer is a case-insensitive substring of
    chunk_text; no question asked twice within a split (case- and spacing-insensitive); no question
    containing its answer; the test split holds `expected_test_size` of all records; no question in two
    splits.
    """
    splits = {"train": train, "test": test, "dev": dev or []}
    frames = {
        name: records_frame(rows, QA_FIELDS, f"QA validation ({name})") for name, rows in splits.items()
    }
    labels = [label for name, f in frames.items() for label in row_labels(list(f["id"]), f"{name} ")]
    frame = qa_frame(frames)
    failures = run_suite("qa", frame, qa_expectations(len(frame), test_fraction), labels)
    raise_on_failures(
        "QA validation",
        failures,
        "Re-run the synthesize stage (its grounding filter and splits prevent these) and check "
        "synthesize.test_fraction / synthesize.dev_size / synthesize.generator in params.yaml.",
    )


def qa_frame(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every split in one frame (column `split`) with the derived columns the QA rules check."""
    import pandas as pd

    frame = pd.concat([f.assign(split=name) for name, f in splits.items()], ignore_index=True)
    for column in ("question", "answer", "chunk_id"):
        frame[f"{column}_stripped"] = frame[column].map(text_or_empty)
    answer = frame["answer_stripped"].str.casefold()
    chunk_text = frame["chunk_text"].map(text_or_empty).str.casefold()
    question = frame["question"].map(text_or_empty).str.casefold()
    # An empty answer is reported by the non-empty rule only: "" is in every string, so it passes these two.
    frame["grounded"] = [a in text for a, text in zip(answer, chunk_text, strict=True)]
    # Published pairs are kept as written (rezero/synthesis/published.py): the rule is for generated ones.
    published = frame["generator"] == "published"
    frame["answer_hidden"] = [
        not a or a not in q or is_published
        for a, q, is_published in zip(answer, question, published, strict=True)
    ]
    # Same key as the grounding filter's dedup: case and runs of spaces do not make a new question.
    frame["question_key"] = [" ".join(q.split()) or None for q in question]
    # A held-out record leaks when its question is in a split before it (train, then test, then dev).
    seen: set[str] = set()
    frame["leaked"] = False
    for name in splits:
        in_split = frame["split"] == name
        frame.loc[in_split, "leaked"] = frame.loc[in_split, "question_key"].isin(seen)
        seen |= set(frame.loc[in_split, "question_key"].dropna())
    frame["is_test"] = (frame["split"] == "test").astype(int)
    return frame


def non_empty(column: str) -> Any:
    """GX string-length check on the stripped copy `<column>_stripped`: whitespace-only counts as empty."""
    gxe = import_gx().expectations

    return gxe.ExpectColumnValueLengthsToBeBetween(
        column=f"{column}_stripped", min_value=1, description=f"records with an empty or missing {column}"
    )


def expected_test_size(n_total: int, test_fraction: float) -> int:
    """ceil(n * fraction), at least 1 and at most n - 1 once there are two records (318, 0.1 -> 32).

    The rule of `datasets`' train_test_split (rezero.synthesis.split), restated so the check is independent.
    """
    if n_total < 2:
        return 0
    return min(n_total - 1, max(1, math.ceil(n_total * test_fraction)))


def qa_expectations(n_total: int, test_fraction: float) -> list[Any]:
    gxe = import_gx().expectations

    n_test = expected_test_size(n_total, test_fraction)
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="expected at least one QA record"),
        *(non_empty(column) for column in ("question", "answer", "chunk_id")),
        gxe.ExpectColumnValuesToBeInSet(
            column="grounded", value_set=[True], description="records whose answer is not in their chunk_text"
        ),
        # Duplicates across the splits are leakage, reported by the rule below; here: within one split.
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["split", "question_key"],
            ignore_row_if="any_value_is_missing",
            description="records whose question is asked again in the same split",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="answer_hidden", value_set=[True], description="records whose question contains the answer"
        ),
        # The test size is the sum of the 0/1 split flag, so GX reports the observed size.
        gxe.ExpectColumnSumToBeBetween(
            column="is_test",
            min_value=n_test,
            max_value=n_test,
            description=f"expected {n_test} test records (test_fraction {test_fraction:g} of {n_total})",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="leaked",
            value_set=[False],
            description="held-out records whose question is also in train (or, for dev, in test)",
        ),
    ]

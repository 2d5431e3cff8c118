"""QA synthesis: chunks -> grounded question/answer records, and the paper's train/test split.

`generate_pairs` runs the chosen generator (a 'published' QA file, 'offline' rules or an 'openai'-compatible
LLM), ties each pair to its chunk and passes everything through the paper's grounding filter
(`keep_grounded`).
`split_train_test` holds out the test questions, `split_dev` the dev questions. Records follow the contract
in `pairs.py`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rezero.core.config import SynthesizeParams
from rezero.core.errors import PipelineError
from rezero.synthesis import offline, published
from rezero.synthesis.pairs import GeneratorRun, check_chunks, keep_grounded, make_record
from rezero.synthesis.split import split_dev, split_train_test

__all__ = ["generate_pairs", "keep_grounded", "split_dev", "split_train_test"]

log = logging.getLogger(__name__)


def run_generator(chunks: list[dict[str, Any]], params: SynthesizeParams) -> GeneratorRun:
    if params.generator == published.NAME:
        return published.generate(chunks, params)
    if params.generator == offline.NAME:
        return offline.generate(chunks, params)
    if params.generator == "openai":
        # Imported here: the openai client takes seconds to import and the offline path never needs it.
        from rezero.synthesis import openai_generator

        return openai_generator.generate(chunks, params)
    raise PipelineError(
        f"synthesize.generator must be 'published', 'offline' or 'openai', got {params.generator!r}."
    )


def generate_pairs(
    chunks: list[dict[str, Any]], params: SynthesizeParams
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate, ground and de-duplicate QA records for `chunks`; return (records, summary).

    The summary counts chunks_in, chunks_with_pairs (chunks with at least one kept record),
    pairs_generated, pairs_kept, pairs_dropped_{ungrounded, answer_in_question, duplicate}, any counts
    of the generator's own (requests, replies_malformed, ...), and names the generator and its settings.
    Raises PipelineError on bad chunks and when no pair at all survives.
    """
    if not isinstance(params, SynthesizeParams):
        raise PipelineError(f"synthesis: expected SynthesizeParams, got {type(params).__name__}.")
    check_chunks(chunks)
    started = time.perf_counter()
    run = run_generator(chunks, params)
    proposed = [make_record(chunk, pair, params.generator) for chunk, pair in run.pairs]
    # Published pairs are kept as their authors wrote them: a few of the paper's questions contain their
    # answer by chance ("1" in "tank 1"), and dropping them would change the paper's split.
    records, dropped = keep_grounded(proposed, drop_answer_in_question=params.generator != published.NAME)
    summary: dict[str, Any] = {
        "chunks_in": len(chunks),
        "chunks_with_pairs": len({record["chunk_id"] for record in records}),
        "pairs_generated": len(proposed),
        "pairs_kept": len(records),
        **{f"pairs_dropped_{reason}": count for reason, count in dropped.items()},
        **run.counts,
        "generator": params.generator,
        "generator_settings": run.settings,
    }
    log.info(
        "synthesized %d grounded pairs from %d of %d chunks (%d proposed, dropped %s) in %.2f s",
        len(records),
        summary["chunks_with_pairs"],
        len(chunks),
        len(proposed),
        dropped,
        time.perf_counter() - started,
    )
    if not records:
        raise PipelineError(
            f"synthesis: no pair survived the grounding filter ({len(proposed)} proposed, dropped "
            f"{dropped}). Check that the chunks hold prose, or the generator's replies in the log."
        )
    return records, summary

"""The `published` generator: QA pairs someone already wrote (here the paper's 318), tied to our chunks.

The file is JSON lines with `question`, `answer` and `supporting_paragraphs` (the paragraphs of the chunk the
pair was written from, i.e. that chunk split on blank lines; the paper's `questions.jsonl` has exactly this
shape). It is read from a path, or from a sha256-pinned URL with local copies tried first. Each pair is mapped
to the one chunk of ours that holds all of its supporting paragraphs (whitespace collapsed); the paper's
chunk numbers (`id`) are not used, since nothing guarantees they agree with ours. Every row must map: a row
that does not, or that lacks a question or an answer, is an error naming the file and the row, so a pair is
never dropped silently. Rows keep their file order, which the paper's split depends on (`split.py`).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from rezero.core.config import SynthesizeParams
from rezero.core.errors import PipelineError
from rezero.core.io import parse_jsonl
from rezero.data.chunking import collapse_whitespace
from rezero.data.documents import read_pinned
from rezero.synthesis.pairs import GeneratorRun, QAPair

log = logging.getLogger(__name__)

NAME = "published"
MAX_LISTED = 10  # rows named in an error; the rest are counted
HOW_TO_FIX = (
    "Point `synthesize.published_source` at a JSONL file of {question, answer, supporting_paragraphs} rows "
    "and set `synthesize.published_sha256` to its sha256 (null for an unpinned local file)."
)


def read_published(params: SynthesizeParams, base_dir: Path = Path(".")) -> tuple[list[dict[str, Any]], str]:
    """The rows of the configured QA file and where they were read from; bad bytes or rows raise."""
    source, expected = params.published_source, params.published_sha256
    if not source:
        raise PipelineError(f"synthesize.published_source is empty. {HOW_TO_FIX}")
    if source.startswith(("http://", "https://")):
        if not expected:
            raise PipelineError(f"QA file {source} is a URL and must be pinned. {HOW_TO_FIX}")
        data, read_from = read_pinned(
            source, expected, params.published_local_copies, params.timeout_s, base_dir, HOW_TO_FIX
        )
    else:
        path = base_dir / source
        if not path.is_file():
            raise PipelineError(f"{path}: QA file not found. {HOW_TO_FIX}")
        data, read_from = path.read_bytes(), str(source)
    digest = hashlib.sha256(data).hexdigest()
    if expected and digest != expected.lower():
        raise PipelineError(
            f"{read_from}: sha256 mismatch: expected {expected}, got {digest}. The file is not the pinned QA "
            "set; fix `synthesize.published_sha256` if the new file is intended."
        )
    return parse_rows(data, read_from), read_from


def parse_rows(data: bytes, name: str) -> list[dict[str, Any]]:
    """JSON objects, one per non-empty line, each with a non-empty `question` and `answer`."""
    rows = []
    for number, row in parse_jsonl(data, name):
        missing = [
            key
            for key in ("question", "answer")
            if not _text(row.get(key) if isinstance(row, dict) else None)
        ]
        if missing:
            raise PipelineError(f"{name}:{number}: the row has no {' and no '.join(missing)}. {HOW_TO_FIX}")
        rows.append({**row, "line": number})
    if not rows:
        raise PipelineError(f"{name}: the QA file has no rows. {HOW_TO_FIX}")
    return rows


def map_to_chunk(
    paragraphs: Any, chunks: list[dict[str, Any]], collapsed: list[str]
) -> dict[str, Any] | None:
    """The chunk that holds every supporting paragraph; among several, the one that is exactly those
    paragraphs, else the shortest (a short chunk can be repeated inside a longer one)."""
    if not isinstance(paragraphs, list):
        return None
    wanted = [collapse_whitespace(p) for p in paragraphs if isinstance(p, str) and p.strip()]
    if not wanted:
        return None
    found = [i for i, text in enumerate(collapsed) if all(p in text for p in wanted)]
    if not found:
        return None
    joined = " ".join(wanted)
    best = min(found, key=lambda i: (collapsed[i] != joined, len(collapsed[i])))
    return chunks[best]


def generate(chunks: list[dict[str, Any]], params: SynthesizeParams) -> GeneratorRun:
    """Every row of the QA file as a (chunk, pair), in file order; a row that maps to no chunk fails."""
    rows, read_from = read_published(params)
    collapsed = [collapse_whitespace(chunk["text"]) for chunk in chunks]
    pairs, unmatched = [], []
    for row in rows:
        chunk = map_to_chunk(row.get("supporting_paragraphs"), chunks, collapsed)
        if chunk is None:
            unmatched.append(row["line"])
            continue
        pairs.append((chunk, QAPair(_text(row["question"]), _text(row["answer"]), row.get("difficulty"))))
    if unmatched:
        listed = ", ".join(map(str, unmatched[:MAX_LISTED]))
        more = f" and {len(unmatched) - MAX_LISTED} more" if len(unmatched) > MAX_LISTED else ""
        raise PipelineError(
            f"{read_from}: {len(unmatched)} of {len(rows)} rows have supporting_paragraphs that no chunk "
            f"holds (lines {listed}{more}). Is the QA file about this document, chunked with the same "
            "chunk.* settings?"
        )
    log.info("mapped all %d pairs of %s to chunks", len(rows), read_from)
    settings = {"source": params.published_source, "read_from": read_from, "sha256": params.published_sha256}
    return GeneratorRun(pairs=pairs, settings=settings, counts={"rows": len(rows), "rows_mapped": len(pairs)})


def _text(value: Any) -> str:
    """A field as stripped text; numbers count (an answer may be written as 58), anything else is empty."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else ""

"""The QA record contract, the input checks, and the grounding filter every generator goes through.

A record is one row of the QA JSONL files that every later stage reads:
`{"id", "question", "answer", "chunk_id", "chunk_text", "difficulty", "generator"}`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rezero.core.errors import PipelineError

log = logging.getLogger(__name__)

DIFFICULTIES = ("easy", "medium", "hard")
# Reasons a pair is dropped, in the order they are checked; the summary reports one count per reason.
DROP_REASONS = ("ungrounded", "answer_in_question", "duplicate")


@dataclass(frozen=True)
class QAPair:
    """One question/answer pair as a generator proposes it, before it is tied to its chunk."""

    question: str
    answer: str
    difficulty: str | None = None


@dataclass
class GeneratorRun:
    """What a generator hands back: (chunk, pair) in chunk order, its settings and its own counts."""

    pairs: list[tuple[dict[str, Any], QAPair]]
    settings: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)


def check_chunks(chunks: Any) -> None:
    """Reject anything but a non-empty list of chunks with a unique id and some text."""
    if not isinstance(chunks, Sequence) or isinstance(chunks, str) or not chunks:
        raise PipelineError(
            "synthesis: no chunks to generate questions from. Run the chunk stage first and check "
            "that its output holds at least one chunk."
        )
    seen: set[str] = set()
    for number, chunk in enumerate(chunks):
        where = f"synthesis: chunk #{number}"
        if not isinstance(chunk, dict):
            raise PipelineError(
                f"{where}: expected a mapping with chunk_id and text, got {type(chunk).__name__}."
            )
        chunk_id, text = chunk.get("chunk_id"), chunk.get("text")
        if not isinstance(chunk_id, str) or not chunk_id:
            raise PipelineError(f"{where}: missing or empty 'chunk_id'. Re-run the chunk stage.")
        if not isinstance(text, str) or not text.strip():
            raise PipelineError(
                f"{where} ({chunk_id}): missing or empty 'text'. Re-run the chunk stage, which never "
                "writes empty chunks."
            )
        if chunk_id in seen:
            raise PipelineError(f"{where}: duplicate chunk_id {chunk_id!r}. Chunk ids must be unique.")
        seen.add(chunk_id)


def normalise_difficulty(value: Any) -> str | None:
    """'Easy', ' HARD ' -> 'easy', 'hard'; anything outside easy/medium/hard -> None."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value if value in DIFFICULTIES else None


def record_id(chunk_id: str, question: str) -> str:
    """Stable id: the same chunk and question always give the same 12 hex characters."""
    return hashlib.sha1(f"{chunk_id}\n{question}".encode()).hexdigest()[:12]


def make_record(chunk: dict[str, Any], pair: QAPair, generator: str) -> dict[str, Any]:
    question, answer = pair.question.strip(), pair.answer.strip()
    return {
        "id": record_id(chunk["chunk_id"], question),
        "question": question,
        "answer": answer,
        "chunk_id": chunk["chunk_id"],
        "chunk_text": chunk["text"],
        "difficulty": normalise_difficulty(pair.difficulty),
        "generator": generator,
    }


def drop_reason(
    question: str, answer: str, chunk_text: str, drop_answer_in_question: bool = True
) -> str | None:
    """Why a pair fails the paper's filter (None when it passes); case-insensitive, like the paper."""
    answer_key = answer.strip().casefold()
    if not answer_key or not question.strip() or answer_key not in chunk_text.casefold():
        return "ungrounded"
    if drop_answer_in_question and answer_key in question.casefold():
        return "answer_in_question"
    return None


def question_key(question: str) -> str:
    """Questions that differ only in case or spacing count as the same question."""
    return re.sub(r"\s+", " ", question).strip().casefold()


def keep_grounded(
    pairs: Iterable[dict[str, Any]], drop_answer_in_question: bool = True
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Keep the pairs that pass the grounding filter; return them and a count per drop reason.

    A pair (a dict with question, answer and chunk_text) is kept only if its answer is a case-insensitive
    substring of its chunk text (the paper's filter), its question does not give the answer away (unless
    `drop_answer_in_question` is False, for published pairs), and no earlier pair asked the same question
    (case-insensitive). Order is preserved.
    """
    kept: list[dict[str, Any]] = []
    dropped = dict.fromkeys(DROP_REASONS, 0)
    seen: set[str] = set()
    for pair in pairs:
        try:
            question, answer, text = pair["question"], pair["answer"], pair["chunk_text"]
        except (KeyError, TypeError) as err:
            raise PipelineError(
                f"grounding filter: every pair needs question, answer and chunk_text; got {pair!r:.200}."
            ) from err
        reason = drop_reason(str(question), str(answer), str(text), drop_answer_in_question)
        if reason is None and question_key(str(question)) in seen:
            reason = "duplicate"
        if reason is not None:
            dropped[reason] += 1
            continue
        seen.add(question_key(str(question)))
        kept.append(pair)
    return kept, dropped

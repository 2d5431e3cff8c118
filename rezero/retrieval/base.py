"""The retrieval contract every backend meets: documents in, ranked hits out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Document:
    """One indexed text. Distractors carry the id of the chunk they paraphrase (or their own id)."""

    doc_id: str
    chunk_id: str
    text: str
    original: bool = True


@dataclass(frozen=True)
class Hit:
    """One ranked search result. `original` is False for distractors (the paper's noise)."""

    chunk_id: str
    text: str
    score: float
    original: bool
    doc_id: str = ""


@runtime_checkable
class Retriever(Protocol):
    """Search any text, never raise on the query's content; best hit first."""

    def search(self, query: str, k: int) -> list[Hit]: ...

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]: ...

"""The retrieval contract every backend meets: documents in, ranked hits out."""

from __future__ import annotations

import re
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
    """One ranked search result. `original` is False for distractors (the paper's noise).

    `text` is always the whole chunk (em_chunk compares it); `snippet` is what the agent is shown when a
    search asked for windows (`snippet_chars`): at most that many characters around the passage that best
    matches the query, picked by the engine's own highlighter. None when no window was asked for.
    """

    chunk_id: str
    text: str
    score: float
    original: bool
    doc_id: str = ""
    snippet: str | None = None

    @property
    def shown(self) -> str:
        """What the agent is shown: the snippet when one was asked for, else the whole text."""
        return self.snippet if self.snippet is not None else self.text


@runtime_checkable
class Retriever(Protocol):
    """Search any text, never raise on the query's content; best hit first. With `snippet_chars`, every hit
    carries a `snippet` of at most that many characters (None: no snippets, the whole text only)."""

    def search(self, query: str, k: int, snippet_chars: int | None = None) -> list[Hit]: ...

    def search_many(
        self, queries: Sequence[str], k: int, snippet_chars: int | None = None
    ) -> list[list[Hit]]: ...


def check_snippet_chars(snippet_chars: int | None) -> None:
    """Reject a window size no highlighter can honour (0 used to mean "whole chunk": that is None now)."""
    if snippet_chars is not None and snippet_chars < 1:
        raise ValueError(
            f"snippet_chars must be >= 1 (or None for no window), got {snippet_chars}; "
            "set agent.result_chars to a positive number or null."
        )


# Words as both engines' analyzers split them (Unicode word characters, lower case): tantivy's "default"
# tokenizer and Elasticsearch's standard analyzer agree on them closely enough to rank alike.
WORD = re.compile(r"\w+", re.UNICODE)
_PARTIAL_WORD_AT_END = re.compile(r"\s*\S*$")
_PARTIAL_WORD_AT_START = re.compile(r"^\S*\s*")


def query_terms(query: str) -> list[str]:
    """The query's words in lower case: no query syntax survives (quotes, AND/OR, colons, parentheses)."""
    return [word.lower() for word in WORD.findall(query or "")]


def clip(text: str, limit: int) -> str:
    """At most `limit` characters from the start of `text`, ending at a word boundary when the cut would
    split a word (unless that word is all there is), trailing whitespace dropped.

    >>> clip("The oxygen tank failed", 13)
    'The oxygen'
    >>> clip("The oxygen tank", 15), clip("cryogenic", 4)
    ('The oxygen tank', 'cryo')
    """
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not text[limit].isspace():  # the cut falls inside a word: drop that word's head
        cut = _PARTIAL_WORD_AT_END.sub("", cut) or cut
    return cut.rstrip()


def _clip_start(text: str, limit: int) -> str:
    """`clip` from the other end: at most `limit` characters that end `text`, starting on a word."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    if not text[-limit - 1].isspace():
        cut = _PARTIAL_WORD_AT_START.sub("", cut) or cut
    return cut.lstrip()


def fit_window(fragment: str, limit: int, terms: set[str]) -> str:
    """A highlighter's `fragment` cut to `limit` characters at the end that keeps more of the query's
    `terms` (the start on ties): a fragment that overshoots by a word or two may have its match there.

    >>> fit_window("supercalifragilistic oxygen", 10, {"oxygen"}), fit_window("oxygen tank failed", 11, set())
    ('oxygen', 'oxygen tank')
    """
    fragment = fragment.strip()
    if len(fragment) <= limit:
        return fragment
    head, tail = clip(fragment, limit), _clip_start(fragment, limit)
    return tail if len(terms & set(query_terms(tail))) > len(terms & set(query_terms(head))) else head

"""The agent's tag protocol (the ReZero paper's, arXiv 2504.11001): read what the model wrote.

The model reasons in `<think>…</think>`, then searches with `<search>query</search>` or answers with
`<answer>…</answer>`; the environment runs the **last** search of the turn and replies, as a user message,
with `<information>…</information>`. A turn without a search ends the episode.

The agent loop (which query to run, when to stop) and the rewards (rezero/episode/rewards.py) both read turns
through these functions, so they agree on what a tag is. A tag counts only as a complete open/close pair,
matched lazily and case-sensitively, as in the paper's code; contents are returned stripped. Every function
accepts any value (None, a number, an unbalanced tag soup) and never raises: what is not a string reads as "".
"""

from __future__ import annotations

import re
from typing import Any

THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
SEARCH_RE = re.compile(r"<search>(.*?)</search>", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Any opening or closing information tag, in any case or shortening (<info>, <INFORMATION>, <Infos>): the
# model must never write one. The paper's format check lists these variants, as complete pairs.
INFORMATION_TAG_RE = re.compile(r"</?info\w*>", re.IGNORECASE)
# A protocol tag decorated as Markdown bold or italic (`**<think>**`, `*<answer>*`, `_</search>_`).
MARKDOWN_TAG_RE = re.compile(r"(\*\*|\*|_)</?(?:think|search|answer|information|info)>\1")


def as_text(value: Any) -> str:
    """`value` if it is a string, else "" (None, missing turns and other junk read as empty text).

    >>> as_text(None)
    ''
    """
    return value if isinstance(value, str) else ""


def extract_thinks(text: Any) -> list[str]:
    """The contents of every complete `<think>…</think>` pair, stripped, in order.

    >>> extract_thinks("<think> a </think><think>b</think><think>open")
    ['a', 'b']
    """
    return [m.strip() for m in THINK_RE.findall(as_text(text))]


def extract_searches(text: Any) -> list[str]:
    """The query of every complete `<search>…</search>` pair, stripped, in order.

    >>> extract_searches("<think>x</think><search> oxygen tank </search><search>crew</search>")
    ['oxygen tank', 'crew']
    """
    return [m.strip() for m in SEARCH_RE.findall(as_text(text))]


def last_search(text: Any) -> str | None:
    """The query the environment runs for this turn: the last search (possibly ""), or None if there is none.

    >>> last_search("<search>first</search> <search>second</search>"), last_search("<answer>42</answer>")
    ('second', None)
    """
    searches = extract_searches(text)
    return searches[-1] if searches else None


def extract_answer(text: Any) -> str | None:
    """The content of the last complete `<answer>…</answer>` pair, stripped, or None if there is none.

    >>> extract_answer("<think>x</think><answer> Fra Mauro </answer>"), extract_answer("<answer>unclosed")
    ('Fra Mauro', None)
    """
    answers = ANSWER_RE.findall(as_text(text))
    return answers[-1].strip() if answers else None


def count_searches(text: Any) -> int:
    """How many complete `<search>` pairs the text holds."""
    return len(SEARCH_RE.findall(as_text(text)))


def has_think(text: Any) -> bool:
    """Whether the text holds a complete `<think>` pair (empty or not)."""
    return THINK_RE.search(as_text(text)) is not None


def has_search(text: Any) -> bool:
    """Whether the text holds a complete `<search>` pair."""
    return SEARCH_RE.search(as_text(text)) is not None


def has_answer(text: Any) -> bool:
    """Whether the text holds a complete `<answer>` pair."""
    return ANSWER_RE.search(as_text(text)) is not None


def has_information_tag(text: Any) -> bool:
    """Whether the model wrote an information tag itself (any case, opening or closing, `<info>` too).

    >>> has_information_tag("<think>x</think><INFO>made up</INFO>"), has_information_tag("information")
    (True, False)
    """
    return INFORMATION_TAG_RE.search(as_text(text)) is not None


def has_markdown_tag(text: Any) -> bool:
    """Whether a protocol tag is wrapped in Markdown emphasis, e.g. `**<think>**`.

    >>> has_markdown_tag("**<think>**x**</think>**"), has_markdown_tag("<think>**bold** idea</think>")
    (True, False)
    """
    return MARKDOWN_TAG_RE.search(as_text(text)) is not None


def ends_episode(text: Any) -> bool:
    """Whether this turn ends the episode: it holds no complete `<search>` pair.

    >>> ends_episode("<think>x</think><search>q</search>"), ends_episode("<think>x</think><answer>y</answer>")
    (False, True)
    """
    return not has_search(text)

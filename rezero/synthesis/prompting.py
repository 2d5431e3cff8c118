"""The request the LLM generator sends per chunk, and a tolerant reader for what comes back.

Paper (reference "QA synthesis"): one prompt per chunk asking for 2 question/answer pairs answerable
only from that chunk, each with a self-rated difficulty. The wording below is ours. Small instruct
models wrap JSON in prose or code fences, or fall back to "Question: ... Answer: ..." lines, so the
reader accepts JSON anywhere in the reply, <question>/<answer> tags, and labelled lines.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rezero.synthesis.pairs import QAPair

SYSTEM_PROMPT = "You write factual quiz questions about technical documents. You reply with JSON only."
USER_PROMPT = """Read the text below and write {n} question-answer pairs that can be answered only from
this text.

Rules:
- Each question asks for one fact stated in the text and makes sense on its own (never "the text").
- Each answer is short (a few words, a number with its unit, a name or a date), copied exactly from
  the text.
- A question must not contain its answer.
- Rate each pair's difficulty as "easy", "medium" or "hard".

Reply with JSON only, in this form:
{{"pairs": [{{"question": "...", "answer": "...", "difficulty": "easy"}}]}}

Text:
\"\"\"
{text}
\"\"\""""

QUESTION_KEYS, ANSWER_KEYS, DIFFICULTY_KEYS = ("question", "q"), ("answer", "a"), ("difficulty", "level")
TAGGED = re.compile(
    r"<question>(?P<q>.*?)</question>\s*<answer>(?P<a>.*?)</answer>"
    r"(?:\s*<difficulty>(?P<d>.*?)</difficulty>)?",
    re.DOTALL | re.IGNORECASE,
)
LABELLED = re.compile(
    r"^\W*(?:q|question)\s*\d*\s*[:.)-]\s*(?P<q>.+?)\s*\n\W*(?:a|answer)\s*\d*\s*[:.)-]\s*(?P<a>.+?)\s*$"
    r"(?:\n\W*difficulty\s*[:.)-]\s*(?P<d>\w+))?",
    re.MULTILINE | re.IGNORECASE,
)


def build_messages(text: str, n: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_PROMPT.format(n=n, text=text)},
    ]


def _field(item: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    for key in keys:
        value = lowered.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _items(data: Any) -> list[Any]:
    """The list of pair objects in a decoded JSON value: a list, {"pairs": [...]}, or one pair."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if _field(data, QUESTION_KEYS) is not None:
            return [data]
        lists = [value for value in data.values() if isinstance(value, list)]
        return lists[0] if lists else []
    return []


def _from_json(text: str) -> list[QAPair]:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            data, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        pairs = []
        for item in _items(data):
            if isinstance(item, dict):
                question, answer = _field(item, QUESTION_KEYS), _field(item, ANSWER_KEYS)
                if question and answer:
                    pairs.append(QAPair(question, answer, _field(item, DIFFICULTY_KEYS)))
        if pairs:
            return pairs
    return []


def parse_reply(text: str | None) -> list[QAPair]:
    """Every question/answer pair found in a reply; an empty list means the reply was malformed."""
    if not text or not text.strip():
        return []
    pairs = _from_json(text)
    for pattern in (TAGGED, LABELLED):
        if not pairs:
            pairs = [
                QAPair(m.group("q").strip(), m.group("a").strip(), m.group("d"))
                for m in pattern.finditer(text)
                if m.group("q").strip() and m.group("a").strip()
            ]
    return pairs

"""Judges of correctness: does a predicted answer match the gold one?

The deterministic default canonicalises units and number words, normalises both answers (SQuAD-style) and
accepts containment, a token-F1 threshold, or a bare number whose unit the question states; the LLM judge
asks an OpenAI-compatible endpoint the paper's Yes/No question. Both refuse an answer too long to be one.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from rezero.core.config import RewardParams
from rezero.core.errors import PipelineError
from rezero.episode.answers import UNIT_WORDS, canonicalize_units, count_words, normalize_answer, token_f1
from rezero.external.openai_endpoint import ChatEndpoint
from rezero.external.redaction import redact_url


class Judge(Protocol):
    """Says whether a predicted answer matches the gold one. Implementations must pickle."""

    def __call__(self, question: str, prediction: str, gold: str) -> bool: ...


@dataclass(frozen=True)
class AnswerLengthLimit:
    """Refuses an answer longer than `max(max_answer_words, max_answer_gold_ratio * words of the gold)`.

    Pasting a passage or listing candidates into `<answer>` would otherwise pass by containing the gold
    answer, which GRPO learns to exploit. Not in the paper. A ratio of at least 1 lets every gold answer
    pass against itself. Words are counted by `count_words`.

    >>> limit = AnswerLengthLimit(max_answer_words=3, max_answer_gold_ratio=2.0)
    >>> limit.allows("one two three", "x"), limit.allows("the one two three", "x")  # articles not counted
    (True, True)
    >>> limit.allows("one two three four", "x"), limit.allows("one two three four", "x y")
    (False, True)
    """

    max_answer_words: int = 8  # params.yaml rewards.max_answer_words
    max_answer_gold_ratio: float = 2.0  # params.yaml rewards.max_answer_gold_ratio

    def __post_init__(self) -> None:
        words, ratio = self.max_answer_words, self.max_answer_gold_ratio
        if isinstance(words, bool) or not isinstance(words, int) or words < 1:
            raise ValueError(f"max_answer_words must be a whole number of words >= 1, got {words!r}")
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not math.isfinite(ratio):
            raise ValueError(f"max_answer_gold_ratio must be a finite number >= 1, got {ratio!r}")
        if ratio < 1:
            raise ValueError(
                f"max_answer_gold_ratio must be >= 1 (below, a long gold answer fails against itself), "
                f"got {ratio!r}"
            )

    def allows(self, prediction: str, gold: str) -> bool:
        limit = max(self.max_answer_words, self.max_answer_gold_ratio * count_words(gold))
        return count_words(prediction) <= limit


class NormalizedMatchJudge:
    """The deterministic offline judge: canonical units, normalised containment, token F1, bare numbers.

    Both texts (and the question) first go through `canonicalize_units` ("79%" and "79 per cent" read
    "79 percent", "27.5lb" reads "27.5 pound"), then through `normalize_answer` twice, punctuation removed
    and read as a space; a match either way counts. The prediction is correct when
    - it is no longer than `AnswerLengthLimit(max_answer_words, max_answer_gold_ratio)` allows, and
    - the gold's tokens occur as a contiguous run in it (so "Fra Mauro" matches "the Fra Mauro highlands",
      "tank" does not match "tanks"), or token F1 >= `f1_threshold`, or the gold is a number and unit
      words (`UNIT_WORDS`) and the prediction is that number with some unit words left out that the
      question states ("37" for "37 hours" when asked "How many hours ...").
    A gold answer that normalises to nothing (e.g. "The") never matches. The paper's LLM judge credited any
    answer that "contains the correct information"; the length limit is our addition against pasting.

    >>> judge = NormalizedMatchJudge(f1_threshold=0.8)
    >>> judge("", "the Fra Mauro highlands.", "Fra Mauro"), judge("", "Mauro", "Fra Mauro")
    (True, False)
    >>> judge("How many hours?", "37", "37 hours"), judge("How long?", "37", "37 hours")
    (True, False)
    """

    def __init__(
        self, f1_threshold: float = 0.8, max_answer_words: int = 8, max_answer_gold_ratio: float = 2.0
    ):
        if not (isinstance(f1_threshold, int | float) and 0 < f1_threshold <= 1):
            raise ValueError(f"f1_threshold must be in (0, 1], got {f1_threshold!r}")
        self.f1_threshold = float(f1_threshold)
        self.length_limit = AnswerLengthLimit(max_answer_words, max_answer_gold_ratio)

    def __repr__(self) -> str:
        limit = self.length_limit
        return (
            f"NormalizedMatchJudge(f1_threshold={self.f1_threshold}, max_answer_words="
            f"{limit.max_answer_words}, max_answer_gold_ratio={limit.max_answer_gold_ratio})"
        )

    def __call__(self, question: str, prediction: str, gold: str) -> bool:
        if not self.length_limit.allows(prediction, gold):
            return False
        texts = [canonicalize_units(text) for text in (question, prediction, gold)]
        # Punctuation both removed and read as a space, so "5,000"/"5000" and "Apollo-13"/"Apollo 13" match.
        return any(
            self._matches(*(normalize_answer(text, punctuation_to).split() for text in texts))
            for punctuation_to in ("", " ")
        )

    def _matches(self, question: list[str], predicted: list[str], expected: list[str]) -> bool:
        if not predicted or not expected:
            return False
        width = len(expected)
        contained = any(predicted[i : i + width] == expected for i in range(len(predicted) - width + 1))
        return (
            contained
            or token_f1(predicted, expected) >= self.f1_threshold
            or _unit_left_to_question(predicted, expected, question)
        )


def _unit_left_to_question(predicted: list[str], expected: list[str], question: list[str]) -> bool:
    """Whether gold `expected` is a number and unit words, and `predicted` is that number with only unit
    words of the gold after it, every left-out one stated in the question (all token lists)."""
    numbers = sum(1 for _ in itertools.takewhile(lambda token: any(c.isdigit() for c in token), expected))
    units = Counter(expected[numbers:])
    if not numbers or not units or not set(units) <= UNIT_WORDS or predicted[:numbers] != expected[:numbers]:
        return False
    said = Counter(predicted[numbers:])
    return said <= units and set(units - said) <= set(question)


# A Yes/No grading prompt in the spirit of the paper's (its code: check_student_answers).
JUDGE_PROMPT = (
    "You are grading a student's answer to a question. Compare the student's answer with the correct answer. "
    "Reply 'Yes' if the student's answer contains the correct information, even if it is worded differently; "
    "reply 'No' if it does not or is wrong.\n\n"
    "Question: {question}\nCorrect answer: {gold}\nStudent answer: {prediction}\n\n"
    "Reply with just 'Yes' or 'No'."
)


class LLMJudge:
    """An LLM judge over an OpenAI-compatible endpoint, asked the paper's Yes/No question.

    Settings default to the environment: `REZERO_JUDGE_BASE_URL` (e.g. http://127.0.0.1:8000/v1),
    `REZERO_JUDGE_API_KEY` (default "EMPTY", for local servers) and `REZERO_JUDGE_MODEL`. Greedy decoding;
    the reply counts as Yes when its first word is "yes" (the paper's code accepted "yes" anywhere in it).
    An answer longer than `AnswerLengthLimit(max_answer_words, max_answer_gold_ratio)` allows is No
    without asking (not in the paper: its judge credited any answer containing the correct information).
    An unreachable endpoint or an HTTP error raises `PipelineError` naming the URL: that is a broken setup,
    not a wrong answer. The client is created on first use and not pickled.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        max_tokens: int = 16,
        max_answer_words: int = 8,
        max_answer_gold_ratio: float = 2.0,
    ):
        self.base_url = base_url or os.environ.get("REZERO_JUDGE_BASE_URL", "")
        self.model = model or os.environ.get("REZERO_JUDGE_MODEL", "")
        self.api_key = api_key or os.environ.get("REZERO_JUDGE_API_KEY") or "EMPTY"
        self.timeout_s, self.max_retries, self.max_tokens = timeout_s, max_retries, max_tokens
        self.length_limit = AnswerLengthLimit(max_answer_words, max_answer_gold_ratio)
        if not self.base_url or not self.model:
            raise PipelineError(
                "LLM judge needs an endpoint and a model: set REZERO_JUDGE_BASE_URL and REZERO_JUDGE_MODEL "
                "(or use the offline NormalizedMatchJudge)."
            )
        self.endpoint = ChatEndpoint(
            role="LLM judge",
            base_url=self.base_url,
            api_key=self.api_key,
            model=self.model,
            unreachable_fix="Start the server or fix REZERO_JUDGE_BASE_URL.",
            status_fix="Check REZERO_JUDGE_MODEL and REZERO_JUDGE_API_KEY.",
            timeout_s=timeout_s,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return f"LLMJudge(base_url={redact_url(self.base_url)!r}, model={self.model!r})"

    def check(self) -> None:
        """Reach the endpoint once before a stage removes or starts anything: a dead or refusing judge is
        found then, not after the checkpoints are gone or never (no rollout answered)."""
        self.endpoint.check()

    def __call__(self, question: str, prediction: str, gold: str) -> bool:
        if not self.length_limit.allows(prediction, gold):
            return False  # too long to be an answer: No without asking
        prompt = JUDGE_PROMPT.format(question=question, gold=gold, prediction=prediction)
        reply = self.endpoint.chat(
            [{"role": "user", "content": prompt}], temperature=0.0, max_tokens=self.max_tokens
        )
        words = re.findall(r"[a-z]+", (reply or "").lower())
        return bool(words) and words[0] == "yes"


def make_judge(params: RewardParams) -> Judge:
    """The judge `rewards.judge` names (`normalized` or `llm`), with the length limit of `rewards.*`; an
    LLM judge's endpoint is reached once here, so a stage finds a dead one before it does anything."""
    words, ratio = params.max_answer_words, params.max_answer_gold_ratio
    if params.judge == "llm":
        judge = LLMJudge(max_answer_words=words, max_answer_gold_ratio=ratio)
        judge.check()
        return judge
    return NormalizedMatchJudge(params.f1_threshold, max_answer_words=words, max_answer_gold_ratio=ratio)

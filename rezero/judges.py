"""Judges of correctness: does a predicted answer match the gold one?

The deterministic default normalises both answers (SQuAD-style) and accepts containment or a token-F1
threshold; the LLM judge asks an OpenAI-compatible endpoint the paper's Yes/No question.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from typing import Any, Protocol

from rezero.errors import PipelineError


class Judge(Protocol):
    """Says whether a predicted answer matches the gold one. Implementations must pickle."""

    def __call__(self, question: str, prediction: str, gold: str) -> bool: ...


def normalize_answer(text: str, punctuation_to: str = "") -> str:
    """SQuAD-style normalisation: lower case, punctuation removed, articles dropped, whitespace collapsed.

    Punctuation is every Unicode punctuation character plus ASCII symbols, replaced by `punctuation_to`:
    "" as in SQuAD's script ("5,000" reads "5000"), or " " ("Apollo-13" reads "apollo 13").

    >>> normalize_answer("The  Odyssey's crew, (3)!"), normalize_answer("S-IVB stage", " ")
    ('odysseys crew 3', 's ivb stage')
    """
    text = "".join(
        punctuation_to if unicodedata.category(c).startswith("P") or c in "$+<=>^`|~" else c
        for c in text.lower()
    )
    return " ".join(token for token in text.split() if token not in ("a", "an", "the"))


def token_f1(prediction: list[str], gold: list[str]) -> float:
    """Token-overlap F1 of two token lists (SQuAD's answer F1); 0 when either is empty."""
    common = sum((Counter(prediction) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(gold)
    return 2 * precision * recall / (precision + recall)


class NormalizedMatchJudge:
    """The deterministic offline judge: normalised containment, or token F1 at least `f1_threshold`.

    Correct when the normalised gold's tokens occur as a contiguous run in the normalised prediction (so
    "Fra Mauro" matches "the Fra Mauro highlands", "tank" does not match "tanks"), or when token F1 >=
    `f1_threshold`. Both texts go through `normalize_answer` twice, punctuation removed and read as
    a space; a match either way counts. A gold answer that normalises to nothing (e.g. "The") never matches.
    Like the paper's LLM judge ("contains the correct information"), it credits a longer answer that contains
    the gold one, so an answer listing many candidates can pass: the LLM judge is the stricter choice.

    >>> judge = NormalizedMatchJudge(f1_threshold=0.8)
    >>> judge("", "the Fra Mauro highlands.", "Fra Mauro"), judge("", "Mauro", "Fra Mauro")
    (True, False)
    """

    def __init__(self, f1_threshold: float = 0.8):
        if not (isinstance(f1_threshold, int | float) and 0 < f1_threshold <= 1):
            raise ValueError(f"f1_threshold must be in (0, 1], got {f1_threshold!r}")
        self.f1_threshold = float(f1_threshold)

    def __repr__(self) -> str:
        return f"NormalizedMatchJudge(f1_threshold={self.f1_threshold})"

    def __call__(self, question: str, prediction: str, gold: str) -> bool:
        # Punctuation both removed and read as a space, so "5,000"/"5000" and "Apollo-13"/"Apollo 13" match.
        return any(self._matches(prediction, gold, punctuation_to) for punctuation_to in ("", " "))

    def _matches(self, prediction: str, gold: str, punctuation_to: str) -> bool:
        predicted = normalize_answer(prediction, punctuation_to).split()
        expected = normalize_answer(gold, punctuation_to).split()
        if not predicted or not expected:
            return False
        width = len(expected)
        contained = any(predicted[i : i + width] == expected for i in range(len(predicted) - width + 1))
        return contained or token_f1(predicted, expected) >= self.f1_threshold


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
    ):
        self.base_url = base_url or os.environ.get("REZERO_JUDGE_BASE_URL", "")
        self.model = model or os.environ.get("REZERO_JUDGE_MODEL", "")
        self.api_key = api_key or os.environ.get("REZERO_JUDGE_API_KEY") or "EMPTY"
        self.timeout_s, self.max_retries, self.max_tokens = timeout_s, max_retries, max_tokens
        if not self.base_url or not self.model:
            raise PipelineError(
                "LLM judge needs an endpoint and a model: set REZERO_JUDGE_BASE_URL and REZERO_JUDGE_MODEL "
                "(or use the offline NormalizedMatchJudge)."
            )
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def __repr__(self) -> str:
        return f"LLMJudge(base_url={self.base_url!r}, model={self.model!r})"

    def __call__(self, question: str, prediction: str, gold: str) -> bool:
        import openai  # only this judge needs it

        if self._client is None:
            self._client = openai.OpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=self.timeout_s,
                max_retries=self.max_retries,
            )
        prompt = JUDGE_PROMPT.format(question=question, gold=gold, prediction=prediction)
        try:
            reply = self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=0.0,
                max_tokens=self.max_tokens,
            )
        except openai.APIConnectionError as err:
            raise PipelineError(
                f"LLM judge at {self.base_url} is unreachable ({err}). Start the server or fix "
                "REZERO_JUDGE_BASE_URL."
            ) from err
        except openai.APIStatusError as err:
            raise PipelineError(
                f"LLM judge at {self.base_url} answered HTTP {err.status_code} for model {self.model!r}. "
                "Check REZERO_JUDGE_MODEL and REZERO_JUDGE_API_KEY."
            ) from err
        words = re.findall(r"[a-z]+", (reply.choices[0].message.content or "").lower())
        return bool(words) and words[0] == "yes"

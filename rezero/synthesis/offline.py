"""The default generator: grounded single-hop factoid pairs from each chunk, without a network or a model.

The paper prompts an 8B instruct model (Llama-3.1-8B-Instruct, temperature 0.3; `openai_generator.py`
does the same). This rule-based stand-in keeps its contract: up to `pairs_per_chunk` pairs per chunk,
each answer an exact span of the chunk, each with a self-rated difficulty. Questions are rewritten from
the prose sentence that holds the answer (`questions.py`); tables and contents pages are skipped
(`sentences.py`).
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import Any

from rezero.core.config import SynthesizeParams
from rezero.synthesis.pairs import GeneratorRun, QAPair
from rezero.synthesis.questions import Question, ask
from rezero.synthesis.sentences import prose_sentences
from rezero.synthesis.spans import Span, find_spans

log = logging.getLogger(__name__)

NAME = "offline"
# Preference between candidates: a question that reads like a question first, numeric facts over names
# and noun phrases (they make unambiguous factoids, like the paper's median 11-character answers).
FORM_SCORE = {"fronted": 2, "subject": 1, "in-place": 0}
KIND_SCORE = {"time": 2, "date": 2, "quantity": 2, "count": 1, "part": 1, "name": 1, "subject": 0}
EASY_MAX_CHARS, HARD_MIN_CHARS = 120, 180


@dataclass(frozen=True)
class Candidate:
    sentence: str
    span: Span
    question: Question

    @property
    def answer(self) -> str:
        return self.sentence[self.span.start : self.span.end]

    @property
    def score(self) -> int:
        return FORM_SCORE[self.question.form] + KIND_SCORE[self.span.kind]


def difficulty(candidate: Candidate) -> str:
    """Self-rating: long sentences and many numbers to confuse the answer with make a pair harder."""
    numbers = len(re.findall(r"\d+(?:[.:]\d+)*", candidate.sentence))
    length = len(candidate.sentence)
    if length > HARD_MIN_CHARS or numbers >= 4 or (candidate.question.form == "in-place" and numbers >= 3):
        return "hard"
    if length <= EASY_MAX_CHARS and numbers <= 2 and candidate.question.form != "in-place":
        return "easy"
    return "medium"


def candidates(text: str) -> list[Candidate]:
    """Every (sentence, span, question) of the chunk whose question does not give its answer away."""
    found = []
    for sentence in prose_sentences(text):
        for span in find_spans(sentence):
            question = ask(sentence, span)
            answer = sentence[span.start : span.end]
            if question is not None and answer.casefold() not in question.text.casefold():
                found.append(Candidate(sentence, span, question))
    return found


def pick(found: list[Candidate], n: int, rng: random.Random) -> list[Candidate]:
    """Up to n candidates with distinct answers, best first, preferring distinct sentences.

    Ties are broken by a seeded shuffle, so the seed decides which of equally good facts are asked.
    """
    pool = list(found)
    rng.shuffle(pool)
    pool.sort(key=lambda c: -c.score)
    chosen: list[Candidate] = []
    for distinct_sentences in (True, False):
        for candidate in pool:
            if len(chosen) == n:
                return chosen
            answers = {c.answer.casefold() for c in chosen}
            sentences = {c.sentence for c in chosen} if distinct_sentences else set()
            new_answer = candidate not in chosen and candidate.answer.casefold() not in answers
            if new_answer and candidate.sentence not in sentences:
                chosen.append(candidate)
    return chosen


def pairs_for_chunk(chunk: dict[str, Any], n: int, seed: int) -> list[QAPair]:
    """Up to n pairs for one chunk; the same chunk and seed always give the same pairs."""
    # Seeding per chunk keeps a chunk's pairs unchanged when other chunks are added or edited.
    rng = random.Random(f"{seed}:{chunk['chunk_id']}")
    chosen = pick(candidates(chunk["text"]), n, rng)
    return [QAPair(c.question.text, c.answer, difficulty(c)) for c in chosen]


def generate(chunks: list[dict[str, Any]], params: SynthesizeParams) -> GeneratorRun:
    """Run the offline generator over all chunks (in order)."""
    pairs = [
        (chunk, pair)
        for chunk in chunks
        for pair in pairs_for_chunk(chunk, params.pairs_per_chunk, params.seed)
    ]
    settings = {"generator": NAME, "pairs_per_chunk": params.pairs_per_chunk, "seed": params.seed}
    log.info("offline generator proposed %d pairs for %d chunks", len(pairs), len(chunks))
    return GeneratorRun(pairs=pairs, settings=settings)

"""Turn a sentence and an answer span into a question, by rule: no parser, no model.

Three forms, tried in this order:
- fronted: "The command module was powered up at 123 hours." -> "When was the command module powered up?"
  (subject-auxiliary inversion, or "did" + the verb's base form for a known past-tense verb);
- subject: "The S-IVB impacted the lunar surface." -> "What impacted the lunar surface?";
- in place: the span is replaced by its question phrase ("The pressure rose to how many psi?").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rezero.synthesis.lexicon import AUXILIARIES, DETERMINERS, PAST_TENSE, is_verb, word_set
from rezero.synthesis.spans import Span

# Prepositions a fronted question may open with ("To how many psi ...", "After how many seconds ...").
FRONT_PREPOSITIONS = "at|on|in|to|by|during|after|before|within|until|for"
WHEN_PREPOSITIONS = frozenset({"at", "on", "in", "during"})
QUALIFIERS = "approximately|about|nearly|almost|roughly|only|some|over|under|less than|more than"
# Words that make a left-hand part more than a plain subject (a clause), so inversion would garble it.
CLAUSE_WORDS = word_set("that which who when where because if although while since")
PHRASE_END = word_set("of to in on at by for with from and or as during after before than")


@dataclass(frozen=True)
class Question:
    text: str
    form: str  # "fronted", "subject" or "in-place"


def tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip().rstrip(",;: ")
    return text[:1].upper() + text[1:] + "?"


def subject_phrase(words: list[str]) -> str:
    """The subject as it reads after the verb: a determiner or a sentence-case common word lowercased.

    "Cryogenic storage system operation" -> "cryogenic ..."; "Mission Control" and "S-IVB" stay.
    """
    first, second = words[0], words[1] if len(words) > 1 else ""
    common = re.fullmatch(r"[A-Z][a-z]+", first) and (not second or second[:1].islower())
    if first.lower() in DETERMINERS or common:
        first = first.lower()
    return " ".join([first, *words[1:]])


def invert(clause: str) -> str | None:
    """ "the tank was drained" -> "was the tank drained"; "the tank failed" -> "did the tank fail"."""
    words = clause.split()
    for i, word in enumerate(words[:10]):
        low = word.lower()
        if "," in word or low in CLAUSE_WORDS or (i == 0 and low in AUXILIARIES):
            return None
        if i == 0:
            continue
        rest = " ".join(words[i + 1 :])
        next_word = words[i + 1].lower() if i + 1 < len(words) else ""
        perfect = low not in ("had", "has", "have") or next_word == "been" or next_word.endswith(("ed", "en"))
        if low in AUXILIARIES and perfect:
            return f"{low} {subject_phrase(words[:i])} {rest}"
        if low in PAST_TENSE:
            # "The mode attempted at 32:21 is compared ..." : the past form was a participle, not the verb.
            # "... produced a change and resulted in ...": a second verb would stay in the past tense.
            if AUXILIARIES.intersection(w.lower() for w in words[i + 1 :]) or re.search(
                r"\band \w+ed\b", rest
            ):
                return None
            return f"did {subject_phrase(words[:i])} {PAST_TENSE[low]} {rest}"
    return None


def front_lead(span: Span, preposition: str) -> str:
    if span.kind in ("time", "date") or (span.wh == "how many hours" and preposition in WHEN_PREPOSITIONS):
        return "When" if preposition in WHEN_PREPOSITIONS else f"{preposition.capitalize()} what time"
    return f"{preposition.capitalize()} {span.wh}"


def fronted(body: str, span: Span) -> Question | None:
    """The span closes the clause ("... at 55:54") or opens the sentence ("At 55:54, ...")."""
    before, after = body[: span.start], body[span.end :]
    preposition_re = rf"\b(?P<prep>{FRONT_PREPOSITIONS})(?: (?:{QUALIFIERS}))? $"
    tail = re.search(preposition_re, before, re.IGNORECASE)
    if tail and tail.start() > 0 and (not after or after.startswith(",")):
        clause, preposition = before[: tail.start()], tail.group("prep").lower()
    else:
        lead = re.fullmatch(rf"(?P<prep>{FRONT_PREPOSITIONS})(?: (?:{QUALIFIERS}))? ", before, re.IGNORECASE)
        if not (lead and after.startswith(", ")):
            return None
        clause, preposition = after[2:], lead.group("prep").lower()
    # A clause with commas or "and" has parts the inverted question would misattach the span to
    # ("recorded ... and continued for 4 hours"); "to 142:30" is a purpose, not a time.
    if re.search(r",|\band\b", clause) or (
        span.kind in ("time", "date") and preposition in ("to", "for", "within")
    ):
        return None
    inverted = invert(clause.strip())
    if inverted is None:
        return None
    return Question(tidy(f"{front_lead(span, preposition)} {inverted}"), "fronted")


def as_subject(body: str, span: Span) -> Question | None:
    """The span is the sentence's subject and a verb follows it: ask with the question word in its place."""
    before, after = body[: span.start].strip().lower(), body[span.end :].split()
    if before not in ("", "the", "a", "an") or not after or not is_verb(after[0]):
        return None
    return Question(tidy(f"{span.wh} {' '.join(after)}"), "subject")


def in_place(body: str, span: Span) -> Question | None:
    """Replace the span by its question phrase where the result still parses.

    A name must end its phrase ("the Saturn V launch vehicle" does not) and must not sit in a list of
    places ("Downey, California"), where "what" would garble the sentence.
    """
    before, after = body[: span.start], body[span.end :]
    next_word = after.split()[0].lower() if after.split() else ""
    if span.kind in ("name", "part", "subject"):
        article = re.search(r"\b(?:the|a|an) $", before, re.IGNORECASE)
        before = before[: article.start()] if article else before
        previous = before.split()[-1].lower() if before.split() else ""
        if not (article or previous in PHRASE_END or is_verb(previous, any_past=True)):
            return None  # "the backup Command Module Pilot": the name is part of a longer phrase
        if before.endswith((", ", "(")) or re.match(r", [A-Z]", after):
            return None
        if next_word and not (after[0] in ",;:)" or next_word in PHRASE_END or is_verb(next_word)):
            return None
    return Question(tidy(f"{before}{span.wh}{after}"), "in-place")


def ask(sentence: str, span: Span) -> Question | None:
    """The best-reading question whose answer is sentence[span.start:span.end], or None."""
    body = sentence.rstrip(". ")
    for form in (fronted, as_subject, in_place):
        question = form(body, span)
        if question is not None:
            return question
    return None

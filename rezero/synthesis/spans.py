"""Answer candidates in a sentence: clock times, dates, quantities with units, counts and names.

Every candidate is an exact span of the sentence (so of the chunk), with the question word that asks
for it ("what time", "how many psi", "which center").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rezero.synthesis.lexicon import (
    AUXILIARIES,
    DESIGNATED_PARTS,
    FUNCTION_WORDS,
    NAME_HEADS,
    NOT_IN_NOUN_PHRASE,
    PERSON_NOUNS,
    VAGUE_MODIFIERS,
    is_verb,
    word_set,
)

MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
# A number: digits with optional thousands groups ("25 565", "1,200") and decimals, not glued to a
# letter on either side, which rules out OCR-damaged numbers such as "l23" or "32:2l:49".
NUMBER = r"(?<![\w.,/:-])\d{1,3}(?:(?:,| )\d{3})*(?:\.\d+)?(?![\w:])|(?<![\w.,/:-])\d+(?:\.\d+)?(?![\w:])"
# Unit spelled in the sentence -> the noun the question asks for ("how many <noun>").
UNITS = {
    r"hours?|hr": "hours",
    r"minutes?|min": "minutes",
    r"seconds?|sec": "seconds",
    r"milliseconds?|msec": "milliseconds",
    r"days?": "days",
    r"percent": "percent",
    r"degrees?(?: [FCR]\b)?|deg": "degrees",
    r"psia|psid|psi(?:/(?:hour|hr|min|sec))?": "psi",
    r"pounds?|lb": "pounds",
    r"feet|foot|ft": "feet",
    r"ft/sec|feet per second": "ft/sec",
    r"deg/sec": "deg/sec",
    r"(?:nautical )?miles?": "miles",
    r"inch(?:es)?|in\.": "inches",
    r"volts?|V(?=\W)": "volts",
    r"ampere[- ]hours?|amp-hr|A-h": "ampere-hours",
    r"amperes?|amps?": "amperes",
    r"watts?": "watts",
    r"kilowatts?|kW": "kilowatts",
    r"(?:kilo)?calories": "calories",
    r"[kM]?Hz": "hertz",
    r"g(?=\W)": "g",
    r"cc|cm3": "cubic centimetres",
    r"gallons?": "gallons",
    r"revolutions|rpm": "revolutions",
}
NAME_WORD = r"(?:[A-Z][a-z]+|[A-Z][A-Z0-9-]*[A-Z0-9])"
NAME = rf"{NAME_WORD}(?: (?:of |and |for |the )?{NAME_WORD}| \d+\b)*"
# Capitalised words that start references ("Table 3-I") or the programme name that recurs in every
# mission report ("Apollo 12"): ambiguous answers, not facts of one chunk.
NOT_NAMES = word_set("table figure section reference appendix volume apollo")
# Capitalised only because they open the sentence.
LEADING_WORDS = word_set("the a an for with in on at during after before to from by of and")
CLOCK = r"(?<![\w:.])\d{1,3}:\d{2}(?::\d{2}(?:\.\d+)?)?(?![\w:])"
# Elapsed time written out: "at 58 hours 40 minutes" is one time, not two quantities.
HOURS_MINUTES = r"(?<![\w.])\d{1,3} hours? \d{1,2} minutes?\b"
DATE = rf"\b(?:{MONTHS}) \d{{1,2}}(?:, ?(?:19|20)\d\d)?(?!\d)|\b(?:{MONTHS}) (?:19|20)\d\d\b"


@dataclass(frozen=True)
class Span:
    """An answer candidate: sentence[start:end], its kind and the question phrase that asks for it."""

    start: int
    end: int
    kind: str  # "time", "date", "quantity", "count", "name", "part" or "subject"
    wh: str


def quantity_spans(sentence: str) -> list[Span]:
    """Numbers followed by a unit ("8 psi/hour") or by a plural noun ("21 pulses")."""
    spans: list[Span] = []
    units = "|".join(f"(?P<u{i}>{pattern})" for i, pattern in enumerate(UNITS))
    nouns = list(UNITS.values())
    unit_re = re.compile(rf"({NUMBER}) ?(?:{units})(?![\w/-])")
    for match in unit_re.finditer(sentence):
        noun = next(nouns[int(k[1:])] for k, v in match.groupdict().items() if v is not None)
        wh = "what percentage" if noun == "percent" else f"how many {noun}"
        spans.append(Span(match.start(), match.end(), "quantity", wh))
    count_re = re.compile(rf"({NUMBER}) ([a-z]{{3,}}s)(?![\w/-])")
    for match in count_re.finditer(sentence):
        if not any(s.start <= match.start() < s.end for s in spans):
            spans.append(Span(match.start(), match.end(), "count", f"how many {match.group(2)}"))
    return spans


def name_spans(sentence: str) -> list[Span]:
    """Multi-word capitalised names and acronyms, never the sentence's first word on its own."""
    spans: list[Span] = []
    for match in re.finditer(rf"\b{NAME}\b", sentence):
        start, words = match.start(), match.group().split()
        while words and words[0].lower() in LEADING_WORDS:  # "The S-IVB" at a sentence start
            start += len(words.pop(0)) + 1
        if not words or words[0].lower() in NOT_NAMES or (start == 0 and len(words) == 1):
            continue
        if not any(re.search(r"[A-Za-z]{2}", word) for word in words):
            continue
        if len(words) == 1 and not re.fullmatch(r"[A-Z][A-Z0-9-]*[A-Z0-9]", words[0]):
            continue  # a single capitalised word is too often just an adjective ("Earth", "Lunar")
        head = words[-1].lower()
        person = any(word.lower() in PERSON_NOUNS for word in words)  # "Commander ...", "... Pilot"
        wh = f"which {head}" if head in NAME_HEADS else "who" if person else "what"
        spans.append(Span(start, match.end(), "name", wh))
    return spans


def part_spans(sentence: str) -> list[Span]:
    """Designated parts with their modifiers: "oxygen tank 2" -> "which oxygen tank"."""
    spans = []
    pattern = rf"\b((?:[a-z][a-z-]+ ){{0,2}})({DESIGNATED_PARTS})s? (?:No\. )?[0-9A-D]\b(?![\w.-])"
    for match in re.finditer(pattern, sentence):
        modifiers: list[str] = []
        for word in reversed(match.group(1).split()):  # "drawn from battery 3": no modifier
            if word in FUNCTION_WORDS or is_verb(word, any_past=True):
                break
            modifiers.insert(0, word)
        start = match.start(2) - len(" ".join(modifiers)) - (1 if modifiers else 0)
        spans.append(Span(start, match.end(), "part", " ".join(["which", *modifiers, match.group(2)])))
    return spans


def subject_span(sentence: str) -> list[Span]:
    """A plain noun phrase of 2-5 words opening the sentence ("The lunar module platform was ...").

    One-word subjects ("The experiment") make vague answers; an adverb or a trailing -ing word means the
    phrase is not a plain noun phrase ("... temperature also", "functions remaining"); and a past form
    followed by a later auxiliary is a participle inside the subject ("The maneuver performed with ... was").
    """
    match = re.match(r"(?:The|An?) ", sentence)
    words = sentence[match.end() :].split() if match else []
    for i, word in enumerate(words[:6]):
        if is_verb(word):
            later = {w.lower() for w in words[i + 1 :]}
            if (
                i < 2
                or words[i - 1].endswith("ing")
                or (word.lower() not in AUXILIARIES and later & AUXILIARIES)
            ):
                return []
            end = match.end() + len(" ".join(words[:i]))
            return [
                Span(match.end(), end, "subject", "who" if words[i - 1].lower() in PERSON_NOUNS else "what")
            ]
        plain = re.fullmatch(r"[a-z][a-z-]*|[A-Z][A-Z0-9-]+", word)
        vague = i == 0 and word in VAGUE_MODIFIERS  # "more detailed discussion", "special device"
        if not plain or vague or word in FUNCTION_WORDS or word in NOT_IN_NOUN_PHRASE or word.endswith("ly"):
            return []
    return []


def find_spans(sentence: str) -> list[Span]:
    """All non-overlapping answer candidates of a sentence; times and dates win over plain numbers."""
    found = [Span(m.start(), m.end(), "time", "what time") for m in re.finditer(CLOCK, sentence)]
    found += [Span(m.start(), m.end(), "time", "what time") for m in re.finditer(HOURS_MINUTES, sentence)]
    found += [Span(m.start(), m.end(), "date", "what date") for m in re.finditer(DATE, sentence)]
    for span in (
        quantity_spans(sentence) + part_spans(sentence) + name_spans(sentence) + subject_span(sentence)
    ):
        if not any(span.start < other.end and other.start < span.end for other in found):
            found.append(span)
    return sorted(found, key=lambda s: s.start)

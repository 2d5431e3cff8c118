"""Answer text as the judges read it (rezero/episode/judges.py): normalisation, whether shown results hold
an answer, canonical units, word counts."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

# Inside a number: a thousands comma (before exactly three digits) and a decimal point, between digits.
_THOUSANDS_COMMA_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DECIMAL_POINT_RE = re.compile(r"(?<=\d)\.(?=\d)")


def normalize_answer(text: str, punctuation_to: str = "") -> str:
    """SQuAD-style normalisation: lower case, punctuation removed, articles dropped, whitespace collapsed.

    Punctuation is every Unicode punctuation character plus ASCII symbols, replaced by `punctuation_to`:
    "" as in SQuAD's script, or " " ("Apollo-13" reads "apollo 13"). Inside a number, a thousands comma is
    always removed ("5,000" reads "5000") and a decimal point always kept ("27.2" stays one token, not
    "27 2", which would share half its tokens with "27.2 miles" and pass token F1, nor "272").

    >>> normalize_answer("The  Odyssey's crew, (3)!"), normalize_answer("S-IVB stage 27.2, 5,000.", " ")
    ('odysseys crew 3', 's ivb stage 27.2 5000')
    """
    text = _THOUSANDS_COMMA_RE.sub("", text.lower())
    decimal_points = {match.start() for match in _DECIMAL_POINT_RE.finditer(text)}
    text = "".join(
        c
        if i in decimal_points or not (unicodedata.category(c).startswith("P") or c in "$+<=>^`|~")
        else punctuation_to
        for i, c in enumerate(text)
    )
    return " ".join(token for token in text.split() if token not in ("a", "an", "the"))


def answer_visible(answer: str, shown: str) -> bool:
    """Whether `answer` occurs in `shown` as whole words after normalisation (punctuation dropped or read
    as a space, as the judge does), so "Nov. 7" is found in "on Nov.7," and "tank" is not found in "tanks".

    >>> answer_visible("55 hours", "at about 55 hours, 54 minutes"), answer_visible("tank", "two tanks")
    (True, False)
    """
    for punctuation_to in ("", " "):
        wanted = normalize_answer(answer, punctuation_to)
        if wanted and f" {wanted} " in f" {normalize_answer(shown, punctuation_to)} ":
            return True
    return False


def first_result_showing(answer: str, shown: Sequence[str]) -> int | None:
    """The number (1-based) of the first shown result that holds the answer, or None."""
    return next((n for n, text in enumerate(shown, 1) if answer_visible(answer, text)), None)


def first_query_showing(answer: str, shown_per_query: Sequence[Sequence[str]]) -> int | None:
    """The number (1-based) of the first query whose shown results hold the answer, or None."""
    return next(
        (n for n, shown in enumerate(shown_per_query, 1) if first_result_showing(answer, shown) is not None),
        None,
    )


def token_f1(prediction: list[str], gold: list[str]) -> float:
    """Token-overlap F1 of two token lists (SQuAD's answer F1); 0 when either is empty."""
    common = sum((Counter(prediction) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(gold)
    return 2 * precision * recall / (precision + recall)


# Unit spellings, each read as its canonical word (the key) on both sides before matching. The gold answers
# (about half a number with a unit) and plausible predictions mix "27.5 lb"/"27.5 pounds", "psia"/"psi",
# "sec"/"seconds", "hr"/"hours"; "%", "°", "per cent", "fps", "n. mi." and "x/y" ("ft/sec" reads
# "foot per second") are rewritten first by `_REWRITES`.
UNIT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "percent": ("percent", "pct", "percentage"),  # "What percentage ..." states the unit
    "pound": ("pound", "pounds", "lb", "lbs"),
    "psi": ("psi", "psia", "psig"),
    "foot": ("foot", "feet", "ft"),
    "inch": ("inch", "inches"),
    "mile": ("mile", "miles", "mi"),
    "nautical": ("nautical",),
    "kilometer": ("kilometer", "kilometers", "kilometre", "kilometres", "km"),
    "meter": ("meter", "meters", "metre", "metres"),
    "second": ("second", "seconds", "sec", "secs"),
    "minute": ("minute", "minutes", "min", "mins"),
    "hour": ("hour", "hours", "hr", "hrs"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
    "degree": ("degree", "degrees", "deg", "degs"),
    "f": ("fahrenheit",),
    "ampere": ("ampere", "amperes", "amp", "amps"),
    "volt": ("volt", "volts"),
    "db": ("db", "decibel", "decibels"),
    "khz": ("khz", "kilohertz"),
    "kilogram": ("kilogram", "kilograms", "kg"),
    "cycle": ("cycle", "cycles"),
    "scc": ("scc",),
}
# Words that may follow a number as (part of) its unit; "per" joins compound units ("pound per hour").
UNIT_WORDS = frozenset(UNIT_SPELLINGS) | {"per"}
# "Three" for "3": small counts are often written out in the gold answers.
NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
NUMBER_WORDS += "fifteen sixteen seventeen eighteen nineteen twenty"
_CANONICAL = {spelling: unit for unit, spellings in UNIT_SPELLINGS.items() for spelling in spellings}
_CANONICAL |= {word: str(value) for value, word in enumerate(NUMBER_WORDS.split())}
_WORD_RE = re.compile(rf"(?<![a-z])({'|'.join(sorted(_CANONICAL, key=len, reverse=True))})(?![a-z])")
# In order: split a number glued to its unit ("79%", "27.5lb", "12-ft/sec"), join digit groups ("31 250"),
# then symbols and phrases to words.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<=\d)-?(?=[a-z%°])"), " "),
    (re.compile(r"(?<![\d.,:])(\d{1,3}) (?=\d{3}\b)"), r"\1"),
    (re.compile(r"(?<![a-z])n\. ?mi(?:\.|(?![a-z]))|(?<![a-z])nmi(?![a-z])"), " nautical mile "),
    (re.compile(r"\bpounds? per square inch\b"), " psi "),
    (re.compile(r"\bper cent\b|%"), " percent "),
    (re.compile(r"°|\^\{?\\circ\}?"), " degree "),
    (re.compile(r"\bfps\b"), " foot per second "),
    (re.compile(r"(?<=\d )in\."), " inch "),
    (re.compile(r"(?<=[a-z])/(?=[a-z])"), " per "),
    (re.compile(r"\bper s\b"), "per second"),
    (re.compile(r"\bper h\b"), "per hour"),
)


def canonicalize_units(text: str) -> str:
    """`text` in lower case with units and small number words in canonical words (`UNIT_SPELLINGS`).

    >>> canonicalize_units("79%"), canonicalize_units("27.5lbs"), canonicalize_units("5 FT/SEC")
    ('79 percent', '27.5 pound', '5 foot per second')
    >>> canonicalize_units("Three hrs at 712 psia, 31 250 fps")
    '3 hour at 712 psi, 31250 foot per second'
    """
    text = text.lower()
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return " ".join(_WORD_RE.sub(lambda match: _CANONICAL[match[1]], text).split())


def count_words(text: str) -> int:
    """Words of an answer as the judges count them: tokens of `normalize_answer` (articles not counted)."""
    return len(normalize_answer(text).split())

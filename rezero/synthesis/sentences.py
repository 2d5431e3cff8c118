"""Find the prose sentences of a chunk that can carry a standalone factoid question.

Chunks of the mission report mix prose with flattened tables (cell texts joined by spaces), tables of
contents (dot leaders and page numbers), headings and figure captions. Only declarative prose sentences
make readable questions, so the rest is skipped here.
"""

from __future__ import annotations

import re

from rezero.synthesis.lexicon import FUNCTION_WORDS, word_set

# A word ending in "." that does not end the sentence ("oxygen tank No. 2", "approx. 8 psi").
ABBREVIATIONS = word_set("no nos fig figs ref refs approx vs etc e.g i.e mr mrs dr st vol sect para u.s")
# A sentence that opens with one of these leans on the previous sentence and cannot stand alone.
DEPENDENT_OPENERS = word_set(
    "it its this these those they them their he she his her we our such that there both either"
)
# Connectives dropped from the front of a sentence before it is turned into a question.
CONNECTIVE = re.compile(
    r"^(?:however|in addition|also|therefore|consequently|subsequently|as a result|thus|finally|"
    r"for example|additionally|accordingly|furthermore|moreover|in summary|meanwhile),\s+",
    re.IGNORECASE,
)
DOT_LEADER = re.compile(r"(?:\.\s*){4,}|_{3,}|-{4,}")
MARKUP = re.compile(r"[$\\{}|<>^_*#]")
SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”]))\s+(?=[A-Z(\"'“])")
MIN_SENTENCE_CHARS, MAX_SENTENCE_CHARS = 40, 300


def looks_like_prose(block: str) -> bool:
    """False for flattened tables, tables of contents, headings and captions (measured on the report)."""
    words = block.split()
    if len(words) < 6 or DOT_LEADER.search(block):
        return False
    alpha = [w for w in words if re.fullmatch(r"[A-Za-z][a-z'-]+[,.;:]?", w)]
    numeric = [w for w in words if re.search(r"\d", w)]
    function = [w for w in words if w.lower().strip(",.;:") in FUNCTION_WORDS]
    # Thresholds set from the report's blocks of 6+ words: prose paragraphs have 0-10 % numeric tokens
    # and 25-41 % function words (10th-90th percentile); flattened tables and contents lines have
    # 10-52 % numeric tokens and 0-12 % function words.
    return (
        len(numeric) <= 0.25 * len(words)
        and len(function) >= 0.12 * len(words)
        and len(alpha) >= 0.5 * len(words)
    )


def split_sentences(block: str) -> list[str]:
    """Split on sentence-final punctuation, re-joining pieces cut after an abbreviation or an initial."""
    sentences: list[str] = []
    for piece in SENTENCE_END.split(block.strip()):
        tail = sentences[-1].split()[-2:] if sentences else []
        last_word = tail[-1].lower().rstrip(".") if tail else ""
        # "James A. Lovell": an initial follows a capitalised name ("30° F. While" is a sentence end).
        initial = (
            len(tail) == 2 and re.fullmatch(r"[A-Z]\.", tail[1]) and re.fullmatch(r"[A-Z][a-z]+", tail[0])
        )
        if sentences and (last_word in ABBREVIATIONS or initial):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def usable_sentence(sentence: str) -> bool:
    """A complete, standalone, markup-free declarative sentence of a readable length."""
    first = sentence.split(None, 1)[0].lower().strip(",")
    return (
        MIN_SENTENCE_CHARS <= len(sentence) <= MAX_SENTENCE_CHARS
        and sentence[0].isupper()
        and sentence.endswith(".")
        and not MARKUP.search(sentence)
        and first not in DEPENDENT_OPENERS
        and not re.match(r"(?:figure|table|section|reference)\b", first)
        and looks_like_prose(sentence)
    )


def prose_sentences(text: str) -> list[str]:
    """The usable sentences of a chunk, in order, with a leading connective ("However, ") removed."""
    found: list[str] = []
    for block in re.split(r"\n\s*\n|\n", text):
        block = re.sub(r"\s+", " ", block).strip()
        if not looks_like_prose(block):
            continue
        for sentence in split_sentences(block):
            sentence = CONNECTIVE.sub("", sentence)
            sentence = sentence[:1].upper() + sentence[1:]
            if usable_sentence(sentence):
                found.append(sentence)
    return found

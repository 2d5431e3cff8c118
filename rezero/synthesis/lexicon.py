"""The small closed word lists the rule-based generator needs (general English, nothing document-specific)."""

from __future__ import annotations

import re


def word_set(text: str) -> frozenset[str]:
    """A word list written as one string ("was were is") -> frozenset of its words."""
    return frozenset(text.split())


# Function words: a good share of any English prose and almost none of a flattened table.
FUNCTION_WORDS = word_set(
    "the a an of to in on at by for with from and or was were is are be been had has have that which "
    "as during after before than this these it its not no into"
)
AUXILIARIES = word_set("was were is are had has have will would could can should may might must")
# Adverbs and after-the-noun adjectives: a subject holding one is not a plain noun phrase
# ("the temperature also", "the water available").
NOT_IN_NOUN_PHRASE = word_set(
    "also then thus only still now not never later again just even first available remaining aboard onboard"
)
# Modifiers that make a noun-phrase answer vague or context-bound ("the other valve", "a special device").
VAGUE_MODIFIERS = word_set(
    "more most less other same such following above similar second third next last only various "
    "several many few major minor higher lower special new additional"
)
DETERMINERS = word_set("the a an each every all both one some no several")
# Past tense -> base form, for "did" questions; only verbs whose past tense is not also a present tense.
PAST_TENSE = dict(
    pair.split(":")
    for pair in word_set("""
    failed:fail started:start ended:end lasted:last returned:return opened:open received:receive
    reported:report fired:fire impacted:impact remained:remain peaked:peak reached:reach
    performed:perform occurred:occur began:begin ruptured:rupture separated:separate
    increased:increase decreased:decrease dropped:drop rose:rise fell:fall landed:land closed:close
    indicated:indicate showed:show ignited:ignite completed:complete entered:enter exceeded:exceed
    stopped:stop continued:continue changed:change operated:operate provided:provide required:require
    produced:produce caused:cause resulted:result flew:fly came:come went:go took:take made:make
    saw:see found:find became:become gave:give held:hold broke:break sent:send lost:lose
    struck:strike kept:keep splashed:splash achieved:achieve recorded:record registered:register
    declined:decline decayed:decay stabilized:stabilize switched:switch moved:move
    approached:approach arrived:arrive activated:activate jettisoned:jettison docked:dock
    undocked:undock lifted:lift consumed:consume delivered:deliver experienced:experience
    detected:detect included:include contained:contain transferred:transfer measured:measure
    observed:observe maintained:maintain spent:spend consisted:consist
    """)
)
# Heads of named organisations and places: "Kennedy Space Center" is asked for as "which center".
NAME_HEADS = word_set(
    "center control laboratory laboratories office board division corporation company agency administration "
    "station ocean sea island base range network program committee team room facility ship"
)
# Nouns for people: a subject made of them is asked for with "who", not "what".
PERSON_NOUNS = word_set(
    "crew crewmen crewman commander pilot astronaut astronauts engineer engineers personnel "
    "controllers controller director team surgeon physician"
)
# Designated parts ("tank 2", "bus B"): asked for as "which tank".
DESIGNATED_PARTS = "tank|battery|bus|cell|panel|loop|valve|circuit|engine|stage|quad|heater|fan|inverter"


def is_verb(word: str, *, any_past: bool = False) -> bool:
    """An auxiliary or a known past-tense verb; with any_past, any word ending in -ed as well."""
    word = word.lower()
    return (
        word in AUXILIARIES
        or word in PAST_TENSE
        or (any_past and re.fullmatch(r"[a-z]{3,}ed", word) is not None)
    )

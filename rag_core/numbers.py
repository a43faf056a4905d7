"""Numbers as people write them: "10", "ten", "10th", "tenth", "twenty-fifth", and ranges of them.

Why: a question says "after 10 years" or "in my 15th year" where the agreement's table says "Tenth ... 24"
or "In year 15 ... 160", and a policy says "two (2) weeks" where the question says "2 weeks". Word
matching (BM25, the extractive answerer's term overlap) sees no common word in either pair. This module
reads every way of writing a whole number from 0 to 999 and gives its value, so both sides can be
compared by value: the query side of BM25 adds the other spellings of the numbers a question names
(`query_variants`), and the answerer counts a sentence or table row that names the question's number,
or a range that holds it ("Thirteenth to fifteenth", "241-560"), as matching it (`mentions`).

What it leaves out: fractions and decimals ("one and one-quarter", "9.375") are kept as they are,
and units are not converted ("two weeks" is not "14 days"), because a week is five working days in one
policy and seven calendar days in the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
_UNITS += "seventeen eighteen nineteen"
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"
_ORDINAL_UNITS = "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
_ORDINAL_UNITS += "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
_ORDINAL_TENS = "twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth"

CARDINALS: dict[str, int] = {w: i for i, w in enumerate(_UNITS.split())}
CARDINALS.update({w: 20 + 10 * i for i, w in enumerate(_TENS.split())})
ORDINALS: dict[str, int] = {w: i for i, w in enumerate(_ORDINAL_UNITS.split())}
ORDINALS.update({w: 20 + 10 * i for i, w in enumerate(_ORDINAL_TENS.split())})
_CARDINAL_OF = {v: w for w, v in CARDINALS.items()}
_ORDINAL_OF = {v: w for w, v in ORDINALS.items()}

_WORD = "|".join(sorted([*CARDINALS, *ORDINALS], key=len, reverse=True))
_TENS_UNITS = rf"(?:{_WORD})(?:[\s-]+(?:{_WORD}))?"
# One number: digits (thousands separators allowed, no decimals), an ordinal in digits ("15th"), or words,
# tens and units joined by a hyphen or a space ("twenty-five", "twenty fifth"), optionally "N hundred".
_NUMBER = (
    r"(?<![\w.,$£€])(?:(?P<digits>\d{1,3}(?:,\d{3})+|\d+)(?P<suffix>st|nd|rd|th)?(?![\w%]|[.,]\d)"
    rf"|(?P<words>(?:{_WORD})[\s-]+hundred(?:th)?(?:(?:[\s-]+and)?[\s-]+{_TENS_UNITS})?|{_TENS_UNITS}))\b"
)
NUMBER = re.compile(_NUMBER, re.IGNORECASE)
_RANGE_WORDS = r"\s*(?P<sep>-|–|—|to|through|thru|and)\s*"
_A = _NUMBER.replace("?P<", "?P<a_")
_B = _NUMBER.replace("?P<", "?P<b_")
RANGE = re.compile(rf"(?P<a>{_A}){_RANGE_WORDS}(?P<b>{_B})", re.IGNORECASE)
OPEN_ENDED = re.compile(
    rf"(?:\b(?:over|above|more than)\s+(?P<a>{_A})"
    rf"|(?P<b>{_B})\s*(?:\+|and (?:over|above|after|thereafter|beyond)|or more))",
    re.IGNORECASE,
)
# "nine decimal three seven five (9.375)": a decimal in words, no whole number in it.
_DECIMAL_WORDS = re.compile(rf"\b(?:(?:{_WORD})[\s-]+)+(?:decimal|point)(?:\s+(?:{_WORD})\b)+", re.IGNORECASE)
_NO_YEAR = 1900  # four-digit values from here on read as years or amounts, never as ordinals


@dataclass(frozen=True)
class Mention:
    """One number in a text: its value, whether it was written as an ordinal, where it stands, and the
    unit written after it ("year", "day", "hour", ...; None when there is none)."""

    value: int
    ordinal: bool
    start: int
    end: int
    unit: str | None = None


UNITS = {
    "year": "year",
    "yr": "year",
    "month": "month",
    "week": "week",
    "wk": "week",
    "day": "day",
    "workday": "day",
    "hour": "hour",
    "hr": "hour",
    "minute": "minute",
    "min": "minute",
    "percent": "percent",
    "cent": "cent",
    "dollar": "dollar",
}
_MODIFIERS = {"working", "work", "business", "calendar", "consecutive", "full", "paid", "additional", "more", "of"}
_AFTER = re.compile(r"\)?(?:\s*\([^()]{1,24}\))?\s*((?:[A-Za-z]+\s+)?[A-Za-z]+)")


def _unit_after(text: str, end: int) -> str | None:
    """The unit written right after a number, past a parenthesis ("ten (10) working days": "day")."""
    m = _AFTER.match(text, end)
    if not m:
        return None
    for word in m.group(1).lower().split():
        word = word.removesuffix("s") if len(word) > 3 else word
        if word in UNITS:
            return UNITS[word]
        if word not in _MODIFIERS:
            return None
    return None


def _value(digits: str | None, words: str | None) -> int | None:
    """The value of a number matched by NUMBER: its digits, or its words ("two hundred and fifth")."""
    if digits:
        return int(digits.replace(",", ""))
    current: int | None = None
    for part in re.split(r"[\s-]+", (words or "").lower()):
        if part in ("", "and"):
            continue
        if part in ("hundred", "hundredth"):
            current = (current or 1) * 100
            continue
        n = CARDINALS.get(part, ORDINALS.get(part))
        if n is None:
            return None
        if current is None:
            current = n
        elif _adds(current, n):
            current += n
        else:  # two numbers side by side ("five six"): the first
            break
    return current


def _adds(current: int, n: int) -> bool:
    """Whether a number word after `current` adds to it: "two hundred" + "five", "twenty" + "five"."""
    return (current % 100 == 0 and n < 100) or (20 <= current < 100 and current % 10 == 0 and n < 10)


def mentions(text: str) -> list[Mention]:
    """Every whole number in `text`, in order.

    >>> [(m.value, m.ordinal) for m in mentions("Tenth … 24; twenty-fifth and 1,500 after 15th year")]
    [(10, True), (24, False), (25, True), (1500, False), (15, True)]
    >>> [m.value for m in mentions("Clause 18.3 pays 9.375 hours, $2.25, 12% and nine decimal three seven five")]
    []
    """
    out: list[Mention] = []
    decimals = [(d.start(), d.end()) for d in _DECIMAL_WORDS.finditer(text)]
    for m in NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in decimals):
            continue
        value = _value(m.group("digits"), m.group("words"))
        if value is None:
            continue
        words = (m.group("words") or "").lower()
        ordinal = bool(m.group("suffix")) or (bool(words) and re.split(r"[\s-]+", words)[-1] in ORDINALS)
        out.append(Mention(value, ordinal, m.start(), m.end(), _unit_after(text, m.end())))
    return out


def values(text: str) -> set[int]:
    """The values of the whole numbers in `text`.

    >>> sorted(values("ten (10) days after the fifteenth"))
    [10, 15]
    """
    return {m.value for m in mentions(text)}


def ranges(text: str) -> list[tuple[int, float]]:
    """Ranges the text states, low to high: "Thirteenth to fifteenth", "241-560", "20 and over".

    >>> ranges("Thirteenth to fifteenth … 27 / 241 – 560 / In year 20 and over 7.69 / Over 560")
    [(13, 15), (241, 560), (20, inf), (560, inf)]
    >>> ranges("one-twelfth of the entitlement")
    []
    """
    out: list[tuple[int, float]] = []
    for m in RANGE.finditer(text):
        a = _value(m.group("a_digits"), m.group("a_words"))
        b = _value(m.group("b_digits"), m.group("b_words"))
        words = m.group("a_words") or m.group("b_words")
        if words and m.group("sep") in "-–—":
            continue  # "one-twelfth", "one-quarter": a fraction, not a range
        if a is not None and b is not None and a < b:
            out.append((a, b))
    for m in OPEN_ENDED.finditer(text):
        a = _value(m.group("a_digits"), m.group("a_words"))
        if a is None:
            a = _value(m.group("b_digits"), m.group("b_words"))
        if a is not None:
            out.append((a, float("inf")))
    return out


def quantities(text: str) -> set[tuple[int, str | None]]:
    """The (value, unit) pairs of the whole numbers in `text`.

    >>> sorted(quantities("after 10 years, about 300 hours in the 2nd week"), key=str)
    [(10, 'year'), (2, 'week'), (300, 'hour')]
    """
    return {(m.value, m.unit) for m in mentions(text)}


def matched(wanted: set[tuple[int, str | None]], text: str) -> set[tuple[int, str | None]]:
    """The wanted (value, unit) pairs that `text` names: the value written any way, with the same unit or
    none ("Tenth" has none; "10 days' pay" is no match for "10 years"), or a range that holds the value.

    >>> sorted(matched({(10, "year"), (300, "hour"), (7, None)}, "Tenth … 24 / 241-560 35% / 10 days' pay"))
    [(10, 'year'), (300, 'hour')]
    """
    found: set[tuple[int, str | None]] = set()
    for m in mentions(text):
        found |= {(v, u) for v, u in wanted if v == m.value and (u is None or m.unit is None or u == m.unit)}
    for low, high in ranges(text):
        found |= {(v, u) for v, u in wanted if low <= v <= high}
    return found


def spellings(value: int) -> list[str]:
    """The other ways a value is written: digits, the cardinal and the ordinal, in words and digits.

    >>> spellings(10), spellings(25), spellings(2024)
    (['10', 'ten', 'tenth', '10th'], ['25', 'twenty-five', 'twenty-fifth', '25th'], ['2024'])
    """
    if value >= _NO_YEAR:
        return [str(value)]
    out = [str(value)]
    if value < 100:
        tens, unit = divmod(value, 10)
        if value in _CARDINAL_OF:
            out += [_CARDINAL_OF[value], _ORDINAL_OF[value]]
        else:
            out += [f"{_CARDINAL_OF[10 * tens]}-{_CARDINAL_OF[unit]}", f"{_CARDINAL_OF[10 * tens]}-{_ORDINAL_OF[unit]}"]
    suffix = "th" if 10 <= value % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
    return [*out, f"{value}{suffix}"]


def query_variants(query: str) -> str:
    """The query's number spellings that it does not already use, as extra words for keyword search.

    A question writes "10 years" or "15th year" where a table writes "Tenth" or "In year 15", and "2 weeks"
    where a policy writes "two (2) weeks". Only numbers below 100 get variants: larger ones are amounts,
    hours or years, written in digits on both sides. Spellings of two words ("twenty-five") are left out:
    keyword search would read them as two numbers.

    >>> query_variants("How much vacation after 10 years, and in my 15th year?")
    'ten tenth 10th 15 fifteen fifteenth'
    >>> query_variants("My twenty-fifth year")
    '25 25th'
    >>> query_variants("Is the limit $2,500 or 300 hours?")
    ''
    """
    present = {m.group(0).lower() for m in NUMBER.finditer(query)}
    extra: list[str] = []
    for m in mentions(query):
        if m.value >= 100:
            continue
        for form in spellings(m.value):
            if "-" not in form and form not in present and form not in extra:
                extra.append(form)
    return " ".join(extra)

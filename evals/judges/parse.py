"""Turn a judge's free-text reply into a score, or refuse to (pure functions).

Two scales: ``"1-10"`` (a rating) and ``"yes-no"`` (1.0 for yes, 0.0 for no). A reply that does
not state one clear answer raises :class:`ParseError`; callers record it as a failure, never as
a score of 0.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Scale = Literal["1-10", "yes-no"]
SCALES: tuple[str, ...] = get_args(Scale)

_NUM = r"(-?\d+(?:\.\d+)?)"
_SCALE_PHRASE = re.compile(r"\b(?:on\s+)?(?:a\s+)?(?:scale|range)\s+(?:of\s+|from\s+)?"
                           r"1\s*(?:-|–|to)\s*10\b", re.IGNORECASE)
_OUT_OF_TEN = re.compile(_NUM + r"\s*(?:/|out\s+of)\s*10\b", re.IGNORECASE)
_LABELLED = re.compile(r"\b(?:score|rating|rate|grade)\b[^\d\n-]{0,20}" + _NUM, re.IGNORECASE)
_LEADING = re.compile(r"^\s*" + _NUM + r"(?!\d)(?![\d.]*\s*(?:-|–|to)\s*\d)")
_ANY_NUM = re.compile(r"(?<![\w.])" + _NUM + r"(?![\w])")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


class ParseError(ValueError):
    """The reply does not contain one clear answer on the template's scale."""


def _clean(reply: str) -> str:
    """Drop markdown emphasis and code marks, and collapse whitespace."""
    return " ".join(re.sub(r"[*_`#]", " ", reply).split())


def parse_rating(reply: str) -> float:
    """A 1-10 rating from replies like "7", "Score: 7/10", "**8**", "I'd rate this 6 out of 10".

    Tried in order: "X/10" or "X out of 10"; "score/rating: X"; a number opening the reply; the
    only number in the reply. The value must lie in [1, 10].
    """
    text = _SCALE_PHRASE.sub(" ", _clean(reply))
    for pattern in (_OUT_OF_TEN, _LABELLED, _LEADING):
        if m := pattern.search(text):
            return _in_range(m.group(1), reply)
    numbers = {float(n) for n in _ANY_NUM.findall(text)}
    if len(numbers) == 1:
        return _in_range(str(numbers.pop()), reply)
    why = "no number" if not numbers else f"several numbers {sorted(numbers)}"
    raise ParseError(f"no 1-10 rating found ({why}) in reply {reply[:200]!r}")


def _in_range(number: str, reply: str) -> float:
    value = float(number)
    if not 1 <= value <= 10:
        raise ParseError(f"rating {number} is outside 1-10 in reply {reply[:200]!r}")
    return value


def parse_yes_no(reply: str) -> float:
    """1.0 for a yes, 0.0 for a no: the reply's first word, else its only yes/no word."""
    text = _clean(reply).lower()
    first = re.match(r"\W*(\w+)", text)
    if first and first.group(1) in ("yes", "no"):
        return 1.0 if first.group(1) == "yes" else 0.0
    words = {w.lower() for w in _YES_NO.findall(text)}
    if len(words) == 1:
        return 1.0 if words.pop() == "yes" else 0.0
    why = "neither yes nor no" if not words else "both yes and no"
    raise ParseError(f"{why} in reply {reply[:200]!r}")


def parse_reply(reply: str, scale: Scale) -> float:
    """The score of `reply` on `scale` (raises ParseError when there is none)."""
    if scale == "1-10":
        return parse_rating(reply)
    if scale == "yes-no":
        return parse_yes_no(reply)
    raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")

"""What a search result shows: its text cut into pieces, the words the query found marked.

A word is marked when it starts with one of the terms, in any case: the rule the
databases searched with (query.py), so the marks are why the message was found.
"""

from __future__ import annotations

import re
from typing import TypedDict

from chatd.search.query import fold, starts_word, word_end

WINDOW_CHARS = 200
# How much of what comes before the first match a window keeps: enough to read it in
# context, while most of the window follows it.
LEAD_CHARS = 60
ELLIPSIS = "…"
_SPACE = re.compile(r"\s")


class Piece(TypedDict):
    text: str
    match: bool


def highlight(text: str, terms: list[str]) -> list[Piece]:
    """The text as pieces; longer than WINDOW_CHARS, a window around its first match.

    A window starts and ends at a space when one is near, so no word is cut, and says
    "…" where it cuts the text.
    """
    folded = fold(text)  # one character for one: its positions are the text's
    start, end = _window(text, _first_match(text, folded, terms))
    pieces: list[Piece] = []
    if start > 0:
        pieces.append({"text": ELLIPSIS, "match": False})
    position = start
    for left, right in _matches(text, folded, terms, start, end):
        _append(pieces, text[position:left], False)
        _append(pieces, text[left:right], True)
        position = right
    _append(pieces, text[position:end], False)
    if end < len(text):
        _append(pieces, ELLIPSIS, False)
    return pieces


# Both look for where the terms occur in the folded text and keep the places that start
# a word: far fewer than the words of a long message, so 4,000 characters stay cheap.


def _first_match(text: str, folded: str, terms: list[str]) -> tuple[int, int]:
    """(start, end) of the first word that starts with a term; (0, 0) if none does."""
    first = len(text)
    for term in terms:
        limit = first + len(term) - 1  # an occurrence that starts before `first`
        position = folded.find(term, 0, limit)
        while position >= 0 and not starts_word(text, position):
            position = folded.find(term, position + 1, limit)
        if position >= 0:
            first = position
    return (first, word_end(text, first)) if first < len(text) else (0, 0)


def _matches(
    text: str, folded: str, terms: list[str], start: int, end: int
) -> list[tuple[int, int]]:
    """(start, end) of each word in [start, end) that starts with a term, in order."""
    starts: set[int] = set()
    for term in terms:
        limit = end + len(term) - 1  # an occurrence that starts before `end`
        position = folded.find(term, start, limit)
        while position >= 0:
            if starts_word(text, position):
                starts.add(position)
            position = folded.find(term, position + 1, limit)
    return [(left, min(word_end(text, left), end)) for left in sorted(starts)]


def _window(text: str, first: tuple[int, int]) -> tuple[int, int]:
    """[start, end) of at most WINDOW_CHARS of text that holds the first match."""
    length = len(text)
    if length <= WINDOW_CHARS:
        return 0, length
    start = max(0, first[0] - LEAD_CHARS)
    end = min(length, start + WINDOW_CHARS)
    start = max(0, end - WINDOW_CHARS)
    if start > 0:  # begin after a space before the match, if there is one
        space = _SPACE.search(text, start, first[0])
        if space is not None:
            start = space.end()
    if end < length:  # and end at the last space after it, if there is one
        spaces = [space.start() for space in _SPACE.finditer(text, max(first[1], start), end)]
        if spaces:
            end = spaces[-1]
    return start, end


def _append(pieces: list[Piece], text: str, match: bool) -> None:
    """Add a piece, joined to the last one when both are marked the same."""
    if not text:
        return
    if pieces and pieces[-1]["match"] == match:
        pieces[-1] = {"text": pieces[-1]["text"] + text, "match": match}
    else:
        pieces.append({"text": text, "match": match})

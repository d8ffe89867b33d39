"""A search query: its words, each matched as a word or the start of one, in any case.

A word is a run of letters, digits, combining marks and private-use characters; all else
separates words, as SQLite's FTS5 unicode61 tokenizer sees text and as PostgreSQL sees it
once the index has made ASCII punctuation spaces (schema 0005). Each database reads a term
with its own tokenizer again, so a term is never raw query syntax for either.
"""

from __future__ import annotations

import re
import unicodedata

from chatd.errors import ValidationFailed

MAX_QUERY_CHARS = 200
MAX_TERMS = 8
# Letters and digits (str.isalnum, without the underscore that \w adds) and private-use
# characters, as FTS5 counts them. Combining marks continue a word: see word_spans.
_WORD_CHARS = re.compile(r"(?:[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every word of text, in order."""
    spans: list[tuple[int, int]] = []
    found = _WORD_CHARS.search(text)
    while found is not None:
        end = word_end(text, found.start())
        spans.append((found.start(), end))
        found = _WORD_CHARS.search(text, end)
    return spans


def word_end(text: str, start: int) -> int:
    """Where the word starting at `start` ends."""
    found = _WORD_CHARS.match(text, start)
    end = start if found is None else found.end()
    length = len(text)
    # "é" typed as e + U+0301, a Devanagari vowel sign: still the same word.
    while end < length and _is_mark(text[end]):
        end += 1
        more = _WORD_CHARS.match(text, end)
        if more is not None:
            end = more.end()
    return end


def starts_word(text: str, position: int) -> bool:
    """Whether a word of text starts at `position` (not inside one)."""
    if _WORD_CHARS.match(text, position) is None:
        return False
    before = position - 1
    while before >= 0 and _is_mark(text[before]):
        before -= 1  # marks after a word belong to it; marks after a space to no word
    return before < 0 or _WORD_CHARS.match(text, before) is None


def _is_mark(ch: str) -> bool:
    # No combining mark comes before U+0300: most text never needs the lookup.
    return ch >= "\u0300" and unicodedata.category(ch)[0] == "M"


def fold(word: str) -> str:
    """The word in lower case, one character for one (as FTS5 folds case).

    str.lower() makes two characters of a few ("İ" becomes "i̇"): those are kept as typed.
    """
    lowered = word.lower()
    if len(lowered) == len(word):
        return lowered
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in word)


def parse_query(raw: str | None) -> list[str]:
    """The distinct words of q, folded, in the order typed; ValidationFailed (422) if unusable."""
    if raw is None or not raw.strip():
        raise ValidationFailed("q is required: the words to search for")
    if len(raw) > MAX_QUERY_CHARS:
        raise ValidationFailed(f"q must be at most {MAX_QUERY_CHARS} characters")
    terms = list(dict.fromkeys(fold(raw[start:end]) for start, end in word_spans(raw)))
    if not terms:
        raise ValidationFailed("q has no words to search for: it needs letters or digits")
    if len(terms) > MAX_TERMS:
        raise ValidationFailed(f"q may have at most {MAX_TERMS} words")
    return terms

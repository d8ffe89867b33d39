"""What a message's text may be, wherever it comes from: a socket's send or a REST edit."""

from __future__ import annotations


def encodable(text: str) -> bool:
    """False for lone surrogates (from a "\\ud800" escape): not text at all."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def text_problem(text: object, max_chars: int, field: str = "text") -> tuple[str, str] | None:
    """(error code, message) if `text` cannot be a message's text, else None."""
    if not isinstance(text, str) or not text.strip():
        return "invalid_text", f"{field} must be a non-empty string"
    if len(text) > max_chars:
        return "text_too_long", f"text is limited to {max_chars} characters"
    if "\x00" in text or not encodable(text):
        return "invalid_text", "text must be valid Unicode without NUL characters"
    return None

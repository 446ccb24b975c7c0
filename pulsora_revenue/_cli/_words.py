"""Counted nouns for the command line's messages: "1 event", "2 events"."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """Write *number* with *noun*, in the plural unless it is one: ``counted(2, "row")``."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"

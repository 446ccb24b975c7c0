"""Hide tokens in what the command line prints: an error may quote what was typed.

A token typed on the command line (where no option takes one) must not be
echoed back by an error: a terminal's scrollback, a CI log or a screen share
would show it. Values that look like tokens (``sec_...``, ``pub_...``) and the
value after an option named like ``--token`` are shown as ``redact`` shows a
token: ``sec_…`` and the last four characters at most.
"""

from __future__ import annotations

import re

from .._config import TOKEN_ENV, redact

#: A word that starts like a token, on its own (not inside a path such as ``/data/sec_x``).
_TOKEN_LIKE = re.compile(r"(?<![\w./\\-])(?:sec|pub)_[A-Za-z0-9][^\s'\",…]*")

#: ``--token VALUE``, ``--api-token=VALUE``, ``--secret VALUE``: not ``--token-file PATH``.
_AFTER_OPTION = re.compile(
    r"(--(?![\w-]*file\b)[\w-]*(?:token|secret)[\w-]*(?:=|\s+))([^\s'\"-][^\s'\"]*)"
)

#: Said when ``--token`` was refused: where the token comes from instead.
TOKEN_HINT = (
    f"there is no --token option: the secret token comes from the {TOKEN_ENV} "
    "environment variable or --token-file PATH, never the command line, where the shell "
    "history and other users could see it"
)


def scrub(text: str) -> str:
    """Return *text* with every token-like value in it redacted."""
    text = _AFTER_OPTION.sub(lambda m: m[1] + redact(m[2]), text)
    return _TOKEN_LIKE.sub(lambda m: _redacted(m[0]), text)


def _redacted(word: str) -> str:
    """A token-like word redacted; punctuation after it, as in ``sec_x: ...``, kept."""
    value = word.rstrip(":;.)")
    return redact(value) + word[len(value) :]


def hint(message: str) -> str:
    """*message*, with where the token comes from when it refuses a ``--token`` option."""
    if re.search(r"unrecognized arguments:.*--token\b(?!-file)", message):
        return f"{message}\n{TOKEN_HINT}"
    return message

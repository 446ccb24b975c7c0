"""Find the Python blocks of a Markdown file, and run each one as a script.

The conventions the docs are written to:

- Every ```python fence is a snippet, named ``FILE:LINE`` after its opening fence. Other
  languages (``pycon``, ``console``) are not Python, and a fence inside another fence (a
  Markdown example in a ````markdown block) is that fence's text, not a block.
- ``<!-- illustrative -->`` on the line directly above the opening fence: the snippet is
  compiled, never run.
- ``<!-- output -->`` directly above a ```text fence that follows a snippet (only blank
  lines between the snippet's closing fence and the marker): what the snippet must print.
- A fence indented in a list item counts; its indentation is removed from its lines.

A marker anywhere else is a mistake, reported by ``collect`` rather than ignored: a
check that silently does not apply is worse than none.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import re
import sys
import types
from pathlib import Path

import attrs

from pulsora_revenue import _sync

ILLUSTRATIVE = "<!-- illustrative -->"
OUTPUT = "<!-- output -->"

#: An opening fence: three or more backticks or tildes, then the info string.
_OPENING = re.compile(r"(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)")


@attrs.frozen
class Fence:
    """One fenced block of a Markdown text, its lines counted from 1."""

    line: int
    end: int  # the closing fence's line; the last line when the fence is never closed
    language: str  # the info string's first word, lower-cased
    body: str  # the lines inside, without the opening fence's indentation
    above: str  # the line directly above the opening fence, stripped


@attrs.frozen
class Snippet:
    """A ```python block: where it is, its code, and the output it must print (if any)."""

    path: Path
    name: str  # "README.md:42": the file and the line of the opening fence
    line: int
    source: str
    illustrative: bool = False
    output: str | None = None
    output_name: str | None = None

    def compile(self) -> types.CodeType:
        """Compile as a script of its own, its line numbers those of the Markdown file.

        Compiled from line 1, then moved to its lines (rather than after blank padding),
        so that a traceback shows the snippet, not the document up to it.
        ``dont_inherit``: the caller's ``from __future__`` imports must not change what
        the snippet means (postponed annotations would hide an undefined name).
        """
        try:
            code = compile(self.source, str(self.path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            _move_error(exc, self.source, self.line)
            raise
        return _moved(code, self.line)


def _move_error(exc: SyntaxError, source: str, lines: int) -> None:
    """Point *exc* at the Markdown file's line; its text is the snippet's own.

    The compiler reads the text of some errors (``'await' outside function``) from the
    file on disk at the line it was given: the document's line that many from the top.
    """
    if exc.lineno is not None:
        exc.text = (source.splitlines() or [""])[exc.lineno - 1] + "\n"
        exc.lineno += lines
    if exc.end_lineno is not None:
        exc.end_lineno += lines


def _moved(code: types.CodeType, lines: int) -> types.CodeType:
    """*code*, and every function or class body in it, *lines* further down its file."""
    constants = tuple(
        _moved(constant, lines) if isinstance(constant, types.CodeType) else constant
        for constant in code.co_consts
    )
    return code.replace(co_firstlineno=code.co_firstlineno + lines, co_consts=constants)


@attrs.frozen
class Collected:
    """A document's snippets, and its markers that apply to nothing."""

    snippets: list[Snippet]
    problems: list[str]


def fences(text: str) -> list[Fence]:
    """Every top-level fenced block of *text*, in order (CommonMark's fence rules)."""
    lines = text.splitlines()
    found: list[Fence] = []
    index = 0
    while index < len(lines):
        opening = _OPENING.fullmatch(lines[index])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        end = _closing(lines, index + 1, opening["fence"])
        indent = len(opening["indent"])
        body = "".join(_unindent(line, indent) + "\n" for line in lines[index + 1 : end])
        words = opening["info"].split()
        above = lines[index - 1].strip() if index else ""
        found.append(Fence(index + 1, end + 1, words[0].lower() if words else "", body, above))
        index = end + 1
    return found


def _closing(lines: list[str], start: int, fence: str) -> int:
    """The index of the line closing *fence*: the same character, at least as many."""
    for index in range(start, len(lines)):
        stripped = lines[index].strip()
        if len(stripped) >= len(fence) and set(stripped) == {fence[0]}:
            return index
    return len(lines)  # an unclosed fence runs to the end of the document


def _unindent(line: str, indent: int) -> str:
    """*line* without up to *indent* leading spaces (its fence's indentation)."""
    return line[min(indent, len(line) - len(line.lstrip(" "))) :]


def collect(path: Path, name: str) -> Collected:
    """The snippets of the Markdown file *path*, named after *name* (its path as shown)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = fences("\n".join(lines))
    snippets: list[Snippet] = []
    problems = _stray_markers(lines, found, name)
    previous: Fence | None = None
    for fence in found:
        where = f"{name}:{fence.line - 1}"  # the marker's line
        if fence.above == ILLUSTRATIVE and fence.language != "python":
            problems.append(f"{where}: {ILLUSTRATIVE} is above a ```{fence.language} block")
        if fence.above == OUTPUT:
            problem = _output_problem(lines, previous, fence, snippets)
            if problem:
                problems.append(f"{where}: {problem}")
            else:
                snippets[-1] = attrs.evolve(
                    snippets[-1], output=fence.body, output_name=f"{name}:{fence.line}"
                )
        if fence.language == "python":
            illustrative = fence.above == ILLUSTRATIVE
            snippets.append(
                Snippet(path, f"{name}:{fence.line}", fence.line, fence.body, illustrative)
            )
        previous = fence
    return Collected(snippets, problems)


def _output_problem(
    lines: list[str], previous: Fence | None, fence: Fence, snippets: list[Snippet]
) -> str | None:
    """Why this ``<!-- output -->`` block belongs to no snippet, or None when it does."""
    if fence.language != "text":
        return f"{OUTPUT} is above a ```{fence.language} block; an output is a ```text block"
    between = lines[previous.end : fence.line - 2] if previous else []
    if previous is None or previous.language != "python" or any(s.strip() for s in between):
        return f"{OUTPUT} must follow a ```python block, with only blank lines between"
    if snippets[-1].illustrative:
        return f"{OUTPUT} follows an illustrative block, which is not run"
    return None


def _stray_markers(lines: list[str], found: list[Fence], name: str) -> list[str]:
    """A marker outside every fence that is not on the line directly above one."""
    inside = {line for fence in found for line in range(fence.line, fence.end + 1)}
    openings = {fence.line for fence in found}
    return [
        f"{name}:{number}: {line.strip()} is not directly above a fence (nothing between)"
        for number, line in enumerate(lines, start=1)
        if line.strip() in (ILLUSTRATIVE, OUTPUT)
        and number not in inside
        and number + 1 not in openings
    ]


def run(snippet: Snippet) -> str:
    """Run *snippet* as ``python snippet.py`` would, and return what it printed.

    It runs in a fresh ``__main__`` module (``sys.modules["__main__"]`` for the while,
    as ``runpy`` does, so that pickling, attrs and typing find its classes). A
    ``SyncRevenue`` it leaves open is closed afterwards, as the library's ``atexit``
    hook would close it when the script's process ends. Should it fail, what it printed
    so far is written to the real standard output, for pytest to show.
    """
    code = snippet.compile()
    if snippet.illustrative:
        return ""
    main = types.ModuleType("__main__")
    saved_main, saved_argv = sys.modules["__main__"], sys.argv
    open_before = set(_sync._open_clients)
    printed = io.StringIO()
    sys.modules["__main__"], sys.argv = main, [str(snippet.path)]
    try:
        with contextlib.redirect_stdout(printed):
            try:
                _exec(code, main)
            finally:
                for client in set(_sync._open_clients) - open_before:
                    client._close_at_exit()
    except BaseException:
        sys.stdout.write(printed.getvalue())
        raise
    finally:
        sys.modules["__main__"], sys.argv = saved_main, saved_argv
        main.__dict__.clear()  # drop what it made now, not during another test
    return printed.getvalue()


def _exec(code: types.CodeType, main: types.ModuleType) -> None:
    """Execute *code* in *main*; ``sys.exit()`` or ``sys.exit(0)`` is a success, as in a script."""
    try:
        exec(code, main.__dict__)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise AssertionError(f"the snippet exited with {exc.code!r}") from exc


def normalise(text: str) -> str:
    """*text* without trailing whitespace on its lines, nor blank lines at its end."""
    return "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")


def check_output(snippet: Snippet, printed: str) -> None:
    """Raise ``AssertionError`` with a diff unless *printed* is the snippet's output block."""
    if snippet.output is None:
        return
    expected, actual = normalise(snippet.output), normalise(printed)
    if expected == actual:
        return
    diff = difflib.unified_diff(
        expected.splitlines(),
        actual.splitlines(),
        fromfile=f"{snippet.output_name} (the output block)",
        tofile=f"{snippet.name} (what it printed)",
        lineterm="",
    )
    raise AssertionError(f"{snippet.name} printed other than its output block:\n" + "\n".join(diff))

"""Reading events from JSON Lines and CSV files, lazily, with line numbers.

JSON Lines: one object per line; keys that start with ``_`` are notes (such as
the ``_line`` and ``_error`` of a failures file) and are ignored. CSV: a header
of event fields; ``metadata.<key>`` columns build the metadata; empty cells are
absent; numbers become decimals and ``true``/``false`` booleans.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from .. import _json
from .._errors import ConfigurationError

Format = Literal["jsonl", "csv"]

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_LEADING_ZERO = re.compile(r"-?0[0-9]")  # a zip code or an id, not a number
_INT_DIGITS = 600  # a cell with more digits is read as a Decimal
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


@attrs.frozen
class Row:
    """One input row: its line number, and the event fields (or why it is unreadable)."""

    line: int
    fields: dict[str, Any] | None
    problem: str = ""
    raw: str = ""  # the line as read, when it could not be parsed


def guess_format(path: str, given: Format | None) -> Format:
    """The format by ``--format``, else by the file's extension (JSON Lines by default)."""
    if given is not None:
        return given
    return "csv" if path.lower().endswith(".csv") else "jsonl"


@contextmanager
def opened(path: str) -> Iterator[IO[str]]:
    """The file at *path* as text, or standard input for ``-``."""
    if path == "-":  # read as the files are: a BOM (from Excel) is dropped, newlines kept
        yield io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        return
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:  # a BOM, from Excel
        yield handle


def read(handle: IO[str], form: Format) -> Iterator[Row]:
    """Yield every row of *handle* in order; unreadable lines become rows with a problem."""
    return _read_csv(handle) if form == "csv" else _read_jsonl(handle)


def count_rows(path: str, form: Format) -> int | None:
    """How many rows a file holds (None for standard input), by a quick scan."""
    if path == "-" or not Path(path).is_file():
        return None  # standard input, a pipe, a FIFO: counting would consume it
    with Path(path).open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(0, lines - 1) if form == "csv" else lines


def _read_jsonl(handle: IO[str]) -> Iterator[Row]:
    number = 0
    with _not_utf8_after(lambda: number):
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield _jsonl_row(number, line.rstrip("\r\n"))


def _jsonl_row(number: int, line: str) -> Row:
    try:
        value = _json.loads(line)
    except ValueError as exc:
        return Row(number, None, f"not valid JSON: {exc}", raw=line)
    except RecursionError:  # about 1,000 levels: far deeper than any event may nest
        return Row(number, None, "JSON nested too deeply to read", raw=line)
    if not isinstance(value, dict):
        return Row(number, None, f"expected a JSON object, got {type(value).__name__}", raw=line)
    fields = {k: v for k, v in value.items() if not k.startswith("_")}
    if not fields and isinstance(value.get("_input"), str):
        # A failures file's unreadable line: read its text again (fixed, or not yet).
        return _jsonl_row(number, value["_input"])
    return Row(number, fields)


def _read_csv(handle: IO[str]) -> Iterator[Row]:
    reader = csv.reader(handle)
    start = 1
    with _not_utf8_after(lambda: reader.line_num):
        try:
            header = next((cells for cells in reader if cells), [])  # after any blank lines
            start = reader.line_num + 1
            for cells in reader:  # a blank line is a record of no cells
                if cells:
                    yield _csv_row(start, header, cells)
                start = reader.line_num + 1  # a quoted cell may span lines: where the next starts
        except csv.Error as exc:
            raise ConfigurationError(f"the CSV cannot be read at line {start}: {exc}") from None


def _csv_row(line: int, header: list[str], cells: list[str]) -> Row:
    if any(cell.strip() for cell in cells[len(header) :]):  # a comma unquoted, say
        problem = f"{len(cells) - len(header)} more cell(s) than the header has columns"
        return Row(line, None, problem, raw=_csv_line(cells))
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for column, cell in zip(header, cells, strict=False):  # a short row: the rest is absent
        if cell == "":
            continue  # an empty cell: absent
        if column.startswith("metadata."):
            metadata[column.removeprefix("metadata.")] = _cell(cell)
        elif column == "is_recurring":
            fields[column] = _BOOLEANS.get(cell.strip().lower(), cell)
        elif not column.startswith("_"):
            fields[column] = cell
    if metadata:
        fields["metadata"] = metadata
    return Row(line, fields)


def _csv_line(cells: list[str]) -> str:
    """Cells as the CSV line they came from (near enough: quoting may differ)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="").writerow(cells)
    return text.getvalue()


@contextmanager
def _not_utf8_after(line: Callable[[], int]) -> Iterator[None]:
    """Say where a bad byte is: after the last line read (it was decoded by the chunk)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"the input is not UTF-8 text: {exc.reason}, after line {line()}"
        ) from None


def _cell(cell: str) -> Any:
    """A metadata cell: a number or boolean when it plainly is one, else the text."""
    text = cell.strip()
    if _NUMBER.fullmatch(text) and not _LEADING_ZERO.match(text):
        # int() refuses more than 4,300 digits (and takes quadratic time): a Decimal does not
        return Decimal(text) if "." in text or len(text) > _INT_DIGITS else int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return cell

"""Reading events from JSON Lines and CSV files, lazily, with line numbers.

JSON Lines: one object per line; keys that start with ``_`` are notes (such as
the ``_line`` and ``_error`` of a failures file) and are ignored. CSV: a header
of event fields; ``metadata.<key>`` columns, and those chosen with ``Columns``,
build the metadata; other columns are ignored (named once), or refused with
``Columns(strict=True)``; empty cells are absent; in metadata, numbers become
decimals and ``true``/``false`` booleans.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from .. import _json
from .._errors import ConfigurationError, FieldError, ValidationError
from .._event import RevenueEvent
from ._words import counted

Format = Literal["jsonl", "csv"]

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_LEADING_ZERO = re.compile(r"-?0[0-9]")  # a zip code or an id, not a number
_INT_DIGITS = 600  # a cell with more digits is read as a Decimal
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}

#: The names a CSV column may have to be sent as a field of the event.
EVENT_FIELDS = frozenset(attrs.fields_dict(RevenueEvent))

#: What a CSV column becomes: (field name, or metadata key; True for metadata), or None: ignored.
_Use = tuple[str, bool] | None


@attrs.frozen
class Row:
    """One input row: its line number, and the event fields (or why it is unreadable)."""

    line: int
    fields: dict[str, Any] | None
    problem: str = ""
    raw: str = ""  # the line as read, when it could not be parsed
    header: frozenset[str] | None = None  # a CSV row's columns, to say why a field is absent


@attrs.frozen
class Columns:
    """What to do with the CSV columns that are no event field.

    By default they are not sent, and ``read`` names them once (an ``email``
    column is personal data). Those in ``metadata`` go into each event's
    metadata; with ``strict``, the others are kept as fields, and every row is
    invalid ("unknown field").
    """

    metadata: Sequence[str] = ()
    strict: bool = False


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


def read(
    handle: IO[str],
    form: Format,
    columns: Columns | None = None,
    on_ignored: Callable[[list[str]], object] | None = None,
) -> Iterator[Row]:
    """Yield every row of *handle* in order; unreadable lines become rows with a problem.

    A CSV's header is read at once: a refused *columns* raises ``ConfigurationError``
    here, and *on_ignored* is called with the columns not sent, if any.
    """
    if form == "csv":
        return _read_csv(handle, columns or Columns(), on_ignored or (lambda names: None))
    if columns is not None and columns != Columns():
        raise ConfigurationError(
            "--metadata-columns and --strict-columns are for CSV files: the keys of a "
            "JSON line are its fields"
        )
    return _read_jsonl(handle)


def explain(row: Row, error: FieldError) -> str:
    """*error*'s message in the file's terms: an empty CSV cell is empty, not "None"."""
    path = error.path
    if row.header is None or path not in EVENT_FIELDS or path in (row.fields or {}):
        return error.message
    why = "Its cell is empty." if path in row.header else f"The file has no {path} column."
    return f"{error.message.removesuffix(' Received: None.')} {why}"


def explained(row: Row, error: object) -> str:
    """*error* as text, each of its field errors said by ``explain``."""
    if row.header is None or not isinstance(error, ValidationError):
        return str(error)
    return str(ValidationError(FieldError(e.path, explain(row, e)) for e in error.errors))


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


def _read_csv(
    handle: IO[str], columns: Columns, on_ignored: Callable[[list[str]], object]
) -> Iterator[Row]:
    reader = csv.reader(handle)
    with _csv_errors(reader, lambda: reader.line_num):
        header = [name.strip() for name in next((cells for cells in reader if cells), [])]
    plan, ignored = _plan(header, columns)
    if ignored:
        on_ignored(ignored)
    return _csv_rows(reader, plan, frozenset(header))


def _csv_rows(reader: Any, plan: list[_Use], header: frozenset[str]) -> Iterator[Row]:
    start = reader.line_num + 1
    with _csv_errors(reader, lambda: start):
        for cells in reader:  # a blank line is a record of no cells
            if cells:
                yield _csv_row(start, plan, cells, header)
            start = reader.line_num + 1  # a quoted cell may span lines: where the next starts


@contextmanager
def _csv_errors(reader: Any, start: Callable[[], int]) -> Iterator[None]:
    """A CSV that cannot be read, or is not UTF-8, as one ``ConfigurationError``."""
    with _not_utf8_after(lambda: reader.line_num):
        try:
            yield
        except csv.Error as exc:
            raise ConfigurationError(f"the CSV cannot be read at line {start()}: {exc}") from None


def _plan(header: list[str], columns: Columns) -> tuple[list[_Use], list[str]]:
    """What each column of *header* becomes, and the columns ignored."""
    chosen = set(columns.metadata)
    if missing := [name for name in columns.metadata if name not in header]:
        raise ConfigurationError(
            f"--metadata-columns names {counted(len(missing), 'column')} the CSV does not "
            f"have: {', '.join(missing)} (its columns: {', '.join(header)})"
        )
    if fields := [name for name in columns.metadata if name in EVENT_FIELDS]:
        raise ConfigurationError(
            f"--metadata-columns names {counted(len(fields), 'event field')}, which "
            f"{'is' if len(fields) == 1 else 'are'} sent as such: {', '.join(fields)}"
        )
    plan: list[_Use] = []
    ignored: list[str] = []
    for name in header:
        if name.startswith("metadata."):
            plan.append((name.removeprefix("metadata."), True))
        elif name in chosen:
            plan.append((name, True))
        elif name.startswith("_"):  # a note, such as a failures file's _line
            plan.append(None)
        elif name in EVENT_FIELDS or columns.strict:
            plan.append((name, False))
        else:
            plan.append(None)
            ignored.append(name)
    return plan, list(dict.fromkeys(ignored))


def _csv_row(line: int, plan: list[_Use], cells: list[str], header: frozenset[str]) -> Row:
    if any(cell.strip() for cell in cells[len(plan) :]):  # a comma unquoted, say
        problem = f"{counted(len(cells) - len(plan), 'more cell')} than the header has columns"
        return Row(line, None, problem, raw=_csv_line(cells))
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for use, cell in zip(plan, cells, strict=False):  # a short row: the rest is absent
        if use is None or cell == "":
            continue  # an empty cell: absent
        name, is_metadata = use
        if is_metadata:
            metadata[name] = _cell(cell)
        elif name == "is_recurring":
            fields[name] = _BOOLEANS.get(cell.strip().lower(), cell)
        else:
            fields[name] = cell
    if metadata:
        fields["metadata"] = metadata
    return Row(line, fields, header=header)


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

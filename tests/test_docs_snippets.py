"""Every Python block of README.md and docs/**/*.md runs as written (issue 22).

Each ```python block is a test named after its file and line (``README.md:42``), run as
a script of its own (``__name__ == "__main__"``, a fresh namespace) in a temporary
folder, with ``PULSORA_SECRET_TOKEN`` and ``PULSORA_ENDPOINT`` pointing at an emulator
served for this module: ``Revenue()`` and ``SyncRevenue()`` send there. The markers and
how blocks are found are described in ``tests/snippets.py``.

Blocks run in this process with ``exec`` (a subprocess each would cost some 0.3 s of
imports): none needs a process of its own, since a ``SyncRevenue`` left open is closed as
the library's ``atexit`` hook would close it.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pulsora_revenue import _sync, testing

from .conftest import DevServer
from .data import TOKEN
from .snippets import Collected, Snippet, check_output, collect, fences, run

ROOT = Path(__file__).parent.parent


def documents() -> list[Path]:
    """README.md and every Markdown file under docs/, whatever has been written so far."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def collected(document: Path) -> Collected:
    return collect(document, document.relative_to(ROOT).as_posix())


SNIPPETS = [snippet for document in documents() for snippet in collected(document).snippets]


@pytest.fixture(scope="module")
def emulator() -> Iterator[DevServer]:
    """One emulator for the module, with a fresh database of its own."""
    limits = httpx.Limits(keepalive_expiry=1.0)  # never race uvicorn's idle close (5 s)
    with testing.serve_emulator() as served, httpx.Client(limits=limits) as http:
        yield DevServer(served.url, served.db, http)


@pytest.fixture
def environment(emulator: DevServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DevServer:
    """What a block finds: an empty emulator, its variables set, an empty folder."""
    emulator.reset()
    monkeypatch.setenv("PULSORA_SECRET_TOKEN", TOKEN)
    monkeypatch.setenv("PULSORA_ENDPOINT", emulator.endpoint)
    monkeypatch.chdir(tmp_path)
    return emulator


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda snippet: snippet.name)
def test_snippet(snippet: Snippet, environment: DevServer) -> None:
    """The block runs (or, illustrative, compiles), and prints its output block if it has one."""
    check_output(snippet, run(snippet))


@pytest.mark.parametrize(
    "document", documents(), ids=lambda document: document.relative_to(ROOT).as_posix()
)
def test_markers_are_placed(document: Path) -> None:
    """Every marker is directly above the block it is about, so that it applies."""
    assert collected(document).problems == []


def test_readme_has_python_blocks() -> None:
    """A collector that finds nothing would let every doc pass: README.md has blocks."""
    assert collected(ROOT / "README.md").snippets, "no ```python block found in README.md"


# The collector itself, on a document that has every case.

SAMPLE = """\
# Sample

```python
print("ran as", __name__)
```

<!-- output -->
```text
ran as __main__\x20\x20
```

<!-- illustrative -->
```python
never_run()  # an undefined name: compiled, never run
```

Text between.

```python
print("one")
```

<!-- output -->
```text
two
```

````markdown
```python
raise AssertionError("nested: not a block")
```
````

```pycon
>>> raise AssertionError("not Python")
```

1. In a list:

    ```python
    if True:
        print("indented")
    ```

```python
def handler(payment: Undefined) -> None:  # annotations are evaluated, as in a script
    pass
```
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sample.md"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, after: int = 0) -> int:
    """The number of the first line of *text* after line *after* that starts *needle*."""
    for number, line in enumerate(text.splitlines(), start=1):
        if number > after and line.strip().startswith(needle):
            return number
    raise AssertionError(f"{needle!r} is not in the text")


@pytest.fixture
def sample(tmp_path: Path) -> list[Snippet]:
    result = collect(write(tmp_path, SAMPLE), "sample.md")
    assert result.problems == []
    return result.snippets


def test_collector_finds_the_python_blocks(sample: list[Snippet]) -> None:
    """Python fences only: not pycon, not one inside a markdown fence; an indented one too."""
    fence_lines = [f.line for f in fences(SAMPLE) if f.language == "python"]
    assert len(fence_lines) == 5  # the nested one is the markdown fence's text
    assert [s.name for s in sample] == [f"sample.md:{line}" for line in fence_lines]
    assert [s.illustrative for s in sample] == [False, True, False, False, False]
    assert sample[3].source == 'if True:\n    print("indented")\n'


def test_collector_pairs_output_blocks(sample: list[Snippet]) -> None:
    first_text = line_of(SAMPLE, "```text")
    assert sample[0].output == "ran as __main__  \n"
    assert sample[0].output_name == f"sample.md:{first_text}"
    assert sample[2].output == "two\n"
    assert [s.output for s in sample[3:]] == [None, None]


def test_a_block_runs_as_a_script_and_its_output_matches(sample: list[Snippet]) -> None:
    printed = run(sample[0])
    assert printed == "ran as __main__\n"
    check_output(sample[0], printed)  # the output block's trailing spaces do not count
    assert run(sample[3]) == "indented\n"


def test_an_illustrative_block_is_compiled_not_run(sample: list[Snippet], tmp_path: Path) -> None:
    assert run(sample[1]) == ""
    broken = collect(write(tmp_path, "<!-- illustrative -->\n```python\nif:\n```\n"), "x.md")
    with pytest.raises(SyntaxError):
        run(broken.snippets[0])


def test_an_output_mismatch_shows_a_diff(sample: list[Snippet]) -> None:
    printed = run(sample[2])
    with pytest.raises(AssertionError) as raised:
        check_output(sample[2], printed)
    output_line = line_of(SAMPLE, "```text", after=sample[2].line)
    assert str(raised.value).splitlines() == [
        f"{sample[2].name} printed other than its output block:",
        f"--- sample.md:{output_line} (the output block)",
        f"+++ {sample[2].name} (what it printed)",
        "@@ -1 +1 @@",
        "-two",
        "+one",
    ]


def test_a_block_does_not_inherit_this_module_future_imports(sample: list[Snippet]) -> None:
    with pytest.raises(NameError, match="Undefined"):
        run(sample[4])


def test_a_traceback_points_at_the_markdown_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """And what the block printed before it failed is shown with the failure."""
    text = "Text.\n\n```python\nprint('before')\nraise ValueError('failed')\n```\n"
    (snippet,) = collect(write(tmp_path, text), "x.md").snippets
    with pytest.raises(ValueError, match="failed") as raised:
        run(snippet)
    frame = traceback.extract_tb(raised.value.__traceback__)[-1]
    assert (frame.filename, frame.lineno) == (str(tmp_path / "sample.md"), 5)
    assert frame.line == "raise ValueError('failed')"
    assert capsys.readouterr().out == "before\n"


def test_a_block_that_fails_to_compile_names_its_markdown_line(tmp_path: Path) -> None:
    path = write(tmp_path, "```python\nasync with x:\n    pass\n```\n")
    (snippet,) = collect(path, "x.md").snippets
    with pytest.raises(SyntaxError) as raised:
        run(snippet)
    assert (raised.value.filename, raised.value.lineno) == (str(path), 2)


def test_a_sync_client_left_open_is_closed(tmp_path: Path) -> None:
    block = (
        "from pulsora_revenue import SyncRevenue\n"
        "from pulsora_revenue.testing import FakePulsora\n"
        f"revenue = SyncRevenue({TOKEN!r}, transport=FakePulsora().transport)\n"
        "revenue.track(visitor_fingerprint='fp', session_id='s', customer_id='c',"
        " amount=1, transaction_id='t', event_type='purchase')\n"
    )
    (snippet,) = collect(write(tmp_path, f"```python\n{block}```\n"), "x.md").snippets
    open_before = set(_sync._open_clients)
    run(snippet)
    assert set(_sync._open_clients) <= open_before


def test_misplaced_markers_are_reported(tmp_path: Path) -> None:
    text = """\
<!-- illustrative -->

```python
pass
```

<!-- output -->
```console
$ true
```

<!-- illustrative -->
```python
pass
```
<!-- output -->
```text
nothing
```

Prose.

<!-- output -->
```text
nothing
```
"""
    result = collect(write(tmp_path, text), "x.md")
    assert result.problems == [
        "x.md:1: <!-- illustrative --> is not directly above a fence (nothing between)",
        "x.md:7: <!-- output --> is above a ```console block; an output is a ```text block",
        "x.md:16: <!-- output --> follows an illustrative block, which is not run",
        "x.md:23: <!-- output --> must follow a ```python block, with only blank lines between",
    ]

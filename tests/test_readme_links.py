"""Every relative link of the README and ARCHITECTURE.md leads to a file of the checkout.

``mkdocs build --strict`` checks the links between the pages of ``docs/``; these two
files are read on GitHub and PyPI, outside the site.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: A markdown link's target: ``[text](target)``, an optional ``#anchor`` left off.
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    targets = (match.group(1).split("#")[0] for match in _LINK.finditer(text))
    return [target for target in targets if target and "://" not in target]


@pytest.mark.parametrize("name", ["README.md", "ARCHITECTURE.md"])
def test_relative_links_lead_to_files(name: str) -> None:
    links = relative_links((ROOT / name).read_text())
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"{name} links to files that do not exist: {missing}"


def test_the_link_finder_finds_links() -> None:
    text = "See [the guide](docs/a.md#part), [PyPI](https://pypi.org) and [x](b.md)."
    assert relative_links(text) == ["docs/a.md", "b.md"]

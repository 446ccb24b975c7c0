"""``import pulsora_revenue`` loads no optional stack: each loads inside its subpackage, when used.

What it costs in time is measured in ``benchmarks/bench_import.py``; this checks
what it loads, which does not depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: The stacks of the extras, and what only some features need.
OPTIONAL = (
    "aiohttp",
    "sqlite3",
    "starlette",
    "uvicorn",
    "rich",
    "asyncio",
    "trio",
    "opentelemetry",
)


def loaded_by(statement: str) -> set[str]:
    """The modules of OPTIONAL that *statement* loads beyond httpx, attrs, cattrs and anyio."""
    script = (
        "import json, sys\n"
        "import httpx, attrs, cattrs, anyio\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        f"print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return {name for name in json.loads(out) if name.split(".")[0] in OPTIONAL}


@pytest.mark.parametrize(
    "statement",
    [
        "import pulsora_revenue",
        "from pulsora_revenue import Revenue; Revenue('sec_' + 'x' * 32)",
        "from pulsora_revenue import SyncRevenue; SyncRevenue('sec_' + 'x' * 32)",
        "from pulsora_revenue import Hooks, Revenue; Revenue('sec_' + 'x' * 32, hooks=[Hooks()])",
        "import pulsora_revenue.testing",
        "import pulsora_revenue.webhooks",
    ],
)
def test_no_optional_stack_is_loaded_until_used(statement: str) -> None:
    assert loaded_by(statement) == set()


def test_an_outbox_loads_sqlite_when_a_client_is_given_one() -> None:
    statement = "from pulsora_revenue import Revenue; Revenue('sec_' + 'x' * 32, outbox='o.db')"
    assert "sqlite3" in loaded_by(statement)


def test_opentelemetry_is_loaded_by_its_subpackage() -> None:
    assert "opentelemetry" in loaded_by("import pulsora_revenue.otel")

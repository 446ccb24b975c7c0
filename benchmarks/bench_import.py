"""Cost of ``import pulsora_revenue`` against the import of its required dependencies.

Run: ``python benchmarks/bench_import.py [--rounds N] [--extras] [--as-is]``.

Target (issue 18): ``import pulsora_revenue`` costs at most 1.25x
``import httpx, attrs, cattrs, anyio``, measured side by side in one run.

How it measures: every import runs in a fresh interpreter
(``sys.executable -c ...``, the working tree's root as the current directory),
which times the import statement itself, in wall time (``time.perf_counter``)
and in the process's CPU time (``time.process_time``), and prints both (where
the two agree, the child did not wait for a core: the noise left is other
processes sharing the caches and the memory bus). Interpreter startup (``site``,
the ``.pth`` files, the modules every interpreter loads) is therefore left out
of both cases alike, rather than subtracted afterwards; the wall time of
``python -c pass`` is shown on its own line, for scale. The cases take turns
within each round (A B, then B A in the next round, so that a drift of the
machine weighs on both alike); one round of each is run first and thrown away,
to write the bytecode caches. The figures are the median and the quartiles over
the rounds, and the ratio is of the medians.

A third case imports the baseline and then times ``import pulsora_revenue`` in
the same child: the increment, what our own modules and what only they pull in
cost once the dependencies are loaded. ``1 + increment / baseline`` is a second,
steadier estimate of the ratio (printed as "baseline + increment").

Each child also reports which optional stacks are in ``sys.modules`` after its
import. httpx loads rich (and click) itself, through its ``httpx._main``
command line, when both are installed, so rich can show up in the baseline too:
what matters is what our import loads that the baseline does not.

Bytecode: the children read and write their bytecode caches under a temporary
``PYTHONPYCACHEPREFIX``, with ``PYTHONDONTWRITEBYTECODE`` removed, so that both
cases run from cached bytecode, as an installed wheel does (pip compiles it).
Where ``PYTHONDONTWRITEBYTECODE=1`` is set (as on the project machine), a
working tree has no ``__pycache__``: every run would compile our ~9,000 lines
from source while httpx and the others load their installed ``.pyc`` files, a
cost no user pays. ``--as-is`` keeps the inherited environment, to show it.

This is a benchmark, not a test: the machine is shared and noisy, so a miss is
printed, never turned into a failing exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.25
BASELINE = "import httpx, attrs, cattrs, anyio"
OURS = "import pulsora_revenue"
INCREMENT = "pulsora_revenue after the baseline"
EXTRAS = ("import pulsora_revenue.webhooks", "import pulsora_revenue.testing")
#: The optional stacks, by the module whose presence shows each was imported.
STACKS = (
    "aiohttp",
    "asyncio",
    "sqlite3",
    "starlette",
    "uvicorn",
    "rich",
    "orjson",
    "uvloop",
    "trio",
)

CHILD = """\
import sys, time
{setup}
wall, cpu = time.perf_counter(), time.process_time()
{statement}
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
import json
print(json.dumps([wall, cpu, [name for name in {stacks!r} if name in sys.modules]]))
"""


@attrs.frozen
class Sample:
    """One child's import: wall and CPU seconds spent in it, and the stacks it loaded."""

    wall: float
    cpu: float
    stacks: frozenset[str]


def child_env(cache: str | None) -> dict[str, str]:
    """The children's environment: bytecode cached under *cache*, or as inherited if None."""
    env = dict(os.environ)
    if cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache
    return env


def run_child(statement: str, env: Mapping[str, str]) -> Sample:
    """Time *statement* in a fresh interpreter (the increment case: after the baseline)."""
    setup, timed = (BASELINE, OURS) if statement == INCREMENT else ("", statement)
    code = CHILD.format(setup=setup, statement=timed, stacks=STACKS)
    argv = [sys.executable, "-c", code]
    child = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if child.returncode:
        raise SystemExit(f"`{statement}` failed:\n{child.stderr}")
    wall, cpu, stacks = json.loads(child.stdout)
    return Sample(float(wall), float(cpu), frozenset(stacks))


def startup_seconds(env: Mapping[str, str]) -> float:
    """Wall time of ``python -c pass``, the startup that both cases leave out."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def measure(statements: list[str], rounds: int, env: Mapping[str, str]) -> dict[str, list[Sample]]:
    """Run every statement once per round, in turn, reversing the order every other round."""
    samples: dict[str, list[Sample]] = {statement: [] for statement in statements}
    for statement in statements:  # warm-up: write the bytecode caches
        run_child(statement, env)
    for index in range(rounds):
        order = statements if index % 2 == 0 else statements[::-1]
        for statement in order:
            samples[statement].append(run_child(statement, env))
    return samples


def quartiles_ms(seconds: list[float]) -> tuple[float, float, float]:
    """The first quartile, the median and the third quartile, in milliseconds."""
    low, median, high = statistics.quantiles([value * 1e3 for value in seconds], n=4)
    return low, median, high


def stacks_of(samples: list[Sample]) -> frozenset[str]:
    """The stacks loaded in any round (the same in every round, unless the tree changed)."""
    return frozenset().union(*(s.stacks for s in samples))


def report(samples: dict[str, list[Sample]], startup: list[float]) -> None:
    """Print the figures, the ratios against the baseline, and the stacks loaded."""
    pass_ms = statistics.median(startup) * 1e3
    print(f"python -c pass (wall, left out of every case): {pass_ms:.1f} ms")
    report_clock(samples, "wall")
    report_clock(samples, "cpu")
    report_stacks(samples)


def report_clock(samples: dict[str, list[Sample]], clock: Literal["wall", "cpu"]) -> None:
    """Print one clock's table and its verdict against the target."""
    medians: dict[str, float] = {}
    print(f"\n{clock + ' time':<36} {'median ms':>10} {'quartiles ms':>16} {'ratio':>7}")
    for statement, rows in samples.items():
        low, median, high = quartiles_ms([row.wall if clock == "wall" else row.cpu for row in rows])
        medians[statement] = median
        ratio = median / medians[BASELINE]
        print(f"{statement:<36} {median:>10.1f} {low:>7.1f}–{high:<8.1f} {ratio:>6.2f}x")
    for name, ratio in [
        (f"{OURS} / baseline", medians[OURS] / medians[BASELINE]),
        ("baseline + increment", 1 + medians[INCREMENT] / medians[BASELINE]),
    ]:
        verdict = "PASS" if ratio <= TARGET else "MISS"
        print(f"{name} ({clock}): {ratio:.2f}x, target {TARGET}x: {verdict}")


def report_stacks(samples: dict[str, list[Sample]]) -> None:
    """Print the optional stacks each case loaded, and those only ours loaded."""
    base = stacks_of(samples[BASELINE])
    print(f"\nstacks loaded by the baseline: {', '.join(sorted(base)) or 'none'}")
    for statement, rows in samples.items():
        if statement not in (BASELINE, INCREMENT):
            extra = stacks_of(rows) - base
            print(f"stacks only `{statement}` loads: {', '.join(sorted(extra)) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Time `import pulsora_revenue`.")
    parser.add_argument("--rounds", type=int, default=30, help="rounds of each case (30)")
    parser.add_argument(
        "--extras", action="store_true", help="also time the webhooks and testing imports"
    )
    parser.add_argument(
        "--as-is", action="store_true", help="keep the inherited bytecode settings (see above)"
    )
    args = parser.parse_args()
    statements = [BASELINE, OURS, INCREMENT, *(EXTRAS if args.extras else ())]
    cache = None if args.as_is else tempfile.mkdtemp(prefix="bench_import_")
    try:
        env = child_env(cache)
        print(f"bytecode: {'as inherited' if cache is None else 'cached under ' + cache}")
        samples = measure(statements, args.rounds, env)  # first: it warms the caches
        startup = [startup_seconds(env) for _ in range(max(5, args.rounds // 3))]
        report(samples, startup)
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The subscription ledger: its pure decision, and the two stores that keep its states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsora_revenue.webhooks import Ledger, MemoryLedger, Observation, Payment, SQLiteLedger
from pulsora_revenue.webhooks._ledger import State, advance

from ..conftest import examples

pytestmark = pytest.mark.anyio

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

observations = st.builds(
    Observation,
    subscription=st.just("stripe:sub_1"),
    event_id=st.integers(0, 30).map(lambda n: f"evt_{n}"),
    as_of=st.integers(0, 1000).map(lambda s: EPOCH + timedelta(seconds=s)),
    mrr=st.none() | st.integers(0, 10_000).map(lambda c: Decimal(c).scaleb(-2)),
    settle=st.booleans(),
    ended=st.booleans(),
    churn=st.booleans(),
    billing=st.none() | st.booleans(),
)


@given(st.lists(observations, max_size=30))
def test_the_changes_add_up_to_what_was_reported(seen: list[Observation]) -> None:
    state, total = State(), Decimal(0)
    for each in seen:
        before = state
        state, movement = advance(state, each)
        total += movement.change
        assert total == state.reported >= 0
        assert movement.change == 0 or each.settle  # only a settling event carries MRR
        if each.settle and not each.churn:
            assert state.reported == state.due  # cash carries any change
        if each.churn:
            assert movement.change <= 0  # a churn carries only a loss
        if before.ended:
            assert (state.due, state.ended) == (Decimal(0), True)  # the end is for good
            continue
        if before.mrr_as_of is not None and each.as_of < before.mrr_as_of:
            assert (state.mrr, state.mrr_as_of) == (before.mrr, before.mrr_as_of)  # stale
        if before.billing_as_of is not None and each.as_of < before.billing_as_of:
            assert (state.billing, state.billing_as_of) == (before.billing, before.billing_as_of)
        if each.mrr is None:
            assert state.mrr_as_of == before.mrr_as_of or each.ended  # said nothing of it
    if state.ended and seen and seen[-1].settle and not seen[-1].churn:
        assert total == 0


async def apply(ledger: Ledger, seen: list[Observation]) -> list[tuple[Decimal, Decimal]]:
    return [((m := await ledger.observe(each)).before, m.after) for each in seen]


@settings(max_examples=examples(40), deadline=None)
@given(seen=st.lists(observations, max_size=15))
async def test_both_ledgers_answer_alike_and_a_repeat_gets_the_first_answer(
    tmp_path_factory: pytest.TempPathFactory, seen: list[Observation]
) -> None:
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    memory = MemoryLedger()
    async with SQLiteLedger(path) as sqlite:
        from_memory, from_sqlite = await apply(memory, seen), await apply(sqlite, seen)
        assert from_memory == from_sqlite
        first: dict[str, tuple[Decimal, Decimal]] = {}
        for each, answer in zip(seen, from_memory, strict=True):
            assert first.setdefault(each.event_id, answer) == answer


async def test_payments_keep_their_first_report(tmp_path: Path) -> None:
    async with SQLiteLedger(tmp_path / "ledger.sqlite") as sqlite:
        for ledger in (MemoryLedger(), sqlite):
            assert await ledger.payment("pi_1", None) is None
            assert await ledger.payment("pi_1", Payment(1100, 1000)) == Payment(1100, 1000)
            assert await ledger.payment("pi_1", Payment(1100, 1100)) == Payment(1100, 1000)
            assert await ledger.payment("pi_1", None) == Payment(1100, 1000)


async def deliver(ledger: Ledger, seen: Observation, changes: list[Decimal]) -> None:
    changes.append((await ledger.observe(seen)).change)


async def test_two_deliveries_racing_on_one_file_report_the_change_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    start = Observation("stripe:sub_1", "evt_0", EPOCH, Decimal("20.00"), settle=True)
    racers = [
        Observation("stripe:sub_1", f"evt_{n}", EPOCH + timedelta(1), Decimal("50.00"), True)
        for n in (1, 2)
    ]
    for _ in range(20):
        path.unlink(missing_ok=True)
        ledgers = [SQLiteLedger(path), SQLiteLedger(path)]  # two workers, two connections
        await ledgers[0].observe(start)
        changes: list[Decimal] = []
        async with anyio.create_task_group() as group:
            for ledger, seen in zip(ledgers, racers, strict=True):
                group.start_soon(deliver, ledger, seen, changes)
        for ledger in ledgers:
            await ledger.aclose()
        assert sorted(changes) == [Decimal(0), Decimal("30.00")]


def test_the_memory_ledger_repr_says_little() -> None:
    assert repr(MemoryLedger()) == "<MemoryLedger subscriptions=0>"


def test_one_sqlite_ledger_serves_event_loops_in_threads_at_once(tmp_path: Path) -> None:
    """A module-level ledger, and a thread per request each with its own loop (asyncio.run)."""
    import asyncio
    import threading

    ledger = SQLiteLedger(tmp_path / "ledger.sqlite")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    answers: list[Decimal] = []

    async def observe(n: int) -> None:
        for step in range(20):
            seen = Observation(f"s:sub_{n}", f"evt_{step}", start, Decimal(step), settle=True)
            answers.append((await ledger.observe(seen)).change)

    threads = [threading.Thread(target=asyncio.run, args=(observe(n),)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    asyncio.run(ledger.aclose())
    assert not any(thread.is_alive() for thread in threads), "a loop waits for ever"
    assert len(answers) == 60
    assert sum(answers) == 3 * 19

"""What every platform's lives of a subscription share: Pulsora, the ledger's contract, delivery.

Each ``test_<platform>_lives.py`` builds a ``LedgerLife``: a hypothesis state
machine that lives one subscription and tells it in the platform's webhooks.
This base delivers them (shuffled, some held back to arrive late, redelivered),
models Pulsora by its de-duplication on ``(transaction_id, event_type)``, and
checks the ledger's contract: the newest word on the MRR wins, the end stays, a
settling event reports it. A machine says how its platform is mapped
(``mapped``), which of its notes are snapshots of the subscription, and what
it knows of the truth (``true_mrr``, the cash and refunds).
"""

from __future__ import annotations

import copy
import itertools
import random
import shutil
import tempfile
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import attrs
from anyio.from_thread import start_blocking_portal
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pulsora_revenue import EventType, RevenueEvent
from pulsora_revenue.webhooks import Ledger, MemoryLedger, SQLiteLedger

EXPONENTS = {"USD": 2, "JPY": 0, "KWD": 3}


@attrs.frozen(kw_only=True)
class Note:
    """A webhook, and what it tells the ledger: the MRR it states, if any."""

    envelope: dict[str, Any] = attrs.field(kw_only=False)
    as_of: datetime = attrs.field(kw_only=False)
    states: Decimal | None = attrs.field(
        default=None, kw_only=False
    )  # the MRR it states (0 while it bills nothing)
    settle: bool = False  # it may carry the change: a payment, or a churn
    ended: bool = False
    churn: bool = False  # it settles as a churn: only as the newest state, so only a fall
    ledger: bool = True  # about the subscription's state (refunds are not)
    whole: bool = False  # a payment of whole periods: the MRR settled is the truth then


class LedgerLife(RuleBasedStateMachine):
    """One subscription's life, delivered as webhooks; Pulsora's sums against the truth."""

    backend: ClassVar[str] = "asyncio"
    sqlite: ClassVar[bool] = False
    start: ClassVar[datetime] = datetime(2024, 1, 1, tzinfo=UTC)
    #: Event types whose amount is not checked against ``expected`` as it arrives.
    unchecked: ClassVar[frozenset[EventType]] = frozenset({EventType.CHURN})

    def __init__(self) -> None:
        super().__init__()
        self._portal = start_blocking_portal(self.backend)
        self.portal = self._portal.__enter__()
        self.folder = tempfile.mkdtemp()
        self.store: Ledger = (
            SQLiteLedger(Path(self.folder) / "ledger.sqlite") if self.sqlite else MemoryLedger()
        )
        self.ids, self.clock = itertools.count(1), self.start
        self.code = "USD"
        self.delivered: list[Note] = []
        self.held: list[Note] = []
        self.answers: dict[Hashable, list[RevenueEvent]] = {}
        self.expected: dict[str, Decimal] = {}  # the amount of each transaction's event
        self.accepted: set[tuple[str, str | None]] = set()
        self.mrr = self.cash = self.refunds = Decimal(0)  # as Pulsora sums them
        self.paid = self.refunded = Decimal(0)  # the truth
        self.stated, self.reported = Decimal(0), Decimal(0)  # the newest state seen; reported
        self.latest: datetime | None = None
        self.ended = False

    def teardown(self) -> None:
        if isinstance(self.store, SQLiteLedger):
            self.portal.call(self.store.aclose)
        self._portal.__exit__(None, None, None)
        shutil.rmtree(self.folder)

    # What each platform's machine says.

    async def mapped(self, envelope: dict[str, Any]) -> list[RevenueEvent]:
        """The platform's ``to_revenue_events`` of *envelope*, with ``self.store``."""
        raise NotImplementedError

    def is_snapshot(self, note: Note) -> bool:
        """Whether *note* is a snapshot of the subscription (one may be held back)."""
        raise NotImplementedError

    def true_mrr(self) -> Decimal:
        raise NotImplementedError

    def answer_key(self, note: Note) -> Hashable:
        """What a redelivery of *note* is known by."""
        return id(note)

    def settles_the_truth(self, note: Note, applied: bool) -> bool:
        """Whether the MRR reported after *note* is the subscription's MRR then."""
        return applied and note.states is not None

    def over(self) -> bool:
        """Whether the subscription has ended, so that its MRR is 0."""
        return self.ended

    def refunded_truth(self) -> Decimal:
        return self.refunded

    # The truth.

    def major(self, minor: Fraction | int) -> Decimal:
        return Decimal(round(Fraction(minor))).scaleb(-EXPONENTS[self.code])

    def tick(self, hours: int = 1) -> datetime:
        self.clock += timedelta(hours=hours)
        return self.clock

    # Delivery, and Pulsora.

    def send(self, notes: list[Note], shuffle: random.Random, hold: bool = False) -> None:
        shuffle.shuffle(notes)
        snapshots = [n for n in notes if self.is_snapshot(n)]
        if hold and snapshots and len(notes) > 1:  # to deliver late, after newer states
            notes.remove(snapshots[0])
            self.held.append(snapshots[0])
        for note in notes:
            self.deliver(note)

    def deliver(self, note: Note, again: bool = False) -> None:
        events = self.portal.call(self.mapped, copy.deepcopy(note.envelope))
        key = self.answer_key(note)
        if again:
            assert events == self.answers[key]
            assert all(e.dedup_key in self.accepted for e in events)
            return
        self.answers[key] = events
        self.delivered.append(note)
        if note.ledger:
            self.observe(note)
        for event in events:
            self.accept(event)

    def observe(self, note: Note) -> None:
        """The ledger's contract: the newest word on the MRR wins, the end stays, a settle
        reports it.

        A note that says nothing of the MRR (a proration, a one-off charge) leaves an
        older word standing. A churn settles only a fall that its own word made (a
        pause arriving after the resume is no word): its amount is 0, it cannot carry
        a rise.
        """
        applied = False
        if not self.ended:
            if note.states is not None and (self.latest is None or note.as_of >= self.latest):
                self.latest, self.stated, applied = note.as_of, note.states, True
            if note.ended:
                self.ended, self.stated, applied = True, Decimal(0), True
        if not note.settle or (note.churn and not (applied and self.stated < self.reported)):
            return
        self.reported = self.stated
        if self.settles_the_truth(note, applied):
            assert self.reported == self.true_mrr()

    def accept(self, event: RevenueEvent) -> None:
        if event.dedup_key in self.accepted:
            return
        self.accepted.add(event.dedup_key)
        self.mrr += event.mrr_impact or 0
        if event.event_type is EventType.REFUND:
            self.refunds -= event.amount
        else:
            self.cash += event.amount
        if event.event_type not in self.unchecked:
            assert event.amount == self.expected[event.transaction_id]  # net, without tax

    # Delivery's own rules, and the contract.

    @precondition(lambda self: self.delivered)
    @rule(pick=st.integers(0, 10_000))
    def redeliver(self, pick: int) -> None:
        self.deliver(self.delivered[pick % len(self.delivered)], again=True)

    @precondition(lambda self: self.held)
    @rule()
    def deliver_late(self) -> None:
        self.deliver(self.held.pop(0))

    @invariant()
    def numbers_add_up(self) -> None:
        assert self.mrr == self.reported
        assert self.mrr >= 0
        assert not self.over() or self.mrr == 0
        assert (self.cash, self.refunds) == (self.paid, self.refunded_truth())

"""Random lives of one Chargebee subscription, told in Chargebee's event shapes: the numbers add up.

A smaller kin of ``test_paddle_lives.py``. A hypothesis state machine lives one
subscription (trial or paid, seats, prices, intervals, add-ons, one-off charges,
renewals, cancellation and reactivation, partial and full refunds), builds each event
Chargebee would send from the fixtures' shapes, delivers them shuffled, redelivers old
ones and holds subscription snapshots back to deliver them late, through
``to_revenue_events`` with a ledger. Pulsora is modelled by its de-duplication on
``(transaction_id, event_type)``. Every refund is described twice, by
``payment_refunded`` and by ``credit_note_created``.

Checked after every step (issue 16's properties): the running sum of ``mrr_impact`` is
the MRR of the newest state seen as of the last event that settles (after a payment of
whole periods, or a cancellation, the subscription's MRR then); never negative; 0 while
cancelled; each payment counted once, without tax; refunds exactly what was refunded.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import attrs
from anyio.from_thread import start_blocking_portal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pulsora_revenue import EventType, RevenueEvent
from pulsora_revenue.webhooks import Ledger, MemoryLedger, SQLiteLedger, chargebee

from ..conftest import examples

FIXTURES = Path(__file__).parent / "fixtures" / "chargebee"
PAYMENT = json.loads((FIXTURES / "payment_succeeded.first.json").read_text())
SNAPSHOT = json.loads((FIXTURES / "subscription_changed.json").read_text())
REFUNDED = json.loads((FIXTURES / "payment_refunded.json").read_text())
CREDIT_NOTE = json.loads((FIXTURES / "credit_note_created.json").read_text())
SUB = "sub_life"

MONTHS = {"day": Fraction(12, 365), "week": Fraction(12, 52), "month": Fraction(1)}
MONTHS["year"] = Fraction(12)
EXPONENTS = {"USD": 2, "JPY": 0, "KWD": 3}
CYCLES = [("day", 10), ("week", 1), ("month", 1), ("month", 3), ("year", 1)]
TAX_RATES = [Fraction(0), Fraction(8875, 100_000), Fraction(1, 5)]


@attrs.define
class Item:
    price_id: str
    item_type: str  # "plan" or "addon"
    unit: int  # minor units per billing period
    quantity: int


@attrs.frozen
class Note:
    """An event, and what it tells the ledger: the MRR it states, if any."""

    envelope: dict[str, Any]
    as_of: datetime
    states: Decimal | None = None
    settle: bool = False
    churn: bool = False
    ledger: bool = True  # about the subscription's state (refunds are not)
    whole: bool = False  # a payment of whole periods: the MRR settled is the truth then


@attrs.define
class Paid:
    net: int
    tax: int
    refunded_net: int = 0
    refunded_tax: int = 0


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class ChargebeeLife(RuleBasedStateMachine):
    backend: ClassVar[str] = "asyncio"
    sqlite: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._portal = start_blocking_portal(self.backend)
        self.portal = self._portal.__enter__()
        self.folder = tempfile.mkdtemp()
        self.store: Ledger = (
            SQLiteLedger(Path(self.folder) / "ledger.sqlite") if self.sqlite else MemoryLedger()
        )
        self.ids, self.clock = itertools.count(1), datetime(2024, 1, 1, tzinfo=UTC)
        self.items: list[Item] = []
        self.code, self.tax_rate, self.cycle = "USD", Fraction(0), ("month", 1)
        self.status, self.activated = "in_trial", False
        self.cancelled_at: int | None = None
        self.payments: dict[str, Paid] = {}
        self.delivered: list[Note] = []
        self.held: list[Note] = []
        self.answers: dict[str, list[RevenueEvent]] = {}
        self.expected: dict[str, Decimal] = {}
        self.accepted: set[tuple[str, str | None]] = set()
        self.mrr = self.cash = self.refunds = Decimal(0)  # as Pulsora sums them
        self.paid = self.refunded = Decimal(0)  # the truth
        self.stated, self.reported = Decimal(0), Decimal(0)
        self.latest: datetime | None = None

    def teardown(self) -> None:
        if isinstance(self.store, SQLiteLedger):
            self.portal.call(self.store.aclose)
        self._portal.__exit__(None, None, None)
        shutil.rmtree(self.folder)

    # The truth.

    def major(self, minor: Fraction | int) -> Decimal:
        return Decimal(round(Fraction(minor))).scaleb(-EXPONENTS[self.code])

    def per_period(self) -> int:
        return sum(item.unit * item.quantity for item in self.items)

    def true_mrr(self) -> Decimal:
        if self.status != "active":
            return Decimal(0)
        interval, count = self.cycle
        return self.major(Fraction(self.per_period()) / (MONTHS[interval] * count))

    def tick(self, hours: int = 1) -> datetime:
        self.clock += timedelta(hours=hours)
        return self.clock

    # Chargebee's events, from the fixtures' shapes.

    def envelope(self, kind: str, content: dict[str, Any], at: datetime) -> dict[str, Any]:
        return {
            **{k: v for k, v in PAYMENT.items() if k != "content"},
            "id": f"ev_{next(self.ids):08d}",
            "event_type": kind,
            "occurred_at": int(at.timestamp()),
            "content": content,
        }

    def subscription(self, at: datetime) -> dict[str, Any]:
        entity: dict[str, Any] = copy.deepcopy(SNAPSHOT["content"]["subscription"])
        template = entity["subscription_items"][0]
        interval, count = self.cycle
        entity.update(
            id=SUB,
            status=self.status,
            currency_code=self.code,
            billing_period=count,
            billing_period_unit=interval,
            resource_version=millis(at),
            updated_at=int(at.timestamp()),
            mrr=0,  # never trusted: Chargebee computes it later
        )
        entity.pop("activated_at", None)
        if self.activated:
            entity["activated_at"] = int(at.timestamp())
        if self.cancelled_at is not None:
            entity["cancelled_at"] = self.cancelled_at
        entity["subscription_items"] = [
            template
            | {
                "item_price_id": item.price_id,
                "item_type": item.item_type,
                "quantity": item.quantity,
                "unit_price": item.unit,
                "amount": item.unit * item.quantity,
            }
            for item in self.items
        ]
        return entity

    def snapshot(self, kind: str, at: datetime) -> Note:
        content = {"subscription": self.subscription(at)}
        content["customer"] = copy.deepcopy(SNAPSHOT["content"]["customer"])
        stops = self.status == "cancelled"
        return Note(self.envelope(kind, content, at), at, self.true_mrr(), stops, stops)

    def payment(self, at: datetime, net: int, *, first: bool, recurring: bool) -> Note:
        """A payment_succeeded of *net* (plus tax) with the subscription as it is now."""
        tax = round(net * self.tax_rate)
        content = copy.deepcopy(PAYMENT["content"])
        txn_id = f"txn_{next(self.ids):08d}"
        content["transaction"].update(
            id=txn_id, amount=net + tax, currency_code=self.code, subscription_id=SUB
        )
        content["invoice"].update(
            id=f"inv_{txn_id}",
            subscription_id=SUB,
            total=net + tax,
            tax=tax,
            sub_total=net,
            first_invoice=first,
            recurring=recurring,
            currency_code=self.code,
        )
        content["subscription"] = self.subscription(at)
        self.payments[txn_id] = Paid(net, tax)
        self.expected[txn_id] = self.major(net)
        self.paid += self.major(net)
        envelope = self.envelope("payment_succeeded", content, at)
        whole = recurring or first
        return Note(envelope, at, self.true_mrr(), settle=net + tax > 0, whole=whole)

    # Delivery, and Pulsora.

    def send(self, notes: list[Note], shuffle: random.Random, hold: bool = False) -> None:
        shuffle.shuffle(notes)
        snapshots = [n for n in notes if n.envelope["event_type"].startswith("subscription_")]
        if hold and snapshots and len(notes) > 1:
            notes.remove(snapshots[0])
            self.held.append(snapshots[0])
        for note in notes:
            self.deliver(note)

    def deliver(self, note: Note, again: bool = False) -> None:
        async def resolver(customer_id: str) -> tuple[str, str]:
            return "fp_db", "sess_db"

        mapping = partial(chargebee.to_revenue_events, resolver=resolver, ledger=self.store)
        events = self.portal.call(mapping, note.envelope)
        event_id = note.envelope["id"]
        if again:
            assert events == self.answers[event_id]
            assert all(e.dedup_key in self.accepted for e in events)
            return
        self.answers[event_id] = events
        self.delivered.append(note)
        if note.ledger:
            self.observe(note)
        for event in events:
            self.accept(event)

    def observe(self, note: Note) -> None:
        """The ledger's contract: the newest word on the MRR wins; a settle reports it."""
        applied = False
        if note.states is not None and (self.latest is None or note.as_of >= self.latest):
            self.latest, self.stated, applied = note.as_of, note.states, True
        if not note.settle or (note.churn and not (applied and self.stated < self.reported)):
            return
        self.reported = self.stated
        if applied and (note.whole or note.churn):
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
        if event.event_type is not EventType.CHURN:
            assert event.amount == self.expected[event.transaction_id]  # net, without tax

    # The life.

    @initialize(
        trial=st.booleans(),
        code=st.sampled_from(sorted(EXPONENTS)),
        tax_rate=st.sampled_from(TAX_RATES),
        seats=st.integers(1, 50),
        unit=st.integers(1, 100_000),
        cycle=st.sampled_from(CYCLES),
        shuffle=st.randoms(use_true_random=False),
    )
    def create(
        self,
        trial: bool,
        code: str,
        tax_rate: Fraction,
        seats: int,
        unit: int,
        cycle: tuple[str, int],
        shuffle: random.Random,
    ) -> None:
        self.code, self.tax_rate, self.cycle = code, tax_rate, cycle
        self.items = [Item("plan_0", "plan", unit, seats)]
        at = self.tick()
        if trial:
            self.deliver(self.snapshot("subscription_created", at))
            return
        self.status, self.activated = "active", True
        notes = [
            self.snapshot("subscription_created", at),
            self.payment(at + timedelta(seconds=1), self.per_period(), first=True, recurring=True),
        ]
        self.send(notes, shuffle)

    @precondition(lambda self: self.status == "in_trial")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def activate(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 14)
        self.status, self.activated = "active", True
        notes = [
            self.snapshot("subscription_changed", at),
            self.payment(at + timedelta(seconds=1), self.per_period(), first=True, recurring=True),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active")
    @rule()
    def renew(self) -> None:
        at = self.tick(24 * 30)
        self.deliver(self.payment(at, self.per_period(), first=False, recurring=True))

    @precondition(lambda self: self.status in ("active", "in_trial"))
    @rule(
        change=st.sampled_from(["seats", "price", "interval", "add", "remove"]),
        value=st.integers(1, 60_000),
        cycle=st.sampled_from(CYCLES),
        proration=st.none() | st.integers(1, 50_000),
        shuffle=st.randoms(use_true_random=False),
        hold=st.booleans(),
    )
    def change(
        self,
        change: str,
        value: int,
        cycle: tuple[str, int],
        proration: int | None,
        shuffle: random.Random,
        hold: bool,
    ) -> None:
        n = next(self.ids)
        if change == "seats":
            self.items[0].quantity = 1 + value % 50
        elif change == "price":
            self.items[0] = Item(f"plan_{n}", "plan", value, self.items[0].quantity)
        elif change == "interval":
            self.cycle = cycle
        elif change == "add":
            self.items.append(Item(f"addon_{n}", "addon", value, 1 + value % 3))
        elif change == "remove" and len(self.items) > 1:
            self.items.pop()
        at = self.tick()
        notes = [self.snapshot("subscription_changed", at)]
        if self.status == "active" and proration is not None:
            later = at + timedelta(seconds=1)
            notes.append(self.payment(later, proration, first=False, recurring=False))
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active")
    @rule(amount=st.integers(1, 30_000))
    def charge(self, amount: int) -> None:
        self.deliver(self.payment(self.tick(), amount, first=False, recurring=False))

    @precondition(lambda self: self.status != "cancelled")
    @rule()
    def cancel(self) -> None:
        at = self.tick(24 * 9)
        self.status, self.cancelled_at = "cancelled", int(at.timestamp())
        self.deliver(self.snapshot("subscription_cancelled", at))

    @precondition(lambda self: self.status == "cancelled")
    @rule(bill=st.booleans(), shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def reactivate(self, bill: bool, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 7)
        self.status, self.activated, self.cancelled_at = "active", True, None
        notes = [self.snapshot("subscription_reactivated", at)]
        if bill:
            later = at + timedelta(seconds=1)
            notes.append(self.payment(later, self.per_period(), first=False, recurring=True))
        self.send(notes, shuffle, hold)

    @precondition(lambda self: any(p.net > p.refunded_net for p in self.payments.values()))
    @rule(
        pick=st.integers(0, 99),
        share=st.sampled_from([1, 2, 3]),
        shuffle=st.randoms(use_true_random=False),
    )
    def refund(self, pick: int, share: int, shuffle: random.Random) -> None:
        open_ = [(t, p) for t, p in self.payments.items() if p.net > p.refunded_net]
        txn_id, payment = open_[pick % len(open_)]
        net = max((payment.net - payment.refunded_net) // share, 1)
        full = net == payment.net - payment.refunded_net
        tax = payment.tax - payment.refunded_tax if full else payment.tax * net // payment.net
        payment.refunded_net += net
        payment.refunded_tax += tax
        refund_id = f"txn_{next(self.ids):08d}"
        self.expected[refund_id] = -self.major(net)
        self.refunded += self.major(net)
        at = self.tick()
        credit_note = copy.deepcopy(CREDIT_NOTE["content"]["credit_note"])
        credit_note.update(
            id=f"CN-{refund_id}",
            subscription_id=SUB,
            currency_code=self.code,
            total=net + tax,
            sub_total=net,
            amount_refunded=net + tax,
            taxes=[{"name": "Tax", "amount": tax}] if tax else [],
        )
        credit_note["linked_refunds"][0].update(
            txn_id=refund_id, applied_amount=net + tax, txn_amount=net + tax
        )
        content = copy.deepcopy(REFUNDED["content"])
        content["transaction"].update(
            id=refund_id,
            amount=net + tax,
            currency_code=self.code,
            subscription_id=SUB,
            reference_transaction_id=txn_id,
        )
        content["credit_note"] = credit_note
        del content["invoice"], content["subscription"]
        notes = [
            Note(self.envelope("payment_refunded", content, at), at, ledger=False),
            Note(
                self.envelope("credit_note_created", {"credit_note": credit_note}, at),
                at,
                ledger=False,
            ),
        ]
        self.send(notes, shuffle)

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
        assert self.status != "cancelled" or self.mrr == 0
        assert (self.cash, self.refunds) == (self.paid, self.refunded)


LIFE = settings(max_examples=examples(40), stateful_step_count=20, deadline=None)


@LIFE
class AsyncioMemory(ChargebeeLife):
    pass


@LIFE
class TrioSQLite(ChargebeeLife):
    backend, sqlite = "trio", True


@LIFE
class AsyncioSQLite(ChargebeeLife):
    sqlite = True


TestAsyncioMemory = AsyncioMemory.TestCase
TestTrioSQLite = TrioSQLite.TestCase
TestAsyncioSQLite = AsyncioSQLite.TestCase

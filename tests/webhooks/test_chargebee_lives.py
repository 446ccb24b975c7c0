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
import json
import random
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from pulsora_revenue import RevenueEvent
from pulsora_revenue.webhooks import chargebee

from ..conftest import examples
from .lives import EXPONENTS, LedgerLife, Note

FIXTURES = Path(__file__).parent / "fixtures" / "chargebee"
PAYMENT = json.loads((FIXTURES / "payment_succeeded.first.json").read_text())
SNAPSHOT = json.loads((FIXTURES / "subscription_changed.json").read_text())
REFUNDED = json.loads((FIXTURES / "payment_refunded.json").read_text())
CREDIT_NOTE = json.loads((FIXTURES / "credit_note_created.json").read_text())
SUB = "sub_life"

MONTHS = {"day": Fraction(12, 365), "week": Fraction(12, 52), "month": Fraction(1)}
MONTHS["year"] = Fraction(12)
CYCLES = [("day", 10), ("week", 1), ("month", 1), ("month", 3), ("year", 1)]
TAX_RATES = [Fraction(0), Fraction(8875, 100_000), Fraction(1, 5)]


@attrs.define
class Item:
    price_id: str
    item_type: str  # "plan" or "addon"
    unit: int  # minor units per billing period
    quantity: int


@attrs.define
class Paid:
    net: int
    tax: int
    refunded_net: int = 0
    refunded_tax: int = 0


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class ChargebeeLife(LedgerLife):
    def __init__(self) -> None:
        super().__init__()
        self.items: list[Item] = []
        self.code, self.tax_rate, self.cycle = "USD", Fraction(0), ("month", 1)
        self.status, self.activated = "in_trial", False
        self.cancelled_at: int | None = None
        self.payments: dict[str, Paid] = {}

    async def mapped(self, envelope: dict[str, Any]) -> list[RevenueEvent]:
        async def resolver(customer_id: str) -> tuple[str, str]:
            return "fp_db", "sess_db"

        return await chargebee.to_revenue_events(envelope, resolver=resolver, ledger=self.store)

    def is_snapshot(self, note: Note) -> bool:
        return bool(note.envelope["event_type"].startswith("subscription_"))

    def answer_key(self, note: Note) -> str:
        return str(note.envelope["id"])

    def settles_the_truth(self, note: Note, applied: bool) -> bool:
        return applied and (note.whole or note.churn)

    def over(self) -> bool:
        return self.status == "cancelled"

    # The truth.

    def per_period(self) -> int:
        return sum(item.unit * item.quantity for item in self.items)

    def true_mrr(self) -> Decimal:
        if self.status != "active":
            return Decimal(0)
        interval, count = self.cycle
        return self.major(Fraction(self.per_period()) / (MONTHS[interval] * count))

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
        return Note(
            self.envelope(kind, content, at), at, self.true_mrr(), settle=stops, churn=stops
        )

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

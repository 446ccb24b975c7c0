"""Random lives of one Polar subscription, told in Polar's webhook shapes: the numbers add up.

A hypothesis state machine lives one subscription (trial or paid, renewals, plan
changes with or without a proration, pauses and resumes, cancellation at period
end and its undoing, revocation, refunds of any order in parts), builds each event Polar would send
from Polar's own server-test payloads, delivers them shuffled, redelivers old
ones and holds subscription snapshots back to deliver them late, through
``to_revenue_events`` with a ledger. Pulsora is modelled by its de-duplication on
``(transaction_id, event_type)``.

Properties (issue 16): the running sum of ``mrr_impact`` is the MRR of the newest
state the ledger has seen as of the last event that settles (which after a paid
order stating the subscription, or its end, is the true MRR), never negative, 0
once ended; each payment counted once, without tax; refunds exactly what was
refunded, without tax.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from pulsora_revenue import RevenueEvent
from pulsora_revenue.webhooks import polar

from ..conftest import examples
from .lives import EXPONENTS, LedgerLife, Note

FIXTURES = Path(__file__).parent / "fixtures" / "polar"
SUBSCRIPTION: dict[str, Any] = json.loads(
    (FIXTURES / "server_subscription.revoked.json").read_text()
)
ORDER: dict[str, Any] = json.loads(
    (FIXTURES / "server_order.paid.subscription_cycle.json").read_text()
)
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}
SUB = "00000000-0000-0000-0000-00000000life"

MONTHS = {"day": Fraction(12, 365), "week": Fraction(12, 52), "month": Fraction(1)}
MONTHS["year"] = Fraction(12)
CYCLES = [("day", 1), ("week", 2), ("month", 1), ("month", 3), ("year", 1)]
TAX_RATES = [Fraction(0), Fraction(1, 5)]


@attrs.define
class Order:
    net: int
    tax: int
    entity: dict[str, Any]
    refunded_net: int = 0
    refunded_tax: int = 0


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PolarLife(LedgerLife):
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def __init__(self) -> None:
        super().__init__()
        self.code, self.tax_rate, self.amount = "USD", Fraction(0), 1000
        self.cycle, self.status, self.at_period_end = ("month", 1), "trialing", False
        self.paused_at: datetime | None = None
        self.orders: dict[str, Order] = {}
        self.refund_seen: dict[str, int] = {}  # the newest running total delivered, per order

    async def mapped(self, envelope: dict[str, Any]) -> list[RevenueEvent]:
        async def resolver(customer_id: str) -> tuple[str, str]:
            raise AssertionError("the metadata carries the attribution")

        return await polar.to_revenue_events(envelope, resolver=resolver, ledger=self.store)

    def is_snapshot(self, note: Note) -> bool:
        return bool(note.envelope["type"].startswith("subscription."))

    # The truth.

    def true_mrr(self) -> Decimal:
        if self.status != "active":
            return Decimal(0)
        interval, count = self.cycle
        return self.major(Fraction(self.amount) / (MONTHS[interval] * count))

    # Polar's events, from the shapes of Polar's own server tests.

    def entity(self) -> dict[str, Any]:
        entity = copy.deepcopy(SUBSCRIPTION)
        interval, count = self.cycle
        entity.update(
            id=SUB,
            status=self.status,
            amount=self.amount,
            currency=self.code.lower(),
            recurring_interval=interval,
            recurring_interval_count=count,
            cancel_at_period_end=self.at_period_end,
            canceled_at=stamp(self.clock) if self.at_period_end else None,
            ended_at=stamp(self.clock) if self.status == "canceled" else None,
            paused_at=self.paused_at and stamp(self.paused_at),
            metadata=dict(ATTRIBUTION),
        )
        return entity

    def envelope(self, kind: str, data: dict[str, Any], as_of: datetime) -> dict[str, Any]:
        return {"type": kind, "timestamp": stamp(as_of), "data": data}

    def snapshot(self, kind: str, as_of: datetime) -> Note:
        ended = self.status == "canceled"
        stops = ended or self.status == "paused"  # a churn, of amount 0
        envelope = self.envelope(kind, self.entity(), as_of)
        return Note(envelope, as_of, self.true_mrr(), settle=stops, ended=ended, churn=stops)

    def order(self, reason: str, as_of: datetime, net: int) -> Note:
        tax = round(net * self.tax_rate)
        order_id = f"00000000-0000-0000-0000-{next(self.ids):012d}"
        entity = copy.deepcopy(ORDER)
        entity.update(
            id=order_id,
            billing_reason=reason,
            currency=self.code.lower(),
            subtotal_amount=net,
            net_amount=net,
            tax_amount=tax,
            total_amount=net + tax,
            subscription_id=SUB,
            subscription=self.entity(),
            metadata=dict(ATTRIBUTION),
        )
        if net > 0:
            self.orders[order_id] = Order(net, tax, entity)
            self.expected[order_id] = self.major(net)
            self.paid += self.major(net)
        envelope = self.envelope("order.paid", entity, as_of)
        return Note(envelope, as_of, self.true_mrr(), settle=net > 0)

    # The life.

    @initialize(
        trial=st.booleans(),
        code=st.sampled_from(sorted(EXPONENTS)),
        tax_rate=st.sampled_from(TAX_RATES),
        amount=st.integers(1, 100_000),
        cycle=st.sampled_from(CYCLES),
        shuffle=st.randoms(use_true_random=False),
    )
    def create(
        self,
        trial: bool,
        code: str,
        tax_rate: Fraction,
        amount: int,
        cycle: tuple[str, int],
        shuffle: random.Random,
    ) -> None:
        self.code, self.tax_rate, self.amount, self.cycle = code, tax_rate, amount, cycle
        at = self.tick()
        self.status = "trialing" if trial else "active"
        notes = [
            self.snapshot("subscription.created", at),
            self.order("subscription_create", at + timedelta(seconds=1), 0 if trial else amount),
        ]
        if not trial:
            notes.append(self.snapshot("subscription.active", at + timedelta(seconds=2)))
        self.send(notes, shuffle)

    @precondition(lambda self: self.status == "trialing")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def convert(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 14)
        self.status = "active"
        notes = [
            self.snapshot("subscription.active", at),
            self.snapshot("subscription.updated", at),
            self.order("subscription_cycle", at + timedelta(seconds=1), self.amount),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def renew(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 30)
        notes = [
            self.snapshot("subscription.updated", at),
            self.order("subscription_cycle", at + timedelta(seconds=1), self.amount),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status in ("active", "trialing", "paused"))
    @rule(
        amount=st.integers(1, 100_000),
        cycle=st.none() | st.sampled_from(CYCLES),
        proration=st.none() | st.integers(0, 50_000),
        shuffle=st.randoms(use_true_random=False),
        hold=st.booleans(),
    )
    def change_plan(
        self,
        amount: int,
        cycle: tuple[str, int] | None,
        proration: int | None,
        shuffle: random.Random,
        hold: bool,
    ) -> None:
        self.amount, self.cycle = amount, cycle or self.cycle
        at = self.tick()
        notes = [self.snapshot("subscription.updated", at)]
        if self.status == "active" and proration is not None:
            notes.append(self.order("subscription_update", at + timedelta(seconds=1), proration))
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active" and not self.at_period_end)
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def cancel_at_period_end(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24)
        self.at_period_end = True
        notes = [
            self.snapshot("subscription.canceled", at),
            self.snapshot("subscription.updated", at),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active" and self.at_period_end)
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def uncancel(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24)
        self.at_period_end = False
        notes = [
            self.snapshot("subscription.uncanceled", at),
            self.snapshot("subscription.updated", at),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def pause(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24)
        self.status, self.paused_at = "paused", at
        notes = [
            self.snapshot("subscription.paused", at),
            self.snapshot("subscription.updated", at),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "paused")
    @rule(bill=st.booleans(), shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def resume(self, bill: bool, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 7)
        self.status, self.paused_at = "active", None
        notes = [
            self.snapshot("subscription.resumed", at),
            self.snapshot("subscription.updated", at),
        ]
        if bill:
            notes.append(self.order("subscription_cycle", at + timedelta(seconds=1), self.amount))
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status != "canceled")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def revoke(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 9)
        immediate = not self.at_period_end
        self.status, self.at_period_end = "canceled", False
        notes = [
            self.snapshot("subscription.revoked", at),
            self.snapshot("subscription.updated", at),
        ]
        if immediate:
            notes.append(self.snapshot("subscription.canceled", at))
        self.send(notes, shuffle, hold)

    @precondition(lambda self: any(o.net > o.refunded_net for o in self.orders.values()))
    @rule(
        pick=st.integers(0, 99),
        shares=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3),
        shuffle=st.randoms(use_true_random=False),
    )
    def refund(self, pick: int, shares: list[int], shuffle: random.Random) -> None:
        """One or more refunds of an order, their events delivered in any order."""
        open_ = [(i, o) for i, o in self.orders.items() if o.net > o.refunded_net]
        order_id, order = open_[pick % len(open_)]
        notes = []
        for share in shares:
            left = order.net - order.refunded_net
            if left <= 0:
                break
            net = max(left // share, 1)
            tax = order.tax - order.refunded_tax if net == left else order.tax * net // order.net
            order.refunded_net, order.refunded_tax = (
                order.refunded_net + net,
                order.refunded_tax + tax,
            )
            self.refunded += self.major(net)
            entity = order.entity | {
                "refunded_amount": order.refunded_net,
                "refunded_tax_amount": order.refunded_tax,
                "status": "refunded" if net == left else "partially_refunded",
            }
            at = self.tick()
            notes.append(Note(self.envelope("order.refunded", entity, at), at, ledger=False))
        shuffle.shuffle(notes)
        for note in notes:
            total = note.envelope["data"]["refunded_amount"]
            before = self.refund_seen.get(order_id, 0)
            if total > before:
                self.refund_seen[order_id] = total
                key = f"{order_id}:refunded:{total}"
                self.expected[key] = -(self.major(total) - self.major(before))
            self.deliver(note)


LIFE = settings(max_examples=examples(100), stateful_step_count=20, deadline=None)


@LIFE
class AsyncioMemory(PolarLife):
    pass


@LIFE
class TrioSQLite(PolarLife):
    backend, sqlite = "trio", True


TestAsyncioMemory = AsyncioMemory.TestCase
TestTrioSQLite = TrioSQLite.TestCase

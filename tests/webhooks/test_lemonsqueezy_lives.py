"""Random lives of a Lemon Squeezy subscription, told in its webhooks' shapes: the numbers add up.

A hypothesis state machine lives one subscription (trial or paid, seats, prices,
intervals, renewals, plan changes with prorations, cancel, resume, pause, expiry,
partial refunds), builds each webhook Lemon Squeezy would send from the real
fixtures, delivers them shuffled, redelivers old ones and holds snapshots back to
deliver them late, through ``to_revenue_events`` with a ledger. Pulsora is
modelled by its de-duplication on ``(transaction_id, event_type)``.

The contract (issue 16's properties 1-3): the running sum of ``mrr_impact`` is the
MRR of the newest state the ledger has seen as of the last event that settles (a
payment, a pause or the end); never negative; 0 once expired; each payment counted
once, without tax (a subscription's order adds nothing: its initial invoice is the
payment); refunds exactly what was refunded, net of its share of tax.
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

from pulsora_revenue import EventType, RevenueEvent
from pulsora_revenue.webhooks import lemonsqueezy
from pulsora_revenue.webhooks.lemonsqueezy import Price

from ..conftest import examples
from .lives import EXPONENTS, LedgerLife, Note

FIXTURES = Path(__file__).parent / "fixtures" / "lemonsqueezy"
SUBSCRIPTION = json.loads((FIXTURES / "pay_subscription_updated.json").read_text())
INVOICE = json.loads((FIXTURES / "pay_subscription_payment_success.json").read_text())
ORDER = json.loads((FIXTURES / "pay_order_created.json").read_text())
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}

MONTHS = {"day": Fraction(12, 365), "week": Fraction(12, 52), "month": Fraction(1)}
MONTHS["year"] = Fraction(12)
CYCLES = [("day", 10), ("week", 1), ("month", 1), ("month", 3), ("year", 1)]
TAX_RATES = [Fraction(0), Fraction(1, 5)]
BILLING = ("active", "cancelled")


@attrs.define
class Paid:
    net: int
    tax: int
    refunded: int = 0  # gross, so far


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LemonSqueezyLife(LedgerLife):
    unchecked = frozenset({EventType.CHURN, EventType.REFUND})

    def __init__(self) -> None:
        super().__init__()
        self.prices: dict[int, Price] = {}
        self.price_id, self.seats = 0, 1
        self.code, self.tax_rate, self.status = "USD", Fraction(0), "on_trial"
        self.payments: dict[str, Paid] = {}

    async def mapped(self, envelope: dict[str, Any]) -> list[RevenueEvent]:
        async def resolver(customer_id: str) -> tuple[str, str]:
            raise AssertionError("the attribution is in custom_data")

        return await lemonsqueezy.to_revenue_events(
            envelope, resolver=resolver, ledger=self.store, prices=self.prices
        )

    def is_snapshot(self, note: Note) -> bool:
        return bool(note.envelope["data"]["type"] == "subscriptions")

    def answer_key(self, note: Note) -> str:
        return json.dumps(note.envelope, sort_keys=True)

    # The truth.

    def period(self) -> int:
        """What a whole period of the plan bills, in minor units, without tax."""
        return self.prices[self.price_id].unit_price * self.seats

    def true_mrr(self) -> Decimal:
        if self.status not in BILLING:
            return Decimal(0)
        price = self.prices[self.price_id]
        assert price.interval is not None
        months = MONTHS[price.interval] * price.interval_count
        return self.major(Fraction(self.period()) / months)

    def refunded_truth(self) -> Decimal:
        """Each payment's refunds so far, less their share of its tax."""
        total = Fraction(0)
        for paid in self.payments.values():
            gross = paid.net + paid.tax
            total += paid.refunded - round(Fraction(paid.tax * paid.refunded, gross))
        return self.major(total)

    # Lemon Squeezy's webhooks, from the real fixtures' shapes.

    def envelope(self, base: dict[str, Any], name: str, as_of: datetime) -> dict[str, Any]:
        envelope = copy.deepcopy(base)
        envelope["meta"].update(event_name=name, custom_data=dict(ATTRIBUTION))
        envelope["data"]["attributes"].update(updated_at=stamp(as_of), customer_id=7)
        return envelope

    def snapshot(self, name: str, as_of: datetime) -> Note:
        envelope = self.envelope(SUBSCRIPTION, name, as_of)
        item = envelope["data"]["attributes"]["first_subscription_item"]
        item.update(price_id=self.price_id, quantity=self.seats)
        envelope["data"]["attributes"].update(status=self.status, trial_ends_at=None)
        envelope["data"]["id"] = "42"
        stops = self.status in ("paused", "expired")
        states = self.true_mrr()
        ended = self.status == "expired"
        return Note(envelope, as_of, states, settle=stops, ended=ended, churn=stops)

    def invoice(self, reason: str, as_of: datetime, net: int) -> Note:
        envelope = self.envelope(INVOICE, "subscription_payment_success", as_of)
        tax = round(net * self.tax_rate)
        invoice_id = str(next(self.ids))
        envelope["data"]["id"] = invoice_id
        envelope["data"]["attributes"].update(
            subscription_id=42,
            billing_reason=reason,
            currency=self.code,
            subtotal=net,
            tax=tax,
            total=net + tax,
            created_at=stamp(as_of),
        )
        if net > 0:
            transaction_id = f"subscription-invoices:{invoice_id}"
            self.payments[transaction_id] = Paid(net, tax)
            self.expected[transaction_id] = self.major(net)
            self.paid += self.major(net)
        return Note(envelope, as_of, settle=net > 0)

    def order(self, as_of: datetime, net: int) -> Note:
        """A subscription's order: its payment is the initial invoice's, so it adds nothing."""
        envelope = self.envelope(ORDER, "order_created", as_of)
        envelope["data"]["id"] = str(next(self.ids))
        envelope["data"]["attributes"]["first_order_item"]["price_id"] = self.price_id
        envelope["data"]["attributes"].update(currency=self.code, total=net, tax=0)
        return Note(envelope, as_of, ledger=False)

    def new_price(self, unit: int, cycle: tuple[str, int]) -> None:
        self.price_id = next(self.ids)
        self.prices[self.price_id] = Price(unit, self.code, *cycle)

    # The life.

    @initialize(
        trial=st.booleans(),
        code=st.sampled_from(sorted(EXPONENTS)),
        tax_rate=st.sampled_from(TAX_RATES),
        seats=st.integers(1, 20),
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
        self.code, self.tax_rate, self.seats = code, tax_rate, seats
        self.new_price(unit, cycle)
        at = self.tick()
        if trial:
            notes = [self.snapshot("subscription_created", at), self.order(at, 0)]
        else:
            self.status = "active"
            notes = [
                self.snapshot("subscription_created", at),
                self.order(at, self.period()),
                self.invoice("initial", at + timedelta(seconds=1), self.period()),
            ]
        self.send(notes, shuffle)

    @precondition(lambda self: self.status == "on_trial")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def activate(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 14)
        self.status = "active"
        notes = [
            self.snapshot("subscription_updated", at),
            self.invoice("renewal", at + timedelta(seconds=1), self.period()),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def renew(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 30)
        notes = [
            self.snapshot("subscription_updated", at),
            self.invoice("renewal", at + timedelta(seconds=1), self.period()),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status in ("active", "on_trial"))
    @rule(
        change=st.sampled_from(["seats", "price", "interval"]),
        value=st.integers(1, 60_000),
        cycle=st.sampled_from(CYCLES),
        proration=st.none() | st.integers(0, 50_000),
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
        price = self.prices[self.price_id]
        if change == "seats":
            self.seats = 1 + value % 20
        elif change == "price":
            self.new_price(value, (price.interval or "month", price.interval_count))
        else:
            self.new_price(price.unit_price, cycle)
        at = self.tick()
        notes = [self.snapshot("subscription_updated", at)]
        if self.status == "active" and proration is not None:
            notes.append(self.invoice("updated", at + timedelta(seconds=1), proration))
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def cancel(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24)
        self.status = "cancelled"  # it bills until its period ends
        notes = [
            self.snapshot("subscription_cancelled", at),
            self.snapshot("subscription_updated", at),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "cancelled")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def resume(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24)
        self.status = "active"
        notes = [
            self.snapshot("subscription_resumed", at),
            self.snapshot("subscription_updated", at),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status in ("active", "paused"))
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def pause_or_unpause(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24)
        self.status = "active" if self.status == "paused" else "paused"
        name = "subscription_unpaused" if self.status == "active" else "subscription_paused"
        notes = [self.snapshot(name, at), self.snapshot("subscription_updated", at)]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status != "expired")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def expire(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 30)
        self.status = "expired"
        notes = [
            self.snapshot("subscription_expired", at),
            self.snapshot("subscription_updated", at),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: any(p.refunded < p.net + p.tax for p in self.payments.values()))
    @rule(pick=st.integers(0, 99), share=st.sampled_from([1, 2, 3]))
    def refund(self, pick: int, share: int) -> None:
        """Refund part or all of what is left of a payment: Lemon Squeezy sends the sum so far."""
        open_ = [(t, p) for t, p in self.payments.items() if p.refunded < p.net + p.tax]
        transaction_id, paid = open_[pick % len(open_)]
        left = paid.net + paid.tax - paid.refunded
        paid.refunded += max(left // share, 1)
        envelope = self.envelope(INVOICE, "subscription_payment_refunded", self.tick())
        envelope["data"]["id"] = transaction_id.split(":")[1]
        envelope["data"]["attributes"].update(
            subscription_id=42,
            currency=self.code,
            subtotal=paid.net,
            tax=paid.tax,
            total=paid.net + paid.tax,
            refunded=True,
            refunded_amount=paid.refunded,
            refunded_at=stamp(self.clock),
            status="refunded" if paid.refunded == paid.net + paid.tax else "partial_refund",
        )
        self.deliver(Note(envelope, self.clock, ledger=False))


LIFE = settings(max_examples=examples(40), stateful_step_count=25, deadline=None)


@LIFE
class AsyncioMemory(LemonSqueezyLife):
    pass


@LIFE
class TrioSQLite(LemonSqueezyLife):
    backend, sqlite = "trio", True


TestAsyncioMemory = AsyncioMemory.TestCase
TestTrioSQLite = TrioSQLite.TestCase

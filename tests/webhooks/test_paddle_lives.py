"""Random lives of Paddle subscriptions, told in Paddle's notification shapes: the numbers add up.

A hypothesis state machine lives one subscription (trial or paid, seats, prices,
intervals, add-ons, discounts, one-off charges, pauses, resumes, renewals,
refunds, the end), builds each notification Paddle would send from the real
fixtures, delivers them shuffled, redelivers old ones and holds snapshots back
to deliver them late, through ``to_revenue_events`` with a ledger. Pulsora is
modelled by its de-duplication on ``(transaction_id, event_type)``.

The model knows the truth (the MRR as billed, the cash without tax, the
refunds) and what each notification states. The contract it checks: the
running sum of ``mrr_impact`` is the MRR of the newest state the ledger has
seen as of the last event that settles (a payment or a churn), which after a
first payment, a renewal, a pause or the end is the subscription's MRR then;
never negative; 0 once ended; each payment counted once without tax; refunds
exactly what was refunded.
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
from pulsora_revenue.webhooks import paddle

from ..conftest import examples
from .lives import EXPONENTS, LedgerLife, Note

FIXTURES = Path(__file__).parent / "fixtures" / "paddle"
SUBSCRIPTION = json.loads((FIXTURES / "sdk_subscription.updated.json").read_text())
TRANSACTION = json.loads((FIXTURES / "transaction.completed.json").read_text())
ADJUSTMENT = json.loads((FIXTURES / "node_adjustment.updated.json").read_text())["data"]
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}
CUSTOMER, SUB = "ctm_life", "sub_life"

#: The truth's own normalisation: a year is 12 months, 52 weeks, 365 days.
MONTHS = {"day": Fraction(12, 365), "week": Fraction(12, 52), "month": Fraction(1)}
MONTHS["year"] = Fraction(12)
CYCLES = [("day", 1), ("day", 10), ("week", 1), ("week", 2), ("month", 1), ("month", 3)]
CYCLES += [("year", 1), ("year", 2)]
TAX_RATES = [Fraction(0), Fraction(8875, 100_000), Fraction(1, 5)]
ONE_TIME = "pri_one_time"


@attrs.define
class Item:
    price_id: str
    unit: int  # minor units per billing cycle
    quantity: int


@attrs.define
class Payment:
    net: int
    tax: int
    refunded_net: int = 0
    refunded_tax: int = 0


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PaddleLife(LedgerLife):
    def __init__(self) -> None:
        super().__init__()
        self.items: list[Item] = []
        self.code, self.tax_rate = "USD", Fraction(0)
        self.cycle, self.discount, self.status = ("month", 1), 0, "trialing"
        self.first_billed: datetime | None = None
        self.paused_at: datetime | None = None
        self.payments: dict[str, Payment] = {}

    async def mapped(self, envelope: dict[str, Any]) -> list[RevenueEvent]:
        async def resolver(customer_id: str) -> tuple[str, str]:
            return ATTRIBUTION["visitor_fingerprint"], ATTRIBUTION["session_id"]

        return await paddle.to_revenue_events(envelope, resolver=resolver, ledger=self.store)

    def is_snapshot(self, note: Note) -> bool:
        return bool(note.envelope["event_type"].startswith("subscription."))

    def answer_key(self, note: Note) -> str:
        return str(note.envelope["event_id"])

    # The truth.

    def lines(self) -> list[tuple[Item, int, int]]:
        """Each recurring item, its discount and its tax, as a whole period bills it."""
        billed = []
        for item in self.items:
            gross = item.unit * item.quantity
            off = gross * self.discount // 100
            billed.append((item, off, round((gross - off) * self.tax_rate)))
        return billed

    def true_mrr(self) -> Decimal:
        if self.status != "active":
            return Decimal(0)
        per_cycle = sum(item.unit * item.quantity - off for item, off, _ in self.lines())
        interval, count = self.cycle
        return self.major(Fraction(per_cycle) / (MONTHS[interval] * count))

    def snapshot_states(self) -> Decimal | None:
        if self.status != "active":
            return Decimal(0)
        return None if self.discount else self.true_mrr()  # a discount's amount is not in it

    # Paddle's notifications, from the real fixtures' shapes.

    def envelope(self, kind: str, entity: dict[str, Any], as_of: datetime) -> dict[str, Any]:
        n = next(self.ids)
        at = stamp(as_of)
        entity.update(customer_id=CUSTOMER, currency_code=self.code, updated_at=at)
        return {
            "event_id": f"evt_{n:026d}",
            "event_type": kind,
            "occurred_at": at,
            "notification_id": f"ntf_{n:026d}",
            "data": entity,
        }

    def snapshot(self, kind: str, as_of: datetime, **extra: Any) -> Note:
        entity = copy.deepcopy(SUBSCRIPTION)
        template = entity["items"][0]
        interval, count = self.cycle
        cycle = {"interval": interval, "frequency": count}
        discount = {"id": "dsc_life", "starts_at": None, "ends_at": None}
        entity.update(
            id=SUB,
            status=self.status,
            custom_data=dict(ATTRIBUTION),
            billing_cycle=cycle,
            first_billed_at=self.first_billed and stamp(self.first_billed),
            paused_at=self.paused_at and stamp(self.paused_at),
            canceled_at=stamp(as_of) if self.status == "canceled" else None,
            discount=discount if self.discount else None,
            **extra,
        )
        state = {"trialing": "trialing", "paused": "inactive"}.get(self.status, "active")
        entity["items"] = []
        for item in self.items:
            sub_item = copy.deepcopy(template) | {"status": state, "quantity": item.quantity}
            sub_item["price"].update(
                id=item.price_id,
                billing_cycle=cycle,
                unit_price={"amount": str(item.unit), "currency_code": self.code},
                unit_price_overrides=[],
            )
            entity["items"].append(sub_item)
        stops = self.status in ("paused", "canceled")
        ended = self.status == "canceled"
        envelope = self.envelope(kind, entity, as_of)
        return Note(envelope, as_of, self.snapshot_states(), settle=stops, ended=ended, churn=stops)

    def transaction(
        self, origin: str, as_of: datetime, billed: list[tuple[str, int, int, int]]
    ) -> Note:
        """A completed transaction billing (price id, gross, discount, tax) lines."""
        entity = copy.deepcopy(TRANSACTION)
        item_template, line_template = entity["items"][0], entity["details"]["line_items"][0]
        interval, count = self.cycle
        txn_id = f"txn_{next(self.ids):026d}"
        entity.update(id=txn_id, origin=origin, subscription_id=SUB, billed_at=stamp(as_of))
        entity["custom_data"] = dict(ATTRIBUTION)
        entity["items"], entity["details"]["line_items"] = [], []
        for price_id, gross, off, tax in billed:
            item = copy.deepcopy(item_template) | {"quantity": 1}
            once = price_id == ONE_TIME
            item["price"].update(
                id=price_id,
                billing_cycle=None if once else {"interval": interval, "frequency": count},
            )
            line = copy.deepcopy(line_template) | {"price_id": price_id, "quantity": 1}
            line["totals"] = {
                k: str(v)
                for k, v in {
                    "subtotal": gross,
                    "discount": off,
                    "tax": tax,
                    "total": gross - off + tax,
                }.items()
            }
            entity["items"].append(item)
            entity["details"]["line_items"].append(line)
        net = sum(gross - off for _, gross, off, _ in billed)
        tax = sum(tax for *_, tax in billed)
        paid, paid_tax = max(net + tax, 0), tax if net > 0 else 0
        entity["details"]["totals"].update(
            subtotal=str(sum(g for _, g, _, _ in billed)),
            discount=str(sum(o for _, _, o, _ in billed)),
            tax=str(tax),
            total=str(net + tax),
            grand_total=str(paid),
            grand_total_tax=str(paid_tax),
            credit_to_balance=str(max(-(net + tax), 0)),
        )
        if net > 0:
            self.payments[txn_id] = Payment(net, tax)
            self.expected[txn_id] = self.major(net)
            self.paid += self.major(net)
        whole = origin in ("web", "subscription_recurring")
        states = self.true_mrr() if whole else None
        envelope = self.envelope("transaction.completed", entity, as_of)
        return Note(envelope, as_of, states, settle=net > 0)

    def period(self, origin: str, as_of: datetime, fee: int = 0) -> Note:
        """A transaction for a whole period of every item (and a one-time *fee*)."""
        billed = [
            (item.price_id, item.unit * item.quantity, off, tax) for item, off, tax in self.lines()
        ]
        if fee:
            billed.append((ONE_TIME, fee, 0, round(fee * self.tax_rate)))
        return self.transaction(origin, as_of, billed)

    def free(self) -> list[tuple[str, int, int, int]]:
        """A trial's checkout: every item, for nothing."""
        return [(item.price_id, 0, 0, 0) for item in self.items]

    # The life.

    @initialize(
        trial=st.booleans(),
        code=st.sampled_from(sorted(EXPONENTS)),
        tax_rate=st.sampled_from(TAX_RATES),
        seats=st.integers(1, 50),
        unit=st.integers(1, 100_000),
        cycle=st.sampled_from(CYCLES),
        discount=st.sampled_from([0, 0, 10, 25, 100]),
        fee=st.sampled_from([0, 4900]),
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
        discount: int,
        fee: int,
        shuffle: random.Random,
    ) -> None:
        self.code, self.tax_rate, self.cycle, self.discount = code, tax_rate, cycle, discount
        self.items = [Item("pri_seat_0", unit, seats)]
        at = self.tick()
        if trial:
            notes = [
                self.snapshot("subscription.created", at),
                self.snapshot("subscription.trialing", at),
                self.transaction("web", at + timedelta(seconds=2), self.free()),
            ]
        else:
            self.status, self.first_billed = "active", at
            notes = [
                self.period("web", at + timedelta(seconds=2), fee),
                self.snapshot("subscription.created", at),
                self.snapshot("subscription.activated", at + timedelta(seconds=1)),
            ]
        self.send(notes, shuffle)

    @precondition(lambda self: self.status == "trialing")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def activate(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 14)
        self.status, self.first_billed = "active", at
        notes = [
            self.snapshot("subscription.activated", at),
            self.snapshot("subscription.updated", at),
            self.period("subscription_recurring", at + timedelta(seconds=2)),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active")
    @rule(shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def renew(self, shuffle: random.Random, hold: bool) -> None:
        at = self.tick(24 * 30)
        notes = [
            self.snapshot("subscription.updated", at),
            self.period("subscription_recurring", at + timedelta(seconds=1)),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status in ("active", "trialing"))
    @rule(
        change=st.sampled_from(["seats", "price", "interval", "add", "remove", "discount"]),
        value=st.integers(1, 60_000),
        cycle=st.sampled_from(CYCLES),
        discount=st.sampled_from([0, 10, 50]),
        proration=st.none() | st.integers(0, 50_000),
        shuffle=st.randoms(use_true_random=False),
        hold=st.booleans(),
    )
    def change(
        self,
        change: str,
        value: int,
        cycle: tuple[str, int],
        discount: int,
        proration: int | None,
        shuffle: random.Random,
        hold: bool,
    ) -> None:
        n = next(self.ids)
        if change == "seats":
            self.items[0].quantity = 1 + value % 50
        elif change == "price":
            self.items[0] = Item(f"pri_seat_{n}", value, self.items[0].quantity)
        elif change == "interval":
            self.cycle = cycle
            self.items = [
                Item(f"{item.price_id}_{n}", item.unit, item.quantity) for item in self.items
            ]
        elif change == "add":
            self.items.append(Item(f"pri_addon_{n}", value, 1 + value % 3))
        elif change == "remove" and len(self.items) > 1:
            self.items.pop()
        elif change == "discount":
            self.discount = discount
        at = self.tick()
        notes = [self.snapshot("subscription.updated", at)]
        if self.status == "active" and proration is not None:
            gross = proration or -1000  # 0: a downgrade's credit, nothing paid
            billed = [(self.items[0].price_id, gross, 0, round(gross * self.tax_rate))]
            notes.append(self.transaction("subscription_update", at + timedelta(seconds=1), billed))
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status == "active")
    @rule(amount=st.integers(1, 30_000))
    def charge(self, amount: int) -> None:
        billed = [(ONE_TIME, amount, 0, round(amount * self.tax_rate))]
        self.deliver(self.transaction("subscription_charge", self.tick(), billed))

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
            notes.append(self.period("subscription_recurring", at + timedelta(seconds=1)))
        self.send(notes, shuffle, hold)

    @precondition(lambda self: self.status != "canceled")
    @rule(scheduled=st.booleans(), shuffle=st.randoms(use_true_random=False), hold=st.booleans())
    def cancel(self, scheduled: bool, shuffle: random.Random, hold: bool) -> None:
        if scheduled:
            change = {"action": "cancel", "effective_at": stamp(self.clock + timedelta(days=9))}
            self.deliver(
                self.snapshot("subscription.updated", self.tick(), scheduled_change=change)
            )
        at = self.tick(24 * 9)
        self.status = "canceled"
        notes = [
            self.snapshot("subscription.canceled", at),
            self.snapshot("subscription.updated", at),
        ]
        self.send(notes, shuffle, hold)

    @precondition(lambda self: any(p.net > p.refunded_net for p in self.payments.values()))
    @rule(pick=st.integers(0, 99), share=st.sampled_from([1, 2, 3]), chargeback=st.booleans())
    def refund(self, pick: int, share: int, chargeback: bool) -> None:
        open_ = [(t, p) for t, p in self.payments.items() if p.net > p.refunded_net]
        txn_id, payment = open_[pick % len(open_)]
        net = max((payment.net - payment.refunded_net) // share, 1)
        full = net == payment.net - payment.refunded_net
        tax = payment.tax - payment.refunded_tax if full else payment.tax * net // payment.net
        payment.refunded_net, payment.refunded_tax = (
            payment.refunded_net + net,
            payment.refunded_tax + tax,
        )
        adj_id = f"adj_{next(self.ids):026d}"
        self.expected[adj_id] = -self.major(net)
        self.refunded += self.major(net)
        for kind, status in (
            ("adjustment.created", "pending_approval"),
            ("adjustment.updated", "approved"),
        ):
            entity = copy.deepcopy(ADJUSTMENT)
            entity.update(
                id=adj_id,
                action="chargeback" if chargeback else "refund",
                status=status,
                transaction_id=txn_id,
                subscription_id=SUB,
                type="full" if full else "partial",
            )
            entity["totals"] = {
                "subtotal": str(net),
                "tax": str(tax),
                "total": str(net + tax),
                "fee": "0",
                "earnings": str(net),
                "currency_code": self.code,
            }
            self.deliver(Note(self.envelope(kind, entity, self.tick()), self.clock, ledger=False))


LIFE = settings(max_examples=examples(25), stateful_step_count=25, deadline=None)


@LIFE
class AsyncioMemory(PaddleLife):
    pass


@LIFE
class TrioSQLite(PaddleLife):
    backend, sqlite = "trio", True


@LIFE
class AsyncioSQLite(PaddleLife):
    sqlite = True


@LIFE
class TrioMemory(PaddleLife):
    backend = "trio"


TestAsyncioMemory = AsyncioMemory.TestCase
TestTrioSQLite = TrioSQLite.TestCase
TestAsyncioSQLite = AsyncioSQLite.TestCase
TestTrioMemory = TrioMemory.TestCase

"""Random Stripe subscription lives, through webhooks and a ledger: issue 16's properties.

A hypothesis state machine lives a few subscriptions (and one-off payments)
through the webhook events Stripe sends for them, built on the real payload
shapes in ``fixtures/stripe/`` (see ``stripe_payloads``), maps every event
with ``stripe.to_revenue_events(event, ledger=...)`` and models Pulsora's
de-duplication: a set of accepted ``(transaction_id, event_type)``. The truth
(what each subscription's MRR is, what each payment paid) is modelled here,
independently of the library; only the ISO 4217 exponent is borrowed.

Properties, after every step:

1. MRR telescopes: the accepted ``mrr_impact`` of a subscription add up to its
   true MRR as of the last event that settles it (a paid invoice, a pause, the
   end), in order; never negative; 0 once it ended. Redelivered and stale
   events change nothing.
2. Cash once: each payment's accepted positive amount is its revenue, once,
   whichever of its descriptions arrive; its refunds net it out (exactly, when
   refunded in full).
3. Amounts exclude tax (unless ``include_tax``); MRR excludes tax and one-time
   items and nets recurring coupons.
"""

from __future__ import annotations

import calendar
import functools
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pulsora_revenue import EventType, RevenueEvent, currency_exponent
from pulsora_revenue.webhooks import Ledger, MemoryLedger, SQLiteLedger, stripe

from ..conftest import examples
from .stripe_payloads import (
    ATTRIBUTION,
    Coupon,
    Item,
    Line,
    Price,
    Shape,
    checkout_session_object,
    envelope,
    invoice_object,
    payment_intent_object,
    refunded_charge_object,
    subscription_object,
)

# -- the truth, modelled here ----------------------------------------------------------

#: Months in one billing interval (SPEC 5 / issue 16: a year is 12, a week 12/52, a day 12/365).
MONTHS = {
    "day": Fraction(12, 365),
    "week": Fraction(12, 52),
    "month": Fraction(1),
    "year": Fraction(12),
}

#: Statuses in which a subscription bills nothing.
NOT_BILLING = frozenset({"incomplete", "trialing", "paused", "canceled"})

#: The type of a paid subscription invoice whose MRR did not move, by billing_reason.
UNMOVED = {
    "subscription_create": EventType.SUBSCRIPTION,
    "subscription_cycle": EventType.RENEWAL,
    "subscription_update": EventType.UPGRADE,
}

START = 1_750_000_000  # 2025-06-15
DAY = 86_400

#: Billing cycle anchors: month ends (31st, a leap day, the 30th) and a mid-month one.
ANCHORS = (
    datetime(2025, 1, 31, 12, 0, tzinfo=UTC),
    datetime(2024, 2, 29, 0, 0, tzinfo=UTC),
    datetime(2025, 3, 15, 8, 30, tzinfo=UTC),
    datetime(2025, 6, 30, 23, 59, 59, tzinfo=UTC),
)


def major(minor: Fraction | int, currency: str) -> Decimal:
    """Minor units of *currency* in major units, rounded half to even once."""
    exponent = currency_exponent(currency.upper())
    return Decimal(round(Fraction(minor))).scaleb(-exponent)


def half_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_exponent(currency.upper())) / 2


def whole(amount: Decimal) -> int:
    """Minor units billed for a (possibly fractional) amount of minor units."""
    return int(amount.to_integral_value(ROUND_HALF_EVEN))


def shifted(anchor: datetime, interval: str, n: int) -> datetime:
    """*anchor* plus *n* intervals, on the anchor's day of the month (or the month's last)."""
    if interval in ("day", "week"):
        return anchor + timedelta(days=n * (7 if interval == "week" else 1))
    months = n * (12 if interval == "year" else 1)
    years, month = divmod(anchor.month - 1 + months, 12)
    year = anchor.year + years
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


@attrs.define
class Life:
    """One subscription: what it is now, and what the model knows was delivered of it."""

    id: str
    customer: str
    currency: str
    items: list[Item]
    status: str  # incomplete, trialing, active, paused, canceled
    shape: Shape  # the shape this account's API version writes
    expanded_discounts: bool
    anchor: datetime
    created: int
    pause_behavior: str | None = None
    cancel_at_period_end: bool = False
    coupon: Coupon | None = None
    coupon_used: bool = False  # a "once" coupon applies to one invoice
    trial: tuple[int, int] | None = None
    ended_at: int | None = None
    first_paid: bool = False
    cycle: int = 0
    #: (created, type, object) of each subscription event delivered
    snapshots: list[tuple[int, str, dict[str, Any]]] = attrs.Factory(list)
    newest: int = 0  # the newest state delivered: an event's created, an invoice's created
    settled: Decimal = Decimal(0)  # true MRR at the last event that settles it

    @property
    def interval(self) -> tuple[str, int]:
        price = self.items[0].price
        assert price.interval is not None
        return price.interval, price.count

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def billing(self) -> bool:
        """Whether it bills: it can renew, be paused, be changed with a proration."""
        return (
            not self.ended
            and self.status == "active"
            and self.pause_behavior is None
            and self.first_paid
        )

    def mrr(self) -> Decimal:
        """The true MRR, in major units."""
        if self.ended or self.status in NOT_BILLING or self.pause_behavior is not None:
            return Decimal(0)
        interval, count = self.interval
        gross = sum(
            (
                Fraction(item.price.unit) * item.quantity / (MONTHS[interval] * count)
                for item in self.items
            ),
            Fraction(0),
        )
        if self.coupon is not None and self.coupon.duration != "once":
            gross *= 1 - Fraction(self.coupon.percent) / 100
        return major(gross, self.currency)

    def period(self, cycle: int) -> tuple[int, int]:
        interval, count = self.interval
        start = shifted(self.anchor, interval, cycle * count)
        end = shifted(self.anchor, interval, (cycle + 1) * count)
        return int(start.timestamp()), int(end.timestamp())


@attrs.define
class Cash:
    """One payment: what the customer paid, its tax, and what was refunded of it."""

    payment: str  # the transaction_id every description of it must carry
    intent: str  # its PaymentIntent, which its charge names
    charge: str
    currency: str
    gross: int
    tax: int
    customer: str | None
    one_off: bool
    refunded: int = 0
    refunds: list[int] = attrs.Factory(list)  # each refund's amount, newest first
    described: bool = False  # a description of it that maps was delivered

    def revenue(self, include_tax: bool) -> int:
        return self.gross if include_tax else self.gross - self.tax


# -- strategies --------------------------------------------------------------------------

CURRENCIES = st.sampled_from(["usd", "eur", "jpy", "kwd"])
UNITS = st.one_of(
    st.integers(50, 500_000).map(Decimal),
    st.integers(1, 99_999).map(lambda n: Decimal(n).scaleb(-1)),  # unit_amount_decimal "1999.5"
)
INTERVALS = st.one_of(
    st.tuples(st.just("day"), st.integers(1, 31)),
    st.tuples(st.just("week"), st.integers(1, 4)),
    st.tuples(st.just("month"), st.sampled_from([1, 2, 3, 6, 12])),
    st.tuples(st.just("year"), st.just(1)),
)
QUANTITIES = st.integers(1, 25)
TAX_RATES = st.sampled_from([Fraction(0), Fraction(0), Fraction(7, 100), Fraction(19, 100)])
PICK = st.integers(0, 2**16)
SHAPES: st.SearchStrategy[Shape] = st.sampled_from(["old", "basil"])
PERCENTS = st.sampled_from(["10", "25", "33.33", "50", "100"])
DURATIONS = st.sampled_from(["forever", "repeating", "once"])


@attrs.frozen
class Bill:
    """How an invoice is written and delivered."""

    shape: Shape = "old"
    tax_rate: Fraction = Fraction(0)
    tax_field: str = "total_tax_amounts"  # old invoices: or "tax" alone
    names_intent: bool = False  # a basil invoice with its ``payments`` expanded
    one_time: int | None = None  # a one-time invoice item on a subscription invoice
    invoice_first: bool = True  # delivered before the subscription event of the same change
    also_intent: bool = False  # its payment_intent.succeeded is delivered too


@attrs.frozen
class Plan:
    """A new subscription."""

    currency: str
    interval: tuple[str, int]
    prices: list[tuple[Decimal, int]]  # unit amount (minor units), quantity
    trial: bool
    status: str  # without a trial: incomplete until the first invoice is paid, or active
    pay_now: bool  # the first invoice is paid in the same step
    shape: Shape
    expanded_discounts: bool
    anchor: datetime
    via_checkout: bool
    coupon: tuple[str, str] | None  # percent, duration


BILLS = st.builds(
    Bill,
    shape=SHAPES,
    tax_rate=TAX_RATES,
    tax_field=st.sampled_from(["total_tax_amounts", "tax"]),
    names_intent=st.booleans(),
    one_time=st.one_of(st.none(), st.integers(1, 50_000)),
    invoice_first=st.booleans(),
    also_intent=st.booleans(),
)
PLANS = st.builds(
    Plan,
    currency=CURRENCIES,
    interval=INTERVALS,
    prices=st.lists(st.tuples(UNITS, QUANTITIES), min_size=1, max_size=2),
    trial=st.booleans(),
    status=st.sampled_from(["incomplete", "active"]),
    pay_now=st.booleans(),
    shape=SHAPES,
    expanded_discounts=st.booleans(),
    anchor=st.sampled_from(ANCHORS),
    via_checkout=st.booleans(),
    coupon=st.one_of(st.none(), st.tuples(PERCENTS, DURATIONS)),
)


async def _resolver(customer_id: str) -> tuple[str, str]:
    """Attribution for renewals and charges, which carry none (as a user's lookup would)."""
    return ("fp_resolved", "sess_resolved")


def _summary(mapped: list[RevenueEvent]) -> list[tuple[str, str, str, str | None]]:
    return [
        (
            e.event_type.value if e.event_type else "",
            e.transaction_id,
            str(e.amount),
            None if e.mrr_impact is None else str(e.mrr_impact),
        )
        for e in mapped
    ]


class StripeLives(RuleBasedStateMachine):
    """Lives of Stripe subscriptions and one-off payments, mapped through one ledger."""

    def __init__(self, ledger: Ledger, backend: str) -> None:
        super().__init__()
        self.ledger = ledger
        # One event loop for the whole life (as a webhook route has), in a portal thread,
        # so that the steps stay synchronous and SQLiteLedger's thread hops run as in an app.
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal(backend)
        self.portal = self._portal_cm.__enter__()
        self.include_tax = False
        self.now = START
        self.ids = itertools.count(1)
        self.lives: list[Life] = []
        self.cash: list[Cash] = []
        self.delivered: list[tuple[dict[str, Any], list[RevenueEvent]]] = []
        # Pulsora's view: what it accepted, after de-duplication.
        self.accepted: set[tuple[str, EventType | None]] = set()
        self.impact: dict[str, Decimal] = {}
        self.positive: dict[str, Decimal] = {}
        self.refunded: dict[str, Decimal] = {}

    def teardown(self) -> None:
        try:
            close = getattr(self.ledger, "aclose", None)
            if close is not None:
                self.portal.call(close)
        finally:
            self._portal_cm.__exit__(None, None, None)

    # -- plumbing ----------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.ids)}"

    def tick(self, seconds: int = DAY) -> int:
        self.now += seconds
        return self.now

    def map(self, payload: dict[str, Any]) -> list[RevenueEvent]:
        call = functools.partial(
            stripe.to_revenue_events,
            payload,
            ledger=self.ledger,
            resolver=_resolver,
            include_tax=self.include_tax,
        )
        return self.portal.call(call)

    def deliver(self, payload: dict[str, Any]) -> list[RevenueEvent]:
        """Map *payload*, and let Pulsora accept what it has not seen yet."""
        mapped = self.map(payload)
        note(f"{payload['type']} {payload['id']} @{payload['created']} -> {_summary(mapped)}")
        self.delivered.append((payload, mapped))
        for event in mapped:
            self.accept(event)
        return mapped

    def accept(self, event: RevenueEvent) -> None:
        key = (event.transaction_id, event.event_type)
        if key in self.accepted:
            return  # Pulsora drops a duplicate transaction
        self.accepted.add(key)
        if event.customer_subscription_id is not None and event.mrr_impact is not None:
            sub = event.customer_subscription_id
            self.impact[sub] = self.impact.get(sub, Decimal(0)) + event.mrr_impact
        if event.event_type is EventType.CHURN:
            assert event.amount == 0, f"a churn carries no cash: {event}"
        elif event.amount > 0:
            tx = event.transaction_id
            self.positive[tx] = self.positive.get(tx, Decimal(0)) + event.amount
        else:
            assert event.event_type is EventType.REFUND, event
            charge, sep, _ = event.transaction_id.partition(":refund:")
            assert sep, f"a refund's transaction_id is '{{charge}}:refund:{{n}}': {event}"
            self.refunded[charge] = self.refunded.get(charge, Decimal(0)) + event.amount

    def pick(self, n: int, ok: Callable[[Life], bool]) -> Life:
        found = [life for life in self.lives if ok(life)]
        return found[n % len(found)]

    def any_life(self, ok: Callable[[Life], bool]) -> bool:
        return any(ok(life) for life in self.lives)

    def net(self, cash: Cash) -> Decimal:
        return major(cash.revenue(self.include_tax), cash.currency)

    # -- payloads ----------------------------------------------------------------------

    def snapshot(
        self, life: Life, kind: str = "customer.subscription.updated", **previous: Any
    ) -> dict[str, Any]:
        """A subscription event showing *life* as it is now."""
        obj = subscription_object(
            id=life.id,
            customer=life.customer,
            currency=life.currency,
            items=life.items,
            status=life.status,
            created=life.created,
            period=life.period(life.cycle),
            pause_behavior=life.pause_behavior,
            cancel_at_period_end=life.cancel_at_period_end,
            coupon=life.coupon,
            expanded_discounts=life.expanded_discounts,
            trial=life.trial,
            ended_at=life.ended_at,
        )
        created = self.now
        payload = envelope(
            kind,
            obj,
            id=self.next_id("evt"),
            created=created,
            shape=life.shape,
            previous=previous or None,
        )
        life.snapshots.append((created, kind, obj))
        return payload

    def items_object(self, life: Life) -> dict[str, Any]:
        """*life*'s ``items`` as a subscription event shows them (for ``previous_attributes``)."""
        obj = subscription_object(
            id=life.id,
            customer=life.customer,
            currency=life.currency,
            items=life.items,
            status=life.status,
            created=life.created,
            period=life.period(life.cycle),
        )
        items: dict[str, Any] = obj["items"]
        return items

    def subscription_lines(
        self, life: Life, *, trial: bool = False, period: tuple[int, int]
    ) -> list[Line]:
        """The lines of a whole period of *life*, its coupon applied."""
        coupon = life.coupon
        applies = coupon is not None and not trial and not life.coupon_used
        if coupon is not None and coupon.duration == "once" and applies:
            life.coupon_used = True
        lines = []
        for item in life.items:
            amount = 0 if trial else whole(item.price.unit * item.quantity)
            off = (
                whole(Decimal(amount) * Decimal(coupon.percent) / 100) if applies and coupon else 0
            )
            lines.append(
                Line(
                    id=self.next_id("il"),
                    price=item.price,
                    quantity=item.quantity,
                    amount=amount,
                    period=period,
                    item=item.id,
                    discount=off,
                )
            )
        return lines

    def one_time_line(self, life: Life, amount: int) -> Line:
        price = Price(self.next_id("price"), Decimal(amount), life.currency, None)
        return Line(self.next_id("il"), price, 1, amount, (self.now, self.now))

    def paid_invoice(
        self,
        life: Life,
        reason: str,
        lines: list[Line],
        *,
        created: int,
        bill: Bill,
    ) -> tuple[dict[str, Any], Cash | None]:
        """An ``invoice.paid`` of *life*, and the payment it describes (None if nothing paid)."""
        shape, names_intent = bill.shape, bill.names_intent
        invoice_id = self.next_id("in")
        intent = self.next_id("pi")
        taxable = sum(line.amount - line.discount for line in lines)
        tax = round(taxable * bill.tax_rate) if taxable > 0 else 0
        obj = invoice_object(
            id=invoice_id,
            shape=shape,
            customer=life.customer,
            currency=life.currency,
            reason=reason,
            lines=lines,
            created=created,
            tax=tax,
            tax_field=bill.tax_field,
            payment_intent=intent if shape == "old" or names_intent else None,
            subscription=life.id,
            subscription_metadata=ATTRIBUTION,
        )
        payload = envelope(
            "invoice.paid", obj, id=self.next_id("evt"), created=self.now, shape=shape
        )
        paid = obj["amount_paid"]
        if paid <= 0:
            return payload, None
        canonical = intent if shape == "old" or names_intent else invoice_id
        cash = Cash(
            canonical,
            intent,
            f"ch_{intent}",
            life.currency,
            paid,
            tax,
            life.customer,
            one_off=False,
        )
        return payload, cash

    # -- expectations per event --------------------------------------------------------

    def expect_nothing(self, mapped: list[RevenueEvent], why: str) -> None:
        assert mapped == [], f"{why} maps to nothing; got {_summary(mapped)}"

    def settle(self, life: Life, mapped: list[RevenueEvent], *, pause_event: str | None) -> None:
        """A snapshot that settles (a pause, the end): one churn if the MRR reported drops."""
        before, after = life.settled, life.mrr()
        life.settled = after
        if after >= before:
            self.expect_nothing(mapped, f"a settling snapshot of {life.id} that lost no MRR")
            return
        assert len(mapped) == 1, f"one churn for {life.id}; got {_summary(mapped)}"
        (churn,) = mapped
        assert churn.event_type is EventType.CHURN
        assert churn.amount == 0
        assert churn.mrr_impact == after - before
        assert churn.customer_subscription_id == life.id
        if pause_event is None:
            assert churn.transaction_id == life.id
        else:
            tx = churn.transaction_id
            assert tx != life.id, "a pause is not the end"
            assert tx.startswith(f"{life.id}:"), tx
            assert tx.endswith(f":{pause_event}"), tx

    def paid(
        self, life: Life, payload: dict[str, Any], cash: Cash | None, mapped: list[RevenueEvent]
    ) -> None:
        """A paid subscription invoice: its cash once, and the MRR moved since the last one."""
        life.newest = max(life.newest, payload["data"]["object"]["created"])
        if cash is None:
            self.expect_nothing(mapped, "an invoice of nothing paid")
            return
        self.cash.append(cash)
        cash.described = True
        before, after = life.settled, life.mrr()
        life.settled = after
        reason = payload["data"]["object"]["billing_reason"]
        if after > before:
            kind = EventType.SUBSCRIPTION if before == 0 else EventType.UPGRADE
        elif after < before:
            kind = EventType.DOWNGRADE
        else:
            kind = UNMOVED.get(reason, EventType.PURCHASE)
        assert len(mapped) == 1, f"one event for a paid invoice; got {_summary(mapped)}"
        (event,) = mapped
        assert (event.transaction_id, event.amount, event.mrr_impact, event.event_type) == (
            cash.payment,
            self.net(cash),
            (after - before) or None,
            kind,
        ), f"{reason} invoice of {life.id}: MRR {before} -> {after}; got {_summary(mapped)}"
        assert event.customer_subscription_id == life.id
        assert event.currency == life.currency.upper()

    def invoice_intent(self, invoice: dict[str, Any], cash: Cash | None, shape: Shape) -> None:
        """``payment_intent.succeeded`` of an invoice's payment: the invoice describes it.

        Before basil it names its invoice; a basil one does not, and carries no
        attribution in its own metadata.
        """
        if cash is None:
            return
        obj = payment_intent_object(
            id=cash.intent,
            currency=cash.currency,
            amount=cash.gross,
            customer=cash.customer,
            created=self.now,
            metadata={},
            invoice=invoice["data"]["object"]["id"],
            shape=shape,
        )
        payload = envelope(
            "payment_intent.succeeded", obj, id=self.next_id("evt"), created=self.now, shape=shape
        )
        self.expect_nothing(self.deliver(payload), "an invoice's PaymentIntent")

    # -- rules: subscriptions ----------------------------------------------------------

    def open_life(self, plan: Plan) -> Life:
        """A new subscription, as ``customer.subscription.created`` shows it."""
        now = self.tick()
        items = [
            Item(
                self.next_id("si"),
                Price(self.next_id("price"), unit, plan.currency, *plan.interval),
                quantity,
            )
            for unit, quantity in plan.prices
        ]
        life = Life(
            id=self.next_id("sub"),
            customer=self.next_id("cus"),
            currency=plan.currency,
            items=items,
            status="trialing" if plan.trial else plan.status,
            shape=plan.shape,
            expanded_discounts=plan.expanded_discounts,
            anchor=plan.anchor,
            created=now,
            trial=(now, now + 14 * DAY) if plan.trial else None,
        )
        if plan.coupon is not None:
            life.coupon = Coupon(self.next_id("co"), *plan.coupon)
        self.lives.append(life)
        events = [self.snapshot(life, "customer.subscription.created")]
        life.newest = now
        if plan.via_checkout:
            session = checkout_session_object(
                id=self.next_id("cs"),
                payment_intent=None,
                currency=plan.currency,
                total=0,
                tax=0,
                customer=life.customer,
                created=now,
                mode="subscription",
                subscription=life.id,
            )
            kind = "checkout.session.completed"
            events.append(envelope(kind, session, id=self.next_id("evt"), created=now))
        for payload in events:
            self.expect_nothing(self.deliver(payload), "a new subscription")
        if plan.trial:  # Stripe bills a trial's first period at 0
            lines = self.subscription_lines(life, trial=True, period=(now, now + 14 * DAY))
            payload, cash = self.paid_invoice(
                life, "subscription_create", lines, created=now, bill=Bill(shape=plan.shape)
            )
            assert cash is None
            self.paid(life, payload, cash, self.deliver(payload))
        return life

    def pay_first(self, life: Life, bill: Bill) -> None:
        """The first invoice is paid; an incomplete subscription becomes active."""
        self.tick()
        was = life.status
        life.status, life.first_paid = "active", True
        lines = self.subscription_lines(life, period=life.period(0))
        if bill.one_time is not None:
            lines.append(self.one_time_line(life, bill.one_time))
        # made with the subscription, paid now
        invoice, cash = self.paid_invoice(
            life, "subscription_create", lines, created=life.created, bill=bill
        )
        update = self.snapshot(life, status=was) if was == "incomplete" else None
        if update is not None and not bill.invoice_first:
            self.expect_nothing(self.deliver(update), "incomplete -> active")
            life.newest = self.now
        self.paid(life, invoice, cash, self.deliver(invoice))
        if update is not None and bill.invoice_first:
            self.expect_nothing(self.deliver(update), "incomplete -> active")
            life.newest = self.now
        if bill.also_intent:
            self.invoice_intent(invoice, cash, bill.shape)

    # -- rules: subscriptions ----------------------------------------------------------

    @initialize(include_tax=st.booleans(), plan=PLANS, bill=BILLS)
    def first_life(self, include_tax: bool, plan: Plan, bill: Bill) -> None:
        """Every run has a subscription from its start; ``include_tax`` holds for the run."""
        self.include_tax = include_tax
        self.create(plan, bill)

    @precondition(lambda self: len(self.lives) < 3)
    @rule(plan=PLANS, bill=BILLS)
    def create(self, plan: Plan, bill: Bill) -> None:
        """A new subscription: in a trial, incomplete until paid, or paid at once."""
        life = self.open_life(plan)
        if plan.pay_now and life.trial is None:
            self.pay_first(life, bill)

    @precondition(
        lambda self: self.any_life(
            lambda life: not life.ended and not life.first_paid and life.trial is None
        )
    )
    @rule(n=PICK, bill=BILLS)
    def pay_first_invoice(self, n: int, bill: Bill) -> None:
        life = self.pick(
            n, lambda life: not life.ended and not life.first_paid and life.trial is None
        )
        self.pay_first(life, bill)

    @precondition(
        lambda self: self.any_life(
            lambda life: not life.ended and life.status in ("trialing", "paused")
        )
    )
    @rule(n=PICK, bill=BILLS)
    def convert(self, n: int, bill: Bill) -> None:
        """A trial converts (or a subscription paused at its trial's end resumes): it bills."""
        life = self.pick(n, lambda life: not life.ended and life.status in ("trialing", "paused"))
        now = self.tick()
        was = life.status
        life.status, life.first_paid = "active", True
        life.cancel_at_period_end = False
        life.cycle += 1
        lines = self.subscription_lines(life, period=life.period(life.cycle))
        invoice, cash = self.paid_invoice(life, "subscription_cycle", lines, created=now, bill=bill)
        update = self.snapshot(life, status=was)
        for payload in [invoice, update] if bill.invoice_first else [update, invoice]:
            if payload is invoice:
                self.paid(life, invoice, cash, self.deliver(invoice))
            else:
                self.expect_nothing(self.deliver(update), "a trial that converts")
        life.newest = now

    @precondition(
        lambda self: self.any_life(lambda life: not life.ended and life.status == "trialing")
    )
    @rule(n=PICK)
    def trial_ends_without_payment_method(self, n: int) -> None:
        """``trial_settings.end_behavior.missing_payment_method = pause``: status paused."""
        life = self.pick(n, lambda life: not life.ended and life.status == "trialing")
        self.tick()
        life.status = "paused"
        payload = self.snapshot(life, status="trialing")
        life.newest = self.now
        self.settle(life, self.deliver(payload), pause_event=payload["id"])

    @precondition(
        lambda self: self.any_life(lambda life: life.billing and not life.cancel_at_period_end)
    )
    @rule(n=PICK, bill=BILLS)
    def renew(self, n: int, bill: Bill) -> None:
        """The next period is billed and paid."""
        life = self.pick(n, lambda life: life.billing and not life.cancel_at_period_end)
        now = self.tick()
        life.cycle += 1
        lines = self.subscription_lines(life, period=life.period(life.cycle))
        if bill.one_time is not None:
            lines.append(self.one_time_line(life, bill.one_time))
        invoice, cash = self.paid_invoice(life, "subscription_cycle", lines, created=now, bill=bill)
        self.paid(life, invoice, cash, self.deliver(invoice))
        if bill.also_intent:
            self.invoice_intent(invoice, cash, bill.shape)

    @precondition(
        lambda self: self.any_life(
            lambda life: (
                not life.ended
                and (life.status == "trialing" or (life.status == "active" and life.first_paid))
            )
        )
    )
    @rule(
        n=PICK,
        what=st.sampled_from(["seats", "price", "interval", "add", "remove"]),
        prorate=st.booleans(),
        bill=BILLS,
        data=st.data(),
    )
    def change(self, n: int, what: str, prorate: bool, bill: Bill, data: st.DataObject) -> None:
        """Seats, price, interval, an item more or less; maybe a proration invoice at once."""
        life = self.pick(
            n,
            lambda life: (
                not life.ended
                and (life.status == "trialing" or (life.status == "active" and life.first_paid))
            ),
        )
        now = self.tick()
        before = list(life.items)
        previous_items = self.items_object(life)
        interval, count = life.interval
        k = data.draw(st.integers(0, len(life.items) - 1), label="item")
        old = life.items[k]
        if what == "seats":
            quantity = data.draw(QUANTITIES.filter(lambda q: q != old.quantity), label="seats")
            life.items[k] = attrs.evolve(old, quantity=quantity)
        elif what == "price":
            unit = data.draw(UNITS, label="unit")
            price = Price(self.next_id("price"), unit, life.currency, interval, count)
            life.items[k] = attrs.evolve(old, price=price)
        elif what == "interval":
            interval, count = data.draw(INTERVALS, label="interval")
            life.items = [
                attrs.evolve(
                    item,
                    price=Price(
                        self.next_id("price"), data.draw(UNITS), life.currency, interval, count
                    ),
                )
                for item in life.items
            ]
            life.anchor, life.cycle = datetime.fromtimestamp(now, UTC), 0
        elif what == "add" or len(life.items) == 1:
            price = Price(self.next_id("price"), data.draw(UNITS), life.currency, interval, count)
            life.items.append(Item(self.next_id("si"), price, data.draw(QUANTITIES)))
        else:
            del life.items[k]
        update = self.snapshot(life, items=previous_items)
        life.newest = now
        self.expect_nothing(self.deliver(update), f"a change ({what}) of {life.id}")
        if not (prorate and life.billing):
            return
        # proration_behavior=always_invoice: the unused time back, the rest of the period
        # at the new prices; a new interval starts a new period, billed in full.
        self.tick(60)
        lines = [
            Line(
                self.next_id("il"),
                item.price,
                item.quantity,
                -whole(item.price.unit * item.quantity / 2),
                (now, now + DAY),
                item.id,
                proration=True,
            )
            for item in before
        ]
        new_period = what == "interval"
        lines += [
            Line(
                self.next_id("il"),
                item.price,
                item.quantity,
                whole(item.price.unit * item.quantity / (1 if new_period else 2)),
                life.period(0) if new_period else (now, now + DAY),
                item.id,
                proration=not new_period,
            )
            for item in life.items
        ]
        invoice, cash = self.paid_invoice(
            life, "subscription_update", lines, created=now, bill=bill
        )
        self.paid(life, invoice, cash, self.deliver(invoice))

    @precondition(
        lambda self: self.any_life(
            lambda life: not life.ended and (life.first_paid or life.status == "trialing")
        )
    )
    @rule(n=PICK, percent=PERCENTS, duration=DURATIONS, remove=st.booleans())
    def coupon(self, n: int, percent: str, duration: str, remove: bool) -> None:
        """A coupon is applied to (or removed from) the subscription."""
        life = self.pick(
            n, lambda life: not life.ended and (life.first_paid or life.status == "trialing")
        )
        self.tick()
        had = life.coupon
        life.coupon = None if remove else Coupon(self.next_id("co"), percent, duration)
        life.coupon_used = False
        payload = self.snapshot(life, discount=None if had is None else {"id": f"di_{had.id}"})
        life.newest = self.now
        self.expect_nothing(self.deliver(payload), "a coupon change")

    @precondition(lambda self: self.any_life(lambda life: life.billing))
    @rule(n=PICK, behavior=st.sampled_from(["void", "mark_uncollectible", "keep_as_draft"]))
    def pause(self, n: int, behavior: str) -> None:
        life = self.pick(n, lambda life: life.billing)
        self.tick()
        life.pause_behavior = behavior
        payload = self.snapshot(life, pause_collection=None)
        life.newest = self.now
        self.settle(life, self.deliver(payload), pause_event=payload["id"])

    @precondition(
        lambda self: self.any_life(lambda life: not life.ended and life.pause_behavior is not None)
    )
    @rule(n=PICK)
    def resume(self, n: int) -> None:
        """Collection resumes: the MRR comes back with the next paid invoice."""
        life = self.pick(n, lambda life: not life.ended and life.pause_behavior is not None)
        self.tick()
        behavior, life.pause_behavior = life.pause_behavior, None
        payload = self.snapshot(
            life,
            "customer.subscription.resumed",
            pause_collection={"behavior": behavior, "resumes_at": None},
        )
        life.newest = self.now
        self.expect_nothing(self.deliver(payload), "a resumed subscription")

    @precondition(lambda self: self.any_life(lambda life: not life.ended))
    @rule(n=PICK, at_period_end=st.booleans(), updated_first=st.booleans())
    def cancel(self, n: int, at_period_end: bool, updated_first: bool) -> None:
        """Cancelled at the period's end (not churn until it ends; or undone), or it ends.

        It ends with ``customer.subscription.deleted``, maybe after an
        ``.updated`` with status canceled: one churn of what was reported.
        """
        life = self.pick(n, lambda life: not life.ended)
        now = self.tick()
        if at_period_end and life.status in ("active", "trialing"):
            life.cancel_at_period_end = not life.cancel_at_period_end
            payload = self.snapshot(life, cancel_at_period_end=not life.cancel_at_period_end)
            life.newest = now
            self.expect_nothing(self.deliver(payload), "cancel_at_period_end")
            return
        was = life.status
        life.status = "incomplete_expired" if was == "incomplete" else "canceled"
        life.ended_at = now
        if updated_first:
            payload = self.snapshot(life, status=was)
            self.settle(life, self.deliver(payload), pause_event=None)
        payload = self.snapshot(life, "customer.subscription.deleted")
        life.newest = now
        self.settle(life, self.deliver(payload), pause_event=None)

    # -- rules: one-off payments and refunds -------------------------------------------

    @rule(
        via=st.sampled_from(["checkout", "delayed", "intent", "both", "invoice"]),
        currency=CURRENCIES,
        gross=st.integers(100, 1_000_000),
        tax_rate=TAX_RATES,
        guest=st.booleans(),
        intent_first=st.booleans(),
        intent_shape=SHAPES,
        names_intent=st.booleans(),
    )
    def one_off(
        self,
        via: str,
        currency: str,
        gross: int,
        tax_rate: Fraction,
        guest: bool,
        intent_first: bool,
        intent_shape: Shape,
        names_intent: bool,
    ) -> None:
        """A one-off payment: a Checkout Session and/or its PaymentIntent, or a manual invoice.

        ``delayed``: a bank debit; the Session completes unpaid, and
        ``checkout.session.async_payment_succeeded`` follows when the money is in.
        """
        if via == "invoice":
            self.manual_invoice(currency, gross, tax_rate, names_intent)
            return
        now = self.tick()
        intent = self.next_id("pi")
        # Stripe Tax through Checkout; a PaymentIntent made by hand has no tax Stripe knows of.
        tax = 0 if via == "intent" else round(gross * tax_rate / (1 + tax_rate))
        customer = None if guest else self.next_id("cus")
        cash = Cash(intent, intent, f"ch_{intent}", currency, gross, tax, customer, one_off=True)
        self.cash.append(cash)
        descriptions = {
            "checkout": ["checkout"],
            "delayed": ["unpaid", "checkout"],
            "intent": ["intent"],
            "both": ["intent", "checkout"] if intent_first else ["checkout", "intent"],
        }[via]
        session = self.next_id("cs")
        for description in descriptions:
            if description in ("checkout", "unpaid"):
                obj = checkout_session_object(
                    id=session,
                    payment_intent=intent,
                    currency=currency,
                    total=gross,
                    tax=tax,
                    customer=customer,
                    created=now,
                )
                kind = "checkout.session.completed"
                if description == "unpaid":
                    obj["payment_status"] = "unpaid"
                    payload = envelope(kind, obj, id=self.next_id("evt"), created=now)
                    self.expect_nothing(self.deliver(payload), "an unpaid Checkout Session")
                    continue
                if via == "delayed":
                    kind = "checkout.session.async_payment_succeeded"
            else:
                # The README's advice: with tax, keep the attribution out of the Session's
                # payment_intent_data.metadata (a PaymentIntent knows no tax), so that only
                # the Session maps. Without tax, both may carry it, in either order.
                taxed = via == "both" and tax > 0
                obj = payment_intent_object(
                    id=intent,
                    currency=currency,
                    amount=gross,
                    customer=customer,
                    created=now,
                    metadata={} if taxed else ATTRIBUTION,
                    shape=intent_shape,
                )
                kind = "payment_intent.succeeded"
                if taxed:
                    payload = envelope(kind, obj, id=self.next_id("evt"), created=now)
                    self.expect_nothing(
                        self.deliver(payload), "a PaymentIntent without attribution"
                    )
                    continue
            mapped = self.deliver(envelope(kind, obj, id=self.next_id("evt"), created=now))
            cash.described = True
            assert _summary(mapped) == [("purchase", intent, str(self.net(cash)), None)], (
                f"{kind} of {gross} with {tax} tax: its revenue, once"
            )

    def manual_invoice(
        self, currency: str, amount: int, tax_rate: Fraction, names_intent: bool
    ) -> None:
        """A one-off invoice (``billing_reason`` manual), on the zulip recording's shape."""
        now = self.tick()
        price = Price(self.next_id("price"), Decimal(amount), currency, None)
        line = Line(self.next_id("il"), price, 1, amount, (now, now))
        invoice_id, intent = self.next_id("in"), self.next_id("pi")
        tax = round(amount * tax_rate)
        obj = invoice_object(
            id=invoice_id,
            shape="basil",
            customer=self.next_id("cus"),
            currency=currency,
            reason="manual",
            lines=[line],
            created=now,
            tax=tax,
            payment_intent=intent if names_intent else None,
            metadata=ATTRIBUTION,
            base="zulip_basil_invoice_paid",
        )
        canonical = intent if names_intent else invoice_id
        customer = obj["customer"]
        cash = Cash(
            canonical, intent, f"ch_{intent}", currency, amount + tax, tax, customer, one_off=True
        )
        self.cash.append(cash)
        payload = envelope("invoice.paid", obj, id=self.next_id("evt"), created=now, shape="basil")
        mapped = self.deliver(payload)
        cash.described = True
        assert _summary(mapped) == [("purchase", canonical, str(self.net(cash)), None)]

    @precondition(lambda self: any(c.described and c.refunded < c.gross for c in self.cash))
    @rule(n=PICK, full=st.booleans(), part=st.fractions(0, 1), listed=st.booleans())
    def refund(self, n: int, full: bool, part: Fraction, listed: bool) -> None:
        """Part or all of what is left of a payment is refunded (``charge.refunded``)."""
        open_ = [c for c in self.cash if c.described and c.refunded < c.gross]
        cash = open_[n % len(open_)]
        now = self.tick()
        left = cash.gross - cash.refunded
        amount = left if full else max(1, min(left, round(left * part)))
        before, cash.refunded = cash.refunded, cash.refunded + amount
        cash.refunds.insert(0, amount)
        obj = refunded_charge_object(
            id=cash.charge,
            payment_intent=cash.intent,
            currency=cash.currency,
            amount=cash.gross,
            refunded=cash.refunded,
            customer=cash.customer,
            created=now,
            refunds=cash.refunds,
            metadata=ATTRIBUTION if cash.one_off else None,
        )
        previous = None if listed else {"amount_refunded": before, "refunded": False}
        payload = envelope(
            "charge.refunded", obj, id=self.next_id("evt"), created=now, previous=previous
        )
        mapped = self.deliver(payload)
        for event in mapped:
            assert event.event_type is EventType.REFUND
            assert event.amount < 0
            assert event.transaction_id == f"{cash.charge}:refund:{cash.refunded}"
        assert len(mapped) <= 1

    # -- rules: delivery -----------------------------------------------------------------

    @precondition(lambda self: bool(self.delivered))
    @rule(n=PICK, k=PICK, stale=st.booleans())
    def out_of_order(self, n: int, k: int, stale: bool) -> None:
        """An event again, or an older state of a subscription after a newer one."""
        if stale and self.any_life(self.has_older):
            self.stale_snapshot(n, k)
        else:
            self.redeliver(n)

    def redeliver(self, n: int) -> None:
        """Stripe delivers an event again: the same answer, and Pulsora drops it."""
        payload, first = self.delivered[n % len(self.delivered)]
        seen = (dict(self.impact), dict(self.positive), dict(self.refunded))
        again = self.deliver(payload)
        assert again == first, f"redelivered: {_summary(first)}, then {_summary(again)}"
        assert (self.impact, self.positive, self.refunded) == seen

    @staticmethod
    def has_older(life: Life) -> bool:
        return any(created < life.newest for created, _, _ in life.snapshots)

    def stale_snapshot(self, n: int, k: int) -> None:
        """An older state of a subscription arrives after a newer one: it changes nothing.

        Stripe sends several events for one change (``.updated`` with ``.paused``,
        ``.resumed``, ``.trial_will_end``) and does not promise their order.
        """
        life = self.pick(n, self.has_older)
        older = [s for s in life.snapshots if s[0] < life.newest]
        created, kind, obj = older[k % len(older)]
        if obj["status"] == "paused":
            companion = "customer.subscription.paused"
        elif obj["status"] == "trialing":
            companion = "customer.subscription.trial_will_end"
        elif kind == "customer.subscription.deleted":
            companion = kind
        else:
            companion = "customer.subscription.updated"
        payload = envelope(
            companion, obj, id=self.next_id("evt"), created=created, shape=life.shape
        )
        note(f"stale: a {kind} of {life.id} @{created}, newest @{life.newest}")
        self.expect_nothing(self.deliver(payload), "a stale snapshot")

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def mrr_telescopes(self) -> None:
        for life in self.lives:
            total = self.impact.get(life.id, Decimal(0))
            assert total >= 0, f"{life.id}: the MRR reported is negative: {total}"
            assert total == life.settled, (
                f"{life.id}: the mrr_impact accepted add up to {total}; its MRR at the last "
                f"settling event is {life.settled}"
            )
            if life.ended:
                assert total == 0, f"{life.id} ended, yet {total} MRR is reported"

    @invariant()
    def cash_once(self) -> None:
        described = [cash for cash in self.cash if cash.described]
        for cash in described:
            got = self.positive.get(cash.payment, Decimal(0))
            assert got == self.net(cash), (
                f"payment {cash.payment} ({cash.gross} paid, {cash.tax} tax): "
                f"{got} reported, {self.net(cash)} is its revenue"
            )
        total = sum((self.net(cash) for cash in described), Decimal(0))
        assert sum(self.positive.values(), Decimal(0)) == total, (
            f"every payment once: {self.positive}"
        )

    @invariant()
    def refunds_net_out(self) -> None:
        for cash in self.cash:
            taken = -self.refunded.get(cash.charge, Decimal(0))
            if cash.payment != cash.intent:
                # The README's known limit: an invoice of API 2025-03-31 and later names
                # its PaymentIntent only in its (includable) payments, so its refund, which
                # names only the PaymentIntent, cannot be netted of tax: what was refunded.
                assert taken == major(cash.refunded, cash.currency), f"{cash.charge}: {taken}"
                continue
            revenue = self.net(cash)
            assert 0 <= taken <= revenue, f"{cash.charge}: {taken} refunded of {revenue}"
            if cash.refunded == cash.gross:
                assert taken == revenue, (
                    f"{cash.charge} refunded in full: {taken} taken back, {revenue} reported"
                )
            else:
                share = Fraction(cash.refunded * cash.revenue(self.include_tax), cash.gross)
                exact = Decimal(share.numerator) / Decimal(share.denominator)
                exact = exact.scaleb(-currency_exponent(cash.currency.upper()))
                assert abs(taken - exact) <= half_unit(cash.currency), (
                    f"{cash.charge}: {cash.refunded} of {cash.gross} refunded; "
                    f"{taken} taken back of {revenue}"
                )


# -- running it -------------------------------------------------------------------------

#: When the properties hold, at the thorough profile's 250 and 100 lives: some 15 s for
#: MemoryLedger, 9 s for each SQLiteLedger run (fewer lives: each is its own file); at
#: the quick profile's 12 and 5, a second or so. No shrinking: a stateful failure here can take
#: Hypothesis minutes to shrink, and the life it prints is already readable (each
#: event, with what it mapped to); the known limits have minimal examples below. Add
#: Phase.shrink when chasing a new one.
LIVES = settings(
    # The same lives on every run, so that CI is not a lottery: a generated life once
    # found an edge (fractional-cent daily prices under a coupon whose invoice discount
    # rounds to 0: the invoice's gross lines win over the snapshot's netted MRR) that
    # is noted on issue 16, not fixed. Search wider by hand with derandomize=False.
    derandomize=True,
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _lives(kind: str, backend: str, tmp_path: Path) -> type[StripeLives]:
    """The machine, with a fresh ledger of *kind* for each life, on *backend*."""
    files = itertools.count()

    class Lives(StripeLives):
        def __init__(self) -> None:
            ledger: Ledger = (
                MemoryLedger()
                if kind == "memory"
                else SQLiteLedger(tmp_path / f"l{next(files)}.sqlite")
            )
            super().__init__(ledger, backend)

    return Lives


@pytest.mark.parametrize(
    ("kind", "backend", "lives"),
    [
        pytest.param("memory", "asyncio", examples(50), id="MemoryLedger"),
        pytest.param("sqlite", "asyncio", examples(20), id="SQLiteLedger-asyncio"),
        # MemoryLedger never awaits anything: trio would run the same code. SQLiteLedger
        # hops to a worker thread through anyio, which trio does its own way.
        pytest.param("sqlite", "trio", examples(20), id="SQLiteLedger-trio"),
    ],
)
def test_stripe_lives(kind: str, backend: str, lives: int, tmp_path: Path) -> None:
    run_state_machine_as_test(
        _lives(kind, backend, tmp_path), settings=settings(LIVES, max_examples=lives)
    )


# -- examples: one subscription, step by step --------------------------------------------

PERIOD = (1_750_000_000, 1_752_592_000)  # 2025-06-15 to 2025-07-15


def _sub_event(
    kind: str,
    event_id: str,
    created: int,
    *,
    quantity: int = 1,
    pause: str | None = None,
    status: str = "active",
    coupon: Coupon | None = None,
    expanded: bool = True,
    interval: tuple[str, int] = ("month", 1),
    shape: Shape = "old",
) -> dict[str, Any]:
    """A ``customer.subscription.*`` event of ``sub_ex``: 20.00 a seat, every *interval*."""
    price = Price("price_ex", Decimal(2000), "usd", *interval)
    obj = subscription_object(
        id="sub_ex",
        customer="cus_ex",
        currency="usd",
        items=[Item("si_ex", price, quantity)],
        status=status,
        created=100,
        period=PERIOD,
        pause_behavior=pause,
        coupon=coupon,
        expanded_discounts=expanded,
    )
    return envelope(kind, obj, id=event_id, created=created, shape=shape)


def _invoice_event(
    event_id: str,
    created: int,
    reason: str,
    *,
    paid_at: int | None = None,
    quantity: int = 1,
    discount: int = 0,
    interval: tuple[str, int] = ("month", 1),
    period: tuple[int, int] = PERIOD,
    shape: Shape = "old",
    intent: str | None = None,
) -> dict[str, Any]:
    """``invoice.paid`` of ``sub_ex``, made at *created*: its seats for one period."""
    price = Price("price_ex", Decimal(2000), "usd", *interval)
    line = Line(
        f"il_{event_id}", price, quantity, 2000 * quantity, period, "si_ex", False, discount
    )
    obj = invoice_object(
        id=f"in_{event_id}",
        shape=shape,
        customer="cus_ex",
        currency="usd",
        reason=reason,
        lines=[line],
        created=created,
        payment_intent=intent or f"pi_{event_id}",
        subscription="sub_ex",
        subscription_metadata=ATTRIBUTION,
    )
    paid_at = created + 60 if paid_at is None else paid_at
    return envelope("invoice.paid", obj, id=event_id, created=paid_at, shape=shape)


def _through(ledger: Ledger, *events: dict[str, Any]) -> list[list[RevenueEvent]]:
    async def run() -> list[list[RevenueEvent]]:
        return [await stripe.to_revenue_events(e, ledger=ledger) for e in events]

    return anyio.run(run)


def _impacts(mapped: list[RevenueEvent]) -> list[Decimal | None]:
    return [e.mrr_impact for e in mapped]


def test_two_deliveries_racing_on_one_sqlite_file_report_the_change_once(tmp_path: Path) -> None:
    """Two workers, two ledger objects on one file, two events that settle one change."""

    async def race(path: Path) -> list[RevenueEvent]:
        async with SQLiteLedger(path) as one, SQLiteLedger(path) as other:
            for mapped in [
                await stripe.to_revenue_events(e, ledger=one)
                for e in (
                    _sub_event("customer.subscription.created", "evt_1", 100),
                    _invoice_event("evt_2", 100, "subscription_create"),
                    _sub_event("customer.subscription.updated", "evt_3", 200, quantity=3),
                )
            ][:2]:
                assert _impacts(mapped) in ([], [Decimal("20.00")])
            found: list[RevenueEvent] = []

            async def deliver(ledger: SQLiteLedger, event: dict[str, Any]) -> None:
                found.extend(await stripe.to_revenue_events(event, ledger=ledger))

            # 40.00 more MRR: either may carry it, never both.
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(
                    deliver, one, _invoice_event("evt_4", 300, "subscription_update", quantity=3)
                )
                tasks.start_soon(
                    deliver, other, _invoice_event("evt_5", 301, "subscription_cycle", quantity=3)
                )
            assert await one.reported("stripe:sub_ex") == Decimal("60.00")
            return found

    for n in range(25):
        found = anyio.run(race, tmp_path / f"race{n}.sqlite")
        assert len(found) == 2, found
        assert sorted(map(str, _impacts(found))) == ["40.00", "None"], _impacts(found)
        assert {e.transaction_id for e in found} == {"pi_evt_4", "pi_evt_5"}


# -- lives the machine once failed on: minimal, as regression tests ----------------------


@pytest.mark.parametrize(("seats", "then"), [(1, 3), (2, 1)])
def test_a_stale_pause_snapshot_settles_no_pending_change(seats: int, then: int) -> None:
    """The trial ends without a payment method: ``.updated`` and ``.paused`` (status paused).

    The ``.paused`` twin arrives late, after the customer paid and changed seats:
    it is stale. It must not settle the seat change: up (1 -> 3), the ledger
    marked it reported with nothing sent, and the next paid invoice carried no
    MRR; down (2 -> 1), it sent a "paused" churn for an active subscription.
    """
    paused = _sub_event(
        "customer.subscription.updated", "evt_2", 200, quantity=seats, status="paused"
    )
    mapped = _through(
        MemoryLedger(),
        _sub_event(
            "customer.subscription.created", "evt_1", 100, quantity=seats, status="trialing"
        ),
        paused,
        _sub_event("customer.subscription.updated", "evt_3", 300, quantity=seats),
        _invoice_event("evt_4", 300, "subscription_cycle", quantity=seats),
        _sub_event("customer.subscription.updated", "evt_5", 400, quantity=then),
        paused | {"id": "evt_6", "type": "customer.subscription.paused"},  # made at 200
        _invoice_event("evt_7", 500, "subscription_cycle", quantity=then),
    )
    assert mapped[:3] == [[], [], []]
    (first,), stale, (renewal,) = mapped[3], mapped[5], mapped[6]
    assert first.mrr_impact == 20 * seats
    assert stale == []
    assert renewal.mrr_impact == 20 * (then - seats)


@pytest.mark.parametrize("shape", ["old", "basil"])
def test_invoice_lines_do_not_undo_the_recurring_coupon(shape: Shape) -> None:
    """25 % off forever: the MRR is 15.00 as the subscription says, not 20.00.

    The subscription's discount is expanded (its MRR nets the coupon); the
    invoice's line says 20.00 with a discount amount of 5.00, made as late: it
    used to win.
    """
    coupon = Coupon("co_ex", "25", "forever")
    created, (first,) = _through(
        MemoryLedger(),
        _sub_event("customer.subscription.created", "evt_1", 100, coupon=coupon, shape=shape),
        _invoice_event("evt_2", 100, "subscription_create", discount=500, shape=shape),
    )
    assert created == []
    assert first.amount == Decimal("15.00")
    assert first.mrr_impact == Decimal("15.00")


def test_the_coupon_in_discount_counts_beside_discount_ids() -> None:
    """25 % off from t=200; the period's invoice was made at 150 and paid at 250.

    Its lines are older than the coupon, so the subscription's snapshot is the
    MRR: 15.00. It writes ``discount`` (with its coupon) and ``discounts:
    ["di_..."]``, as API versions before basil do; the coupon used to be missed.
    """
    coupon = Coupon("co_ex", "25", "forever")
    *_, (renewal,) = _through(
        MemoryLedger(),
        _sub_event("customer.subscription.created", "evt_1", 100),
        _invoice_event("evt_2", 100, "subscription_create"),
        _sub_event("customer.subscription.updated", "evt_3", 200, coupon=coupon, expanded=False),
        _invoice_event("evt_4", 150, "subscription_cycle", paid_at=250),
    )
    assert renewal.event_type is EventType.DOWNGRADE
    assert renewal.mrr_impact == Decimal("-5.00")


@pytest.mark.parametrize(
    ("interval", "start", "mrr"),
    [
        (("day", 14), datetime(2025, 3, 3, tzinfo=UTC), "43.45"),  # as 2 weeks: 43.33
        (("day", 31), datetime(2025, 1, 1, tzinfo=UTC), "19.62"),  # as 1 month: 20.00
        (("week", 4), datetime(2025, 1, 31, tzinfo=UTC), "21.67"),  # Jan 31-Feb 28: 20.00
    ],
)
def test_basil_lines_do_not_misread_day_and_week_prices(
    interval: tuple[str, int], start: datetime, mrr: str
) -> None:
    """A basil line has no interval, only a period; the subscription's price says it."""
    end = shifted(start, *interval)
    period = (int(start.timestamp()), int(end.timestamp()))
    created, (first,) = _through(
        MemoryLedger(),
        _sub_event("customer.subscription.created", "evt_1", 100, interval=interval, shape="basil"),
        _invoice_event(
            "evt_2", 100, "subscription_create", interval=interval, period=period, shape="basil"
        ),
    )
    assert created == []
    assert first.mrr_impact == Decimal(mrr)


# -- known limits, in docs/webhooks/stripe.md: a minimal life on which each fails -------


@pytest.mark.parametrize(
    ("status", "reason", "shape", "percent", "mrr"),
    [
        ("incomplete", "subscription_create", "basil", None, "20.00"),
        ("trialing", "subscription_cycle", "basil", None, "20.00"),
        ("trialing", "subscription_cycle", "old", "25", "15.00"),
    ],
)
def test_an_invoice_paid_before_its_activation_carries_the_mrr(
    status: str, reason: str, shape: Shape, percent: str | None, mrr: str
) -> None:
    """Paid, then active: Stripe sends ``invoice.paid`` and ``.updated`` in either order.

    Incomplete until its first invoice is paid, or a trial that converts: a
    paid invoice says the subscription bills, so the MRR its items bill (from
    the snapshot, when the lines do not say it exactly) rides on it. (It was
    reported only with the next paid invoice, a period later.)
    """
    coupon = None if percent is None else Coupon("co_ex", percent, "forever")
    off = 0 if percent is None else 2000 * int(percent) // 100
    mapped = _through(
        MemoryLedger(),
        _sub_event("customer.subscription.created", "evt_1", 100, status=status, coupon=coupon),
        _invoice_event("evt_2", 100, reason, paid_at=160, shape=shape, discount=off),
        _sub_event("customer.subscription.updated", "evt_3", 160, coupon=coupon),
    )
    (paid,) = mapped[1]
    assert paid.event_type is EventType.SUBSCRIPTION
    assert paid.mrr_impact == Decimal(mrr)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="known limit (docs/webhooks/stripe.md): a basil invoice without its (includable) "
    "payments is keyed by its id, its charge by the PaymentIntent: the refund is not scaled "
    "to the revenue",
)
def test_known_limit_k_refund_of_a_taxed_basil_invoice_takes_back_its_tax() -> None:
    """1.00 + 0.07 tax paid on a basil invoice, refunded in full: 1.00 comes back out."""
    price = Price("price_once", Decimal(100), "usd", None)
    invoice = invoice_object(
        id="in_once",
        shape="basil",
        customer="cus_ex",
        currency="usd",
        reason="manual",
        lines=[Line("il_once", price, 1, 100, (100, 100))],
        created=100,
        tax=7,
        metadata=ATTRIBUTION,
        base="zulip_basil_invoice_paid",
    )
    charge = refunded_charge_object(
        id="ch_once",
        payment_intent="pi_once",
        currency="usd",
        amount=107,
        refunded=107,
        customer="cus_ex",
        created=200,
        metadata=ATTRIBUTION,
    )
    (purchase,), (refund,) = _through(
        MemoryLedger(),
        envelope("invoice.paid", invoice, id="evt_1", created=100, shape="basil"),
        envelope(
            "charge.refunded", charge, id="evt_2", created=200, previous={"amount_refunded": 0}
        ),
    )
    assert purchase.amount == Decimal("1.00")
    assert refund.amount == -purchase.amount


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="known limit (docs/webhooks/stripe.md): a PaymentIntent knows no tax; arriving "
    "before its Checkout Session it fixes the payment's revenue at the gross",
)
def test_known_limit_l_payment_intent_before_its_taxed_checkout_counts_the_tax() -> None:
    """1.00 + 0.07 tax through Checkout; ``payment_intent.succeeded`` is delivered first."""
    intent = payment_intent_object(
        id="pi_once", currency="usd", amount=107, customer=None, created=100, metadata=ATTRIBUTION
    )
    session = checkout_session_object(
        id="cs_once",
        payment_intent="pi_once",
        currency="usd",
        total=107,
        tax=7,
        customer=None,
        created=100,
    )
    mapped = _through(
        MemoryLedger(),
        envelope("payment_intent.succeeded", intent, id="evt_1", created=100),
        envelope("checkout.session.completed", session, id="evt_2", created=100),
    )
    accepted = {(e.transaction_id, e.event_type): e.amount for m in mapped for e in reversed(m)}
    assert list(accepted.values()) == [Decimal("1.00")]

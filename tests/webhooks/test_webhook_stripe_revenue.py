"""Stripe revenue truth: tax, payments described twice, refunds, trials, pauses, the ledger."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsora_revenue import EventType
from pulsora_revenue.webhooks import MemoryLedger, Observation, SQLiteLedger, stripe

from ..conftest import ANYIO_BACKENDS, examples
from .test_webhook_stripe import (
    ATTRIBUTION,
    event,
    fixture,
    paid,
    paid_session,
    refunded_charge,
    subscription,
    subscription_invoice,
    through,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """One loop: mapping over a MemoryLedger (or none) awaits nothing a loop does its own way."""
    return "asyncio"


DAY = 86_400


def month_line(unit: int, quantity: int, start: int, end: int) -> dict[str, Any]:
    """An invoice line of the newer shape (2025-03-31.basil): a price id and a period."""
    line: dict[str, Any] = copy.deepcopy(fixture("zulip_basil_invoice_paid")["lines"]["data"][0])
    line.update(amount=unit * quantity, quantity=quantity, period={"start": start, "end": end})
    line["pricing"]["unit_amount_decimal"] = str(unit)
    line["parent"] = {
        "type": "subscription_item_details",
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": False,
            "proration_details": {"credited_items": None},
            "subscription": "sub_new",
            "subscription_item": "si_1",
        },
    }
    return line


@pytest.mark.parametrize(
    ("start", "end", "mrr"),
    [
        (1_706_659_200, 1_709_164_800, "20.00"),  # Jan 31 -> Feb 29 2024: one month (clamped)
        (1_709_164_800, 1_711_843_200, "20.00"),  # Feb 29 -> Mar 31: one month of a 31st anchor
        (1_704_067_200, 1_735_689_600, "1.67"),  # a year of 2024: 20.00 / 12
        (1_704_067_200, 1_704_067_200 + 14 * DAY, "43.33"),  # two weeks: 20.00 x 26 / 12
        (1_704_067_200, 1_704_067_200 + 10 * DAY, "60.83"),  # ten days: 20.00 x 36.5 / 12
    ],
)
async def test_newer_invoice_lines_take_their_interval_from_their_period(
    start: int, end: int, mrr: str
) -> None:
    invoice = subscription_invoice()
    invoice["lines"]["data"] = [month_line(2000, 1, start, end)]
    (first,) = await stripe.to_revenue_events(event("invoice.paid", invoice))
    assert first.mrr_impact == Decimal(mrr)


async def test_a_real_newer_invoice_of_invoice_items_is_a_purchase() -> None:
    invoice = fixture("zulip_basil_invoice_paid")  # recorded from Stripe by Zulip's tests

    async def lookup(customer_id: str) -> tuple[str, str]:
        return ("fp_1", "sess_1")

    (purchase,) = await stripe.to_revenue_events(event("invoice.paid", invoice), resolver=lookup)
    assert purchase.event_type is EventType.PURCHASE
    assert purchase.amount == Decimal("360.00")
    assert purchase.mrr_impact is None
    assert purchase.transaction_id == invoice["id"]  # no PaymentIntent named: the invoice's


@pytest.mark.parametrize(
    "reason", ["manual", "subscription_threshold", "subscription_update", "quote_accept"]
)
async def test_every_billing_reason_is_cash(reason: str) -> None:
    (cash,) = await stripe.to_revenue_events(event("invoice.paid", subscription_invoice(reason)))
    expected = {
        "subscription_threshold": EventType.RENEWAL,
        "subscription_update": EventType.UPGRADE,
    }
    assert cash.event_type is expected.get(reason, EventType.PURCHASE)
    assert cash.amount == Decimal("20.00")


def taxed_invoice(**changes: Any) -> dict[str, Any]:
    """A first invoice of 22.00 paid, 2.00 of it tax (the newer shape's ``total_taxes``)."""
    invoice = subscription_invoice(amount_paid=2200, total=2200, payment_intent="pi_inv")
    tax = {"amount": 200, "tax_behavior": "exclusive", "taxable_amount": 2000}
    invoice.update({"total_taxes": [tax], **changes})
    return invoice


async def test_tax_is_not_revenue() -> None:
    (first,) = await stripe.to_revenue_events(event("invoice.paid", taxed_invoice()))
    assert first.amount == Decimal("20.00")
    assert first.transaction_id == "pi_inv"
    older = taxed_invoice(total_taxes=None, tax=200)  # before 2025-03-31
    (first,) = await stripe.to_revenue_events(event("invoice.paid", older))
    assert first.amount == Decimal("20.00")


async def test_include_tax_counts_the_gross() -> None:
    mapped = await stripe.to_revenue_events(
        event("invoice.paid", taxed_invoice()), include_tax=True
    )
    assert mapped[0].amount == Decimal("22.00")
    session = paid_session(amount_total=1100, total_details={"amount_tax": 100})
    (gross,) = await stripe.to_revenue_events(
        event("checkout.session.completed", session), include_tax=True
    )
    assert gross.amount == Decimal("11.00")


async def test_a_part_paid_invoice_counts_its_share_of_the_tax() -> None:
    # 22.00 due, 11.00 of it from the customer's credit balance: half the tax was paid.
    (first,) = await stripe.to_revenue_events(
        event("invoice.paid", taxed_invoice(amount_paid=1100))
    )
    assert first.amount == Decimal("10.00")


async def test_checkout_tax_is_not_revenue() -> None:
    session = paid_session(amount_total=1100, total_details={"amount_tax": 100})
    (purchase,) = await stripe.to_revenue_events(event("checkout.session.completed", session))
    assert purchase.amount == Decimal("10.00")


def intent(**changes: Any) -> dict[str, Any]:
    found = fixture("basil_payment_intent")
    found.update(
        id="pi_123",
        amount=1100,
        amount_received=1100,
        currency="usd",
        customer="cus_QXg1o8vcGmoR32",
        status="succeeded",
        metadata=dict(ATTRIBUTION),
    )
    found.update(changes)
    return found


async def test_a_payment_intent_of_your_own_is_a_purchase() -> None:
    (purchase,) = await stripe.to_revenue_events(event("payment_intent.succeeded", intent()))
    assert purchase.event_type is EventType.PURCHASE
    assert (purchase.transaction_id, purchase.amount) == ("pi_123", Decimal("11.00"))


@pytest.mark.parametrize(
    "changes",
    [
        {"metadata": {}},  # no attribution: Checkout's or an invoice's, mapped by those
        {"invoice": "in_1"},  # before 2025-03-31: an invoice's
        {"metadata": dict(ATTRIBUTION), "payment_details": {"order_reference": "in_1"}},
        {"amount_received": 0},
    ],
)
async def test_payment_intents_of_others_map_to_nothing(changes: dict[str, Any]) -> None:
    assert (
        await stripe.to_revenue_events(event("payment_intent.succeeded", intent(**changes))) == []
    )


async def test_a_checkout_and_its_payment_intent_are_one_payment() -> None:
    session = paid_session(amount_total=1100, total_details={"amount_tax": 100})
    checkout = event("checkout.session.completed", session, id="evt_1")
    payment = event("payment_intent.succeeded", intent(), id="evt_2")
    for order in ((checkout, payment), (payment, checkout)):
        ledger = MemoryLedger()
        mapped = [e for each in order for e in await stripe.to_revenue_events(each, ledger=ledger)]
        assert {(e.transaction_id, e.event_type) for e in mapped} == {("pi_123", "purchase")}
        # The first description fixes the payment's revenue for the other one.
        assert mapped[0].amount == mapped[1].amount


@settings(max_examples=examples(60), deadline=None)
@given(
    gross=st.integers(3, 100_000),
    tax_percent=st.integers(0, 30),
    cuts=st.lists(st.integers(1, 99), max_size=4),
)
async def test_refunds_of_a_taxed_payment_net_its_revenue_exactly(
    gross: int, tax_percent: int, cuts: list[int]
) -> None:
    tax = gross * tax_percent // 100
    session = paid_session(amount_total=gross, total_details={"amount_tax": tax})
    ledger = MemoryLedger()
    (purchase,) = await stripe.to_revenue_events(
        event("checkout.session.completed", session), ledger=ledger
    )
    marks = [*sorted({gross * cut // 100 for cut in cuts} - {0}), gross]
    refunded, refunds = 0, []
    for mark in marks:
        charge = refunded_charge(mark) | {"amount": gross, "payment_intent": "pi_123"}
        payload = event("charge.refunded", charge, {"amount_refunded": refunded}, id=f"evt_{mark}")
        refunds += await stripe.to_revenue_events(payload, ledger=ledger)
        refunded = mark
    assert purchase.amount + sum(r.amount for r in refunds) == 0
    assert all(r.amount < 0 for r in refunds)


async def test_without_a_ledger_a_refund_takes_back_what_was_refunded() -> None:
    charge = refunded_charge(60)
    (refund,) = await stripe.to_revenue_events(
        event("charge.refunded", charge, {"amount_refunded": 0})
    )
    assert refund.amount == Decimal("-0.60")


def trialing() -> dict[str, Any]:
    sub = subscription()
    sub.update(status="trialing", trial_start=100, trial_end=1000)
    return sub


async def test_a_trial_starts_mrr_when_it_converts() -> None:
    active = subscription()
    mapped = await through(
        MemoryLedger(),
        event("customer.subscription.created", trialing(), id="evt_1", created=100),
        event("invoice.paid", paid(trialing(), "subscription_create", 0, 100), id="evt_2"),
        event("customer.subscription.updated", active, {"status": "trialing"}, id="evt_3"),
        event("invoice.paid", paid(active, "subscription_cycle", 2000, 1000), id="evt_4"),
        event("customer.subscription.deleted", active | {"status": "canceled"}, id="evt_5"),
    )
    assert mapped[:3] == [[], [], []]
    ((first,), (churn,)) = mapped[3:]
    assert (first.event_type, first.mrr_impact) == (EventType.SUBSCRIPTION, Decimal("20.00"))
    assert (churn.event_type, churn.mrr_impact) == (EventType.CHURN, Decimal("-20.00"))


async def test_a_trial_cancelled_in_its_trial_never_had_mrr() -> None:
    ended = trialing() | {"status": "canceled", "canceled_at": 500, "ended_at": 500}
    mapped = await through(
        MemoryLedger(),
        event("customer.subscription.created", trialing(), id="evt_1", created=100),
        event("customer.subscription.deleted", ended, id="evt_2", created=500),
    )
    assert mapped == [[], []]
    assert await stripe.to_revenue_events(event("customer.subscription.deleted", ended)) == []


async def test_cancel_at_period_end_is_churn_only_when_it_ends() -> None:
    sub = subscription()
    leaving = sub | {"cancel_at_period_end": True}
    *mapped, (churn,) = await through(
        MemoryLedger(),
        event("customer.subscription.created", sub, id="evt_1", created=100),
        event("invoice.paid", paid(sub, "subscription_create", 2000, 101), id="evt_2", created=101),
        event("customer.subscription.updated", leaving, id="evt_3", created=200),
        event("customer.subscription.deleted", leaving | {"status": "canceled"}, id="evt_4"),
    )
    assert mapped[2] == []
    assert churn.mrr_impact == Decimal("-20.00")


async def test_a_pause_is_a_churn_and_the_resumed_invoice_brings_the_mrr_back() -> None:
    sub = subscription()
    paused = sub | {"pause_collection": {"behavior": "void", "resumes_at": None}}
    ledger = MemoryLedger()
    mapped = await through(
        ledger,
        event("customer.subscription.created", sub, id="evt_1", created=100),
        event("invoice.paid", paid(sub, "subscription_create", 2000, 101), id="evt_2", created=101),
        event("customer.subscription.updated", paused, id="evt_3", created=200),
        event("customer.subscription.updated", paused, id="evt_4", created=250),  # still paused
        event("customer.subscription.updated", sub, id="evt_5", created=300),
        event("invoice.paid", paid(sub, "subscription_cycle", 2000, 400), id="evt_6", created=400),
    )
    (pause,) = mapped[2]
    assert (pause.event_type, pause.amount, pause.mrr_impact) == (
        EventType.CHURN,
        Decimal(0),
        Decimal("-20.00"),
    )
    assert pause.metadata == {"reason": "paused"}
    assert mapped[3] == mapped[4] == []
    (back,) = mapped[5]
    assert back.mrr_impact == Decimal("20.00")
    assert ledger.reported(f"stripe:{sub['id']}") == Decimal("20.00")


async def test_a_redelivered_event_maps_the_same_and_moves_nothing() -> None:
    sub, more = subscription(), subscription(quantity=2)
    ledger = MemoryLedger()
    renewal = event("invoice.paid", paid(more, "subscription_cycle", 4000, 300), id="evt_4")
    first = await through(
        ledger,
        event("customer.subscription.created", sub, id="evt_1", created=100),
        event("invoice.paid", paid(sub, "subscription_create", 2000, 101), id="evt_2", created=101),
        event("customer.subscription.updated", more, id="evt_3", created=200),
        renewal,
    )
    again = await through(ledger, renewal)
    assert again == first[3:]
    assert ledger.reported(f"stripe:{sub['id']}") == Decimal("40.00")


async def test_a_stale_snapshot_is_not_applied_again() -> None:
    sub = subscription()
    ledger = MemoryLedger()
    *_, (renewal,) = await through(
        ledger,
        event("customer.subscription.created", sub, id="evt_1", created=100),
        event("invoice.paid", paid(sub, "subscription_create", 2000, 101), id="evt_2", created=101),
        event("customer.subscription.updated", subscription(quantity=3), id="evt_4", created=300),
        event("customer.subscription.updated", subscription(quantity=5), id="evt_3", created=200),
        event("invoice.paid", paid(sub, "subscription_update", 500, 301), id="evt_5", created=301),
    )
    assert renewal.mrr_impact == Decimal("40.00")  # 3 seats, not the stale 5


@pytest.mark.parametrize("anyio_backend", ANYIO_BACKENDS)  # a worker thread, each loop its way
async def test_the_sqlite_ledger_remembers_across_restarts(tmp_path: Path) -> None:
    sub = subscription()
    created = event("customer.subscription.created", sub, id="evt_1", created=100)
    invoice = event("invoice.paid", paid(sub, "subscription_create", 2000, 101), id="evt_2")
    async with SQLiteLedger(tmp_path / "ledger.sqlite") as ledger:
        await through(ledger, created, invoice)
    async with SQLiteLedger(tmp_path / "ledger.sqlite") as ledger:
        again = await stripe.to_revenue_events(invoice, ledger=ledger)
        (churn,) = await stripe.to_revenue_events(
            event("customer.subscription.deleted", sub, id="evt_3", created=500), ledger=ledger
        )
        assert await ledger.reported(f"stripe:{sub['id']}") == 0
    assert again[0].mrr_impact == Decimal("20.00")  # the same answer as the first time
    assert churn.mrr_impact == Decimal("-20.00")


async def test_a_seeded_ledger_reports_only_what_changes_from_there() -> None:
    sub, more = subscription(), subscription(quantity=2)
    ledger = MemoryLedger()
    seeded = datetime(2023, 1, 1, tzinfo=UTC)  # before the events below
    await ledger.observe(
        Observation(
            f"stripe:{sub['id']}", "seed", seeded, Decimal("20.00"), settle=True, billing=True
        )
    )
    (renewal,), _, (upgrade,) = await through(
        ledger,
        event("invoice.paid", paid(sub, "subscription_cycle", 2000, 1_700_000_100), id="evt_1"),
        event("customer.subscription.updated", more, id="evt_2", created=1_700_000_200),
        event("invoice.paid", paid(more, "subscription_cycle", 4000, 1_700_000_300), id="evt_3"),
    )
    assert (renewal.event_type, renewal.mrr_impact) == (EventType.RENEWAL, None)
    assert (upgrade.event_type, upgrade.mrr_impact) == (EventType.UPGRADE, Decimal("20.00"))

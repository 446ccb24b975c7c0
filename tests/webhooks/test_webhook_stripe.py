"""Stripe events to revenue events, on the shapes of Stripe's own fixtures."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsora_revenue import EventType, RevenueEvent
from pulsora_revenue.webhooks import (
    Ledger,
    MemoryLedger,
    MissingAttributionError,
    WebhookPayloadError,
    stripe,
)

from ..conftest import examples

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """One loop: mapping over a MemoryLedger (or none) awaits nothing a loop does its own way."""
    return "asyncio"


FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def event(
    kind: str,
    obj: dict[str, Any],
    previous: dict[str, Any] | None = None,
    *,
    id: str = "evt_1",
    created: int = 1_700_000_000,
) -> dict[str, Any]:
    """Wrap *obj* in an event envelope, as Stripe sends it."""
    envelope = copy.deepcopy(fixture("event"))
    envelope.update(id=id, type=kind, created=created)
    envelope["data"] = {"object": obj}
    if previous is not None:
        envelope["data"]["previous_attributes"] = previous
    return envelope


def paid_session(**changes: Any) -> dict[str, Any]:
    session = fixture("checkout_session")
    session.update(
        payment_status="paid",
        status="complete",
        amount_total=4999,
        currency="usd",
        customer="cus_QXg1o8vcGmoR32",
        metadata=dict(ATTRIBUTION),
        payment_intent="pi_123",
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    )
    session.update(changes)
    return session


def subscription_invoice(reason: str = "subscription_create", **changes: Any) -> dict[str, Any]:
    invoice = fixture("invoice")
    invoice.update(
        billing_reason=reason,
        status="paid",
        amount_paid=2000,
        currency="usd",
        customer="cus_QXg1o8vcGmoR32",
        metadata={},
    )
    invoice["parent"] = {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {"metadata": dict(ATTRIBUTION), "subscription": "sub_new"},
    }
    invoice.update(changes)
    return invoice


def subscription(
    quantity: int = 1, unit_amount: int = 2000, interval: str = "month", count: int = 1
) -> dict[str, Any]:
    sub = fixture("subscription")
    sub.update(metadata=dict(ATTRIBUTION), status="active", pause_collection=None)
    sub.update(trial_start=None, trial_end=None, cancel_at_period_end=False)
    item = sub["items"]["data"][0]
    item["quantity"] = quantity
    item["price"].update(unit_amount=unit_amount, unit_amount_decimal=str(unit_amount))
    item["price"]["transform_quantity"] = None  # the fixture's is a placeholder
    item["price"]["recurring"].update(interval=interval, interval_count=count)
    return sub


def in_euros(sub: dict[str, Any], option: int | None) -> dict[str, Any]:
    """*sub* billed in EUR on its USD price, with that price's EUR amount as *option*."""
    sub["currency"] = "eur"
    if option is not None:
        euros = {"unit_amount": option, "unit_amount_decimal": str(option), "tiers": None}
        sub["items"]["data"][0]["price"]["currency_options"] = {"eur": euros}
    return sub


async def test_unmapped_events_give_nothing() -> None:
    assert await stripe.to_revenue_events(fixture("event")) == []  # plan.created
    assert await stripe.to_revenue_events(event("payment_intent.succeeded", {})) == []


async def test_checkout_fixture_as_sent_is_unpaid_so_nothing() -> None:
    assert (
        await stripe.to_revenue_events(
            event("checkout.session.completed", fixture("checkout_session"))
        )
        == []
    )


async def test_paid_checkout_is_a_purchase() -> None:
    (purchase,) = await stripe.to_revenue_events(
        event("checkout.session.completed", paid_session())
    )
    assert purchase.event_type is EventType.PURCHASE
    assert purchase.amount == Decimal("49.99")
    assert purchase.currency == "USD"
    assert purchase.transaction_id == "pi_123"  # the payment's canonical id
    assert purchase.metadata == {"stripe_checkout_session": paid_session()["id"]}
    assert purchase.customer_id == "cus_QXg1o8vcGmoR32"
    assert (purchase.visitor_fingerprint, purchase.session_id) == ("fp_browser", "sess_browser")
    assert purchase.payment_processor == "stripe"
    assert purchase.metadata == {"stripe_checkout_session": paid_session()["id"]}
    assert purchase.occurred_at is not None
    assert purchase.occurred_at.timestamp() == 1_700_000_000


@pytest.mark.parametrize(
    ("code", "minor", "amount"),
    [
        ("usd", 4999, "49.99"),
        ("jpy", 4999, "4999"),
        ("krw", 15000, "15000"),
        ("kwd", 4999, "4.999"),
        ("isk", 1000, "10.00"),
    ],
)
async def test_amounts_use_the_currency_exponent(code: str, minor: int, amount: str) -> None:
    session = paid_session(currency=code, amount_total=minor)
    (purchase,) = await stripe.to_revenue_events(event("checkout.session.completed", session))
    assert str(purchase.amount) == amount


async def test_subscription_mode_checkout_waits_for_the_invoice() -> None:
    session = paid_session(mode="subscription")
    assert await stripe.to_revenue_events(event("checkout.session.completed", session)) == []


async def test_a_redelivered_event_maps_to_the_same_transaction() -> None:
    first = await stripe.to_revenue_events(event("checkout.session.completed", paid_session()))
    again = await stripe.to_revenue_events(event("checkout.session.completed", paid_session()))
    assert first == again


async def test_missing_attribution_names_where_it_looked() -> None:
    session = paid_session(metadata={})
    with pytest.raises(MissingAttributionError) as info:
        await stripe.to_revenue_events(event("checkout.session.completed", session))
    message = str(info.value)
    assert "'visitor_fingerprint'" in message
    assert "data.object.metadata" in message
    assert "cus_QXg1o8vcGmoR32" in message


async def test_the_resolver_fills_in_attribution() -> None:
    asked: list[str] = []

    async def resolver(customer_id: str) -> tuple[str, str] | None:
        asked.append(customer_id)
        return ("fp_db", "sess_db")

    session = paid_session(metadata={})
    (purchase,) = await stripe.to_revenue_events(
        event("checkout.session.completed", session), resolver=resolver
    )
    assert asked == ["cus_QXg1o8vcGmoR32"]
    assert (purchase.visitor_fingerprint, purchase.session_id) == ("fp_db", "sess_db")


async def test_a_resolver_with_nothing_to_say() -> None:
    async def resolver(customer_id: str) -> tuple[str, str] | None:
        return None

    session = paid_session(metadata={})
    with pytest.raises(MissingAttributionError, match="the resolver had nothing"):
        await stripe.to_revenue_events(
            event("checkout.session.completed", session), resolver=resolver
        )


@pytest.mark.parametrize(
    "answer",
    [
        {"visitor_fingerprint": "fp_db", "session_id": "sess_db"},
        ("fp_db",),
        ("fp_db", "sess_db", "extra"),
        ("fp_db", 42),
        "fp_db",
    ],
)
async def test_a_resolver_answer_that_is_not_two_strings_is_a_type_error(answer: Any) -> None:
    async def lookup(customer_id: str) -> Any:
        return answer

    session = paid_session(metadata={})
    with pytest.raises(TypeError, match=r"The resolver .*lookup.* returned") as info:
        await stripe.to_revenue_events(
            event("checkout.session.completed", session), resolver=lookup
        )
    assert repr(answer)[:40] in str(info.value)


@pytest.mark.parametrize("answer", [("", ""), ("fp_db", "  ")])
async def test_a_resolver_answer_of_blank_ids_says_so(answer: tuple[str, str]) -> None:
    async def lookup(customer_id: str) -> tuple[str, str]:
        return answer

    session = paid_session(metadata={})
    with pytest.raises(ValueError, match=r"lookup.* returned blank ids"):
        await stripe.to_revenue_events(
            event("checkout.session.completed", session), resolver=lookup
        )


async def test_custom_attribution_keys() -> None:
    session = paid_session(metadata={"pulsora_fp": "fp_x", "pulsora_sid": "sid_x"})
    (purchase,) = await stripe.to_revenue_events(
        event("checkout.session.completed", session), keys=("pulsora_fp", "pulsora_sid")
    )
    assert purchase.visitor_fingerprint == "fp_x"


async def test_invoice_fixture_as_sent_is_manual_so_nothing() -> None:
    assert await stripe.to_revenue_events(event("invoice.paid", fixture("invoice"))) == []


async def test_first_invoice_is_a_subscription_newer_shape() -> None:
    (sub,) = await stripe.to_revenue_events(event("invoice.paid", subscription_invoice()))
    assert sub.event_type is EventType.SUBSCRIPTION
    assert sub.amount == Decimal("20.00")
    assert sub.customer_subscription_id == "sub_new"
    assert sub.is_recurring is True
    assert sub.mrr_impact is None  # newer invoice lines carry a price id, not its interval


async def test_first_invoice_older_shape_with_prices_gives_mrr() -> None:
    invoice = subscription_invoice(subscription="sub_old", parent=None, metadata=dict(ATTRIBUTION))
    line = invoice["lines"]["data"][0]
    line["price"] = {"unit_amount": 12000, "recurring": {"interval": "year", "interval_count": 1}}
    line["quantity"] = 1
    (sub,) = await stripe.to_revenue_events(event("invoice.paid", invoice))
    assert sub.customer_subscription_id == "sub_old"
    assert sub.mrr_impact == Decimal("10.00")


async def test_renewal_invoice() -> None:
    (renewal,) = await stripe.to_revenue_events(
        event("invoice.paid", subscription_invoice("subscription_cycle"))
    )
    assert renewal.event_type is EventType.RENEWAL
    assert renewal.mrr_impact is None


async def test_invoice_attribution_from_the_subscription_metadata_of_older_versions() -> None:
    invoice = subscription_invoice(parent=None, subscription="sub_old")
    invoice["subscription_details"] = {"metadata": dict(ATTRIBUTION)}
    (sub,) = await stripe.to_revenue_events(event("invoice.paid", invoice))
    assert sub.visitor_fingerprint == "fp_browser"


def older_invoice(price: dict[str, Any], **changes: Any) -> dict[str, Any]:
    invoice = subscription_invoice(subscription="sub_old", parent=None, metadata=dict(ATTRIBUTION))
    invoice["lines"]["data"][0].update(price=price, quantity=1, proration=False)
    invoice.update(changes)
    return invoice


@pytest.mark.parametrize(
    "lines",
    [
        None,
        {"object": "list", "data": [], "has_more": True},
        {"object": "list", "data": [], "has_more": False},
    ],
)
async def test_a_first_invoice_without_its_lines_has_no_mrr(lines: dict[str, Any] | None) -> None:
    invoice = subscription_invoice(subscription="sub_old", parent=None, metadata=dict(ATTRIBUTION))
    invoice["lines"] = lines
    (sub,) = await stripe.to_revenue_events(event("invoice.paid", invoice))
    assert sub.mrr_impact is None


async def test_a_first_invoice_with_only_a_prorated_line_has_no_mrr() -> None:
    price = subscription()["items"]["data"][0]["price"]
    invoice = older_invoice(price, amount_paid=1032)
    invoice["lines"]["data"][0]["proration"] = True  # anchored to a day: part of a month
    (sub,) = await stripe.to_revenue_events(event("invoice.paid", invoice))
    assert sub.mrr_impact is None


async def test_a_first_invoice_with_more_lines_than_sent_has_no_mrr() -> None:
    invoice = older_invoice(subscription()["items"]["data"][0]["price"])
    invoice["lines"]["has_more"] = True
    (sub,) = await stripe.to_revenue_events(event("invoice.paid", invoice))
    assert sub.mrr_impact is None


@pytest.mark.parametrize(("option", "mrr"), [(1800, Decimal("18.00")), (None, None)])
async def test_a_first_invoice_in_another_currency_than_its_price(
    option: int | None, mrr: Decimal | None
) -> None:
    price = in_euros(subscription(), option)["items"]["data"][0]["price"]
    (sub,) = await stripe.to_revenue_events(
        event("invoice.paid", older_invoice(price, currency="eur", amount_paid=1800))
    )
    assert (sub.currency, sub.amount, sub.mrr_impact) == ("EUR", Decimal("18.00"), mrr)


async def test_customer_id_from_the_subscription_metadata_an_invoice_carries() -> None:
    own = {**ATTRIBUTION, "customer_id": "user_42"}
    first = subscription_invoice()
    first["parent"]["subscription_details"]["metadata"] = own
    renewal = copy.deepcopy(first) | {"id": "in_2", "billing_reason": "subscription_cycle"}
    sub = subscription()
    sub["metadata"] = own
    mapped = [
        *await stripe.to_revenue_events(event("invoice.paid", first)),
        *await stripe.to_revenue_events(event("invoice.paid", renewal)),
        *await stripe.to_revenue_events(event("customer.subscription.deleted", sub)),
    ]
    assert [e.customer_id for e in mapped] == ["user_42"] * 3


async def test_customer_id_of_the_invoice_itself_comes_first() -> None:
    invoice = subscription_invoice(metadata={"customer_id": "user_invoice"})
    invoice["parent"]["subscription_details"]["metadata"] |= {"customer_id": "user_42"}
    (sub,) = await stripe.to_revenue_events(event("invoice.paid", invoice))
    assert sub.customer_id == "user_invoice"


async def test_a_free_trial_invoice_is_no_revenue() -> None:
    invoice = subscription_invoice(amount_paid=0)
    assert await stripe.to_revenue_events(event("invoice.paid", invoice)) == []


async def through(ledger: Ledger, *events: dict[str, Any]) -> list[list[RevenueEvent]]:
    """What each of *events* maps to, one after the other, with *ledger*."""
    return [await stripe.to_revenue_events(e, ledger=ledger) for e in events]


def paid(
    sub: dict[str, Any], reason: str, amount: int, created: int, **changes: Any
) -> dict[str, Any]:
    """A paid invoice of *sub*, made at *created* (its lines hide the MRR: *sub* says it)."""
    invoice = subscription_invoice(
        reason, id=f"in_{created}", amount_paid=amount, total=amount, created=created, **changes
    )
    invoice["parent"]["subscription_details"]["subscription"] = sub["id"]
    invoice["currency"] = sub["currency"]
    return invoice


async def test_more_seats_is_an_upgrade_on_the_invoice_that_charges_them() -> None:
    before, now = subscription(quantity=1), subscription(quantity=3)
    created, upgraded, nothing = await through(
        ledger := MemoryLedger(),
        event("customer.subscription.created", before, id="evt_1", created=100),
        event(
            "invoice.paid", paid(before, "subscription_create", 2000, 101), id="evt_2", created=101
        ),
        event(
            "customer.subscription.updated",
            now,
            {"items": before["items"]},
            id="evt_3",
            created=200,
        ),
    )
    assert (created, nothing) == ([], [])
    (first,) = upgraded
    assert (first.event_type, first.mrr_impact) == (EventType.SUBSCRIPTION, Decimal("20.00"))
    ((upgrade,),) = await through(
        ledger,
        event("invoice.paid", paid(now, "subscription_update", 2667, 201), id="evt_4", created=201),
    )
    assert upgrade.event_type is EventType.UPGRADE
    assert upgrade.amount == Decimal("26.67")  # the prorated charge: money paid, not MRR
    assert upgrade.mrr_impact == Decimal("40.00")
    assert upgrade.customer_subscription_id == now["id"]


async def test_a_cheaper_yearly_price_is_a_downgrade_at_the_next_invoice() -> None:
    monthly, yearly = (
        subscription(unit_amount=2000),
        subscription(unit_amount=12000, interval="year"),
    )
    *_, (downgrade,) = await through(
        MemoryLedger(),
        event("customer.subscription.created", monthly, id="evt_1", created=100),
        event(
            "invoice.paid", paid(monthly, "subscription_create", 2000, 101), id="evt_2", created=101
        ),
        event("customer.subscription.updated", yearly, id="evt_3", created=200),
        event(
            "invoice.paid", paid(yearly, "subscription_cycle", 12000, 300), id="evt_4", created=300
        ),
    )
    assert downgrade.event_type is EventType.DOWNGRADE
    assert downgrade.amount == Decimal("120.00")
    assert downgrade.mrr_impact == Decimal("-10.00")


async def test_without_a_ledger_subscription_updates_map_to_nothing() -> None:
    now, before = subscription(quantity=3), subscription(quantity=1)
    update = event("customer.subscription.updated", now, {"items": before["items"]})
    assert await stripe.to_revenue_events(update) == []
    assert (
        await stripe.to_revenue_events(
            event("customer.subscription.updated", subscription(quantity=2), {"quantity": 1})
        )
        == []
    )


async def test_updates_that_do_not_change_the_amount_give_nothing() -> None:
    same = subscription()
    ledger = MemoryLedger()
    for previous in (None, {"current_period_end": 1}, {"cancel_at_period_end": False}):
        update = event("customer.subscription.updated", same, previous)
        assert await stripe.to_revenue_events(update, ledger=ledger) == []


async def test_weekly_and_daily_prices_are_normalised_to_a_month() -> None:
    weekly = subscription(unit_amount=1000, interval="week")
    (churn,) = await stripe.to_revenue_events(event("customer.subscription.deleted", weekly))
    assert churn.mrr_impact == Decimal("-43.33")  # 10.00 x 52 / 12
    daily = subscription(unit_amount=100, interval="day")
    (churn,) = await stripe.to_revenue_events(event("customer.subscription.deleted", daily))
    assert churn.mrr_impact == Decimal("-30.42")  # 1.00 x 365 / 12


#: A month in each interval, exactly.
MONTHS_IN = {
    "day": Fraction(12, 365),
    "week": Fraction(12, 52),
    "month": Fraction(1),
    "year": Fraction(12),
}


@pytest.mark.parametrize(
    ("unit_amount", "interval", "count", "mrr"),
    [
        (1650, "day", 1, "501.88"),  # 50,187.5 cents a month: half to even, up
        (1638, "day", 1, "498.22"),  # 49,822.5 cents: half to even, down (not half up)
        (9999, "week", 6, "72.22"),  # 7,221.5 cents
        (2500, "year", 8, "0.26"),  # 26.041... cents
    ],
)
async def test_mrr_of_an_exact_half_is_rounded_half_to_even(
    unit_amount: int, interval: str, count: int, mrr: str
) -> None:
    sub = subscription(unit_amount=unit_amount, interval=interval, count=count)
    (churn,) = await stripe.to_revenue_events(event("customer.subscription.deleted", sub))
    assert churn.mrr_impact == -Decimal(mrr)


@settings(max_examples=examples(200), deadline=None)
@given(
    unit_amount=st.integers(1, 10**9),
    quantity=st.integers(1, 500),
    interval=st.sampled_from(sorted(MONTHS_IN)),
    count=st.integers(1, 12),
)
async def test_mrr_is_exact_until_rounded_once(
    unit_amount: int, quantity: int, interval: str, count: int
) -> None:
    sub = subscription(quantity, unit_amount, interval, count)
    (churn,) = await stripe.to_revenue_events(event("customer.subscription.deleted", sub))
    cents = round(Fraction(unit_amount * quantity) / (MONTHS_IN[interval] * count))
    assert churn.mrr_impact == -Decimal(cents).scaleb(-2)


@pytest.mark.parametrize("field", ["amount_total", "quantity"])
async def test_integers_too_long_for_money_are_payload_errors(field: str) -> None:
    if field == "amount_total":
        payload = event("checkout.session.completed", paid_session(amount_total=10**85))
    else:
        payload = event("customer.subscription.deleted", subscription(quantity=10**85))
    with pytest.raises(WebhookPayloadError):
        await stripe.to_revenue_events(payload)


@pytest.mark.parametrize(("rounding", "mrr"), [("up", "-30.00"), ("down", "-20.00")])
async def test_package_pricing_bills_whole_packages(rounding: str, mrr: str) -> None:
    sub = subscription(quantity=25, unit_amount=1000)  # 10.00 for each pack of 10 seats
    sub["items"]["data"][0]["price"]["transform_quantity"] = {"divide_by": 10, "round": rounding}
    (churn,) = await stripe.to_revenue_events(event("customer.subscription.deleted", sub))
    assert churn.mrr_impact == Decimal(mrr)


async def test_deleted_subscription_is_churn() -> None:
    (churn,) = await stripe.to_revenue_events(
        event("customer.subscription.deleted", subscription(quantity=2))
    )
    assert churn.event_type is EventType.CHURN
    assert churn.amount == 0
    assert churn.mrr_impact == Decimal("-40.00")


def refunded_charge(refunded: int) -> dict[str, Any]:
    charge = fixture("charge")
    charge.update(amount=100, amount_refunded=refunded, currency="usd", customer="cus_1")
    charge.update(payment_intent="pi_1", metadata=dict(ATTRIBUTION))
    return charge


async def test_partial_refunds_are_each_their_own_event() -> None:
    (first,) = await stripe.to_revenue_events(
        event("charge.refunded", refunded_charge(60), {"amount_refunded": 0})
    )
    (second,) = await stripe.to_revenue_events(
        event("charge.refunded", refunded_charge(100), {"amount_refunded": 60})
    )
    assert (first.amount, second.amount) == (Decimal("-0.60"), Decimal("-0.40"))
    assert first.event_type is EventType.REFUND
    assert first.transaction_id != second.transaction_id
    assert first.metadata == {
        "original_charge": refunded_charge(60)["id"],
        "stripe_payment_intent": "pi_1",
    }


async def test_refund_from_the_refund_list_when_no_previous_amount() -> None:
    charge = refunded_charge(100)
    charge["refunds"] = {"data": [{"amount": 25}, {"amount": 75}]}
    (refund,) = await stripe.to_revenue_events(event("charge.refunded", charge))
    assert refund.amount == Decimal("-0.25")


async def test_charge_fixture_as_sent_has_nothing_refunded() -> None:
    assert await stripe.to_revenue_events(event("charge.refunded", fixture("charge"))) == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s.update(amount_total=None), "data.object.amount_total"),
        (lambda s: s.update(amount_total="49.99"), "data.object.amount_total"),
        (lambda s: s.update(currency=None), "data.object.currency"),
        (lambda s: s.update(currency="xyz"), "data.object.currency"),
        (lambda s: s.update(id=None), "data.object.id"),
        (lambda s: s.update(metadata=["fp"]), "data.object.metadata"),
    ],
)
async def test_malformed_payloads_name_the_field(mutate: Any, field: str) -> None:
    session = paid_session()
    mutate(session)
    with pytest.raises(WebhookPayloadError) as info:
        await stripe.to_revenue_events(event("checkout.session.completed", session))
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize(
    "envelope",
    [
        {},
        {"type": 5},
        {"type": "invoice.paid"},
        {"type": "invoice.paid", "data": []},
        {"type": "invoice.paid", "data": {"object": None}},
    ],
)
async def test_malformed_envelopes(envelope: dict[str, Any]) -> None:
    with pytest.raises(WebhookPayloadError):
        await stripe.to_revenue_events(envelope)


async def test_a_list_instead_of_an_event() -> None:
    with pytest.raises(WebhookPayloadError, match="JSON object"):
        await stripe.to_revenue_events([])  # type: ignore[arg-type]


async def test_a_guest_checkout_and_its_refund_share_a_customer() -> None:
    session = paid_session(customer=None)
    (purchase,) = await stripe.to_revenue_events(event("checkout.session.completed", session))
    charge = refunded_charge(60) | {"customer": None, "payment_intent": "pi_123"}
    (refund,) = await stripe.to_revenue_events(
        event("charge.refunded", charge, {"amount_refunded": 0})
    )
    assert purchase.customer_id == refund.customer_id == "guest:pi_123"


async def test_a_delayed_payment_is_tracked_when_it_succeeds() -> None:
    pending = paid_session(payment_status="unpaid")
    assert await stripe.to_revenue_events(event("checkout.session.completed", pending)) == []
    (purchase,) = await stripe.to_revenue_events(
        event("checkout.session.async_payment_succeeded", paid_session())
    )
    assert purchase.transaction_id == "pi_123"


async def test_tiered_prices_have_no_mrr_rather_than_an_error() -> None:
    tiered = subscription()
    tiered["items"]["data"][0]["price"].update(unit_amount=None, unit_amount_decimal=None)
    (churn,) = await stripe.to_revenue_events(event("customer.subscription.deleted", tiered))
    assert churn.mrr_impact is None
    previous = {"items": subscription(quantity=5)["items"]}
    update = event("customer.subscription.updated", tiered, previous)
    assert await stripe.to_revenue_events(update, ledger=MemoryLedger()) == []


async def test_a_price_in_another_currency_counts_through_its_currency_options() -> None:
    (churn,) = await stripe.to_revenue_events(
        event("customer.subscription.deleted", in_euros(subscription(), 1800))
    )
    assert (churn.currency, churn.mrr_impact) == ("EUR", Decimal("-18.00"))
    now = in_euros(subscription(quantity=2), 1800)
    _, (upgrade,) = await through(
        MemoryLedger(),
        event("customer.subscription.created", now, id="evt_1", created=100),
        event("invoice.paid", paid(now, "subscription_create", 3600, 101), id="evt_2", created=101),
    )
    assert (upgrade.currency, upgrade.amount, upgrade.mrr_impact) == (
        "EUR",
        Decimal("36.00"),
        Decimal("36.00"),
    )


async def test_a_price_in_another_currency_without_an_option_has_no_mrr() -> None:
    (churn,) = await stripe.to_revenue_events(
        event("customer.subscription.deleted", in_euros(subscription(), None))
    )
    assert (churn.currency, churn.mrr_impact) == ("EUR", None)


async def test_quantity_zero_is_zero() -> None:
    (churn,) = await stripe.to_revenue_events(
        event("customer.subscription.deleted", subscription(quantity=0))
    )
    assert churn.mrr_impact == 0


async def test_absurd_amounts_are_payload_errors() -> None:
    session = paid_session(amount_total=10**33)
    with pytest.raises(WebhookPayloadError):
        await stripe.to_revenue_events(event("checkout.session.completed", session))

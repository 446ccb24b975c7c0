"""Lemon Squeezy events to revenue events, on the shapes of Lemon Squeezy's documented examples."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pulsora_revenue import EventType, RevenueEvent
from pulsora_revenue.webhooks import (
    Ledger,
    MalformedSignatureError,
    MemoryLedger,
    MissingAttributionError,
    MissingSignatureError,
    SignatureMismatchError,
    SQLiteLedger,
    WebhookPayloadError,
    lemonsqueezy,
)
from pulsora_revenue.webhooks.lemonsqueezy import Price

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures" / "lemonsqueezy"
REAL = sorted(FIXTURES.glob("*.json"))
PAYLOADS = {path.stem: json.loads(path.read_text()) for path in REAL}
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}
SECRET = "ls_signing_secret"
#: The fixtures' subscription bills price 1, 5 seats: 9.99 a seat a month.
PRICES = {1: Price(999, "USD", "month")}
#: HMAC-SHA256 of ``{"a":1}`` under SECRET, by ``openssl dgst -sha256 -hmac``.
OPENSSL = "de1bd430809025f2ac5dc7768a9dabe5f71c8cbca821001abfe1bf02fd635c76"


def fixture(name: str) -> dict[str, Any]:
    """A real payload, to change as a case needs."""
    loaded: dict[str, Any] = copy.deepcopy(PAYLOADS[f"pay_{name}"])
    return loaded


def with_attribution(envelope: dict[str, Any]) -> dict[str, Any]:
    envelope = copy.deepcopy(envelope)
    envelope["meta"]["custom_data"] = dict(ATTRIBUTION)
    return envelope


def subscription(status: str, updated_at: str, **fields: Any) -> dict[str, Any]:
    """The real subscription fixture, as it was at *updated_at*."""
    envelope = with_attribution(fixture("subscription_updated"))
    envelope["meta"]["event_name"] = fields.pop("event_name", "subscription_updated")
    envelope["data"]["attributes"].update(status=status, updated_at=updated_at, **fields)
    return envelope


def invoice(reason: str, updated_at: str, **fields: Any) -> dict[str, Any]:
    """The real subscription invoice fixture, paid for *reason* at *updated_at*."""
    envelope = with_attribution(fixture("subscription_payment_success"))
    envelope["data"]["id"] = f"{reason}-{updated_at}"
    envelope["data"]["attributes"].update(
        billing_reason=reason, created_at=updated_at, updated_at=updated_at, **fields
    )
    return envelope


async def resolver(customer_id: str) -> tuple[str, str] | None:
    return ("fp_db", "sess_db") if customer_id == "1" else None


async def mapped(envelope: dict[str, Any], **options: Any) -> list[RevenueEvent]:
    return await lemonsqueezy.to_revenue_events(envelope, resolver=resolver, **options)


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        yield MemoryLedger()
    else:
        async with SQLiteLedger(tmp_path / "ledger.sqlite") as sqlite:
            yield sqlite


# Signatures.


def test_a_valid_signature_returns_the_event() -> None:
    body = (FIXTURES / "pay_order_created.json").read_bytes()
    signature = lemonsqueezy.sign(body, SECRET)
    assert lemonsqueezy.verify(body, signature, SECRET) == json.loads(body)
    assert lemonsqueezy.verify(body.decode(), signature.upper(), SECRET) == json.loads(body)
    assert lemonsqueezy.verify(body, signature, ["old_secret", SECRET]) == json.loads(body)


def test_the_signature_is_hmac_sha256_hex_of_the_raw_body() -> None:
    assert lemonsqueezy.sign(b'{"a":1}', SECRET) == OPENSSL
    assert lemonsqueezy.verify(b'{"a":1}', OPENSSL, SECRET) == {"a": 1}


def test_a_tampered_body_or_wrong_secret_is_a_mismatch() -> None:
    body = (FIXTURES / "pay_order_created.json").read_bytes()
    signature = lemonsqueezy.sign(body, SECRET)
    with pytest.raises(SignatureMismatchError):
        lemonsqueezy.verify(body.replace(b"5899", b"5898"), signature, SECRET)
    with pytest.raises(SignatureMismatchError):
        lemonsqueezy.verify(body, signature, "another_secret")
    flipped = ("1" if signature[0] == "0" else "0") + signature[1:]
    with pytest.raises(SignatureMismatchError):
        lemonsqueezy.verify(body, flipped, SECRET)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_missing_signature(header: str | None) -> None:
    with pytest.raises(MissingSignatureError, match="X-Signature"):
        lemonsqueezy.verify(b"{}", header, SECRET)


@pytest.mark.parametrize(
    "header", ["sha256=abc", "zz" * 32, "ab" * 31, "ab" * 33, "t=1,v1=" + "ab" * 32]
)
def test_a_malformed_signature(header: str) -> None:
    with pytest.raises(MalformedSignatureError, match="64 hex digits"):
        lemonsqueezy.verify(b"{}", header, SECRET)


def test_wrong_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="payload"):
        lemonsqueezy.verify({"a": 1}, "ab" * 32, SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret"):
        lemonsqueezy.verify(b"{}", "ab" * 32, "")
    with pytest.raises(TypeError, match="secret"):
        lemonsqueezy.verify(b"{}", "ab" * 32, b"secret")  # type: ignore[arg-type]
    with pytest.raises(WebhookPayloadError):
        lemonsqueezy.verify(b"not json", lemonsqueezy.sign(b"not json", SECRET), SECRET)


# Every real payload.


@pytest.mark.parametrize("name", sorted(PAYLOADS))
@pytest.mark.parametrize("with_ledger", [False, True])
async def test_every_real_payload_maps(name: str, with_ledger: bool) -> None:
    envelope = copy.deepcopy(PAYLOADS[name])
    store = MemoryLedger() if with_ledger else None
    events = await mapped(envelope, ledger=store, prices=PRICES)
    again = await mapped(envelope, ledger=store, prices=PRICES)
    assert events == again  # a redelivery maps alike
    kinds = [e.event_type for e in events]
    expected = {
        "pay_order_created": [EventType.PURCHASE],
        "pay_subscription_created": [],
        "pay_subscription_updated": [],
        "pay_subscription_payment_success": [EventType.SUBSCRIPTION],
        "pay_subscription_payment_refunded": [EventType.REFUND],
    }
    assert kinds == expected[name]
    for event in events:
        assert event.payment_processor == "lemonsqueezy"
        assert (event.visitor_fingerprint, event.session_id) == ("fp_db", "sess_db")


async def test_an_order_is_a_purchase_net_of_tax() -> None:
    envelope = fixture("order_created")
    (purchase,) = await mapped(envelope)
    assert purchase.amount == Decimal("58.99")
    assert (purchase.currency, purchase.transaction_id) == ("USD", "orders:1")
    assert purchase.customer_id == "1"
    assert (purchase.mrr_impact, purchase.customer_subscription_id) == (None, None)
    assert purchase.occurred_at is not None
    assert purchase.occurred_at.isoformat() == "2023-01-17T12:26:23+00:00"

    envelope["data"]["attributes"].update(tax=1023, total=5899 + 1023)
    (taxed,) = await mapped(envelope)
    assert taxed.amount == Decimal("58.99")  # tax excluded by default
    (gross,) = await mapped(envelope, include_tax=True)
    assert gross.amount == Decimal("69.22")


@pytest.mark.parametrize(
    ("code", "total", "tax", "amount"),
    [("USD", 5899, 0, "58.99"), ("JPY", 1000, 100, "900"), ("KWD", 12345, 345, "12.000")],
)
async def test_amounts_by_the_currency_exponent(
    code: str, total: int, tax: int, amount: str
) -> None:
    envelope = fixture("order_created")
    envelope["data"]["attributes"].update(currency=code, total=total, tax=tax)
    (purchase,) = await mapped(envelope)
    assert purchase.currency == code
    assert purchase.amount == Decimal(amount)
    assert str(purchase.amount) == amount


async def test_an_unpaid_order_maps_to_nothing() -> None:
    envelope = fixture("order_created")
    envelope["data"]["attributes"]["status"] = "pending"
    assert await lemonsqueezy.to_revenue_events(envelope) == []


async def test_a_subscriptions_order_is_its_initial_invoice() -> None:
    envelope = fixture("order_created")
    envelope["data"]["attributes"]["first_order_item"]["price_id"] = 1
    assert await lemonsqueezy.to_revenue_events(envelope, prices=PRICES) == []
    refunded = copy.deepcopy(envelope)
    refunded["meta"]["event_name"] = "order_refunded"
    refunded["data"]["attributes"].update(status="refunded", refunded_amount=5899)
    assert await lemonsqueezy.to_revenue_events(refunded, prices=PRICES) == []
    # A one-time price, or no prices: a purchase.
    one_time = {1: Price(5899, "USD")}
    assert len(await mapped(envelope, prices=one_time)) == 1
    assert len(await mapped(envelope)) == 1


async def test_attribution_from_custom_data_then_the_resolver() -> None:
    (tagged,) = await lemonsqueezy.to_revenue_events(with_attribution(fixture("order_created")))
    assert (tagged.visitor_fingerprint, tagged.session_id) == ("fp_browser", "sess_browser")
    (resolved,) = await mapped(fixture("order_created"))
    assert (resolved.visitor_fingerprint, resolved.session_id) == ("fp_db", "sess_db")
    renamed = fixture("order_created")
    renamed["meta"]["custom_data"] = {"fp": "fp_custom", "sid": "sess_custom"}
    (keyed,) = await lemonsqueezy.to_revenue_events(renamed, keys=("fp", "sid"))
    assert (keyed.visitor_fingerprint, keyed.session_id) == ("fp_custom", "sess_custom")


async def test_no_attribution_anywhere() -> None:
    with pytest.raises(MissingAttributionError, match=r"meta\.custom_data"):
        await lemonsqueezy.to_revenue_events(fixture("order_created"))


async def test_a_malformed_payload_names_the_field() -> None:
    envelope = fixture("order_created")
    envelope["data"]["attributes"]["total"] = "58.99"
    with pytest.raises(WebhookPayloadError, match=r"data\.attributes\.total"):
        await mapped(envelope)
    envelope = fixture("order_created")
    envelope["data"]["attributes"]["currency"] = "XYZ"
    with pytest.raises(WebhookPayloadError, match=r"data\.attributes\.currency"):
        await mapped(envelope)


@pytest.mark.parametrize(
    ("reason", "kind", "recurring"),
    [
        ("initial", EventType.SUBSCRIPTION, True),
        ("renewal", EventType.RENEWAL, True),
        ("updated", EventType.UPGRADE, True),
        ("something_new", EventType.PURCHASE, False),
    ],
)
async def test_invoices_without_a_ledger(reason: str, kind: EventType, recurring: bool) -> None:
    paid_at = "2023-02-18T12:16:24Z"
    (paid,) = await mapped(invoice(reason, paid_at, tax=200, total=1199), prices=PRICES)
    assert (paid.event_type, paid.amount, paid.mrr_impact) == (kind, Decimal("9.99"), None)
    assert paid.customer_subscription_id == "1"
    assert paid.is_recurring is recurring
    assert paid.transaction_id == f"subscription-invoices:{reason}-2023-02-18T12:16:24Z"


async def test_a_life_with_a_ledger(ledger: Ledger) -> None:
    """Trial, first payment, more seats, renewal, cancel, expire: the MRR telescopes."""
    life = [
        subscription("on_trial", "2023-01-17T12:43:51Z", event_name="subscription_created"),
        subscription("active", "2023-01-24T12:43:48Z"),
        invoice("initial", "2023-01-24T12:43:49Z"),
        subscription(
            "active", "2023-02-01T00:00:00Z", first_subscription_item={"price_id": 1, "quantity": 8}
        ),
        invoice("renewal", "2023-02-24T12:43:49Z", subtotal=7992, total=7992),
        subscription("cancelled", "2023-03-01T00:00:00Z", event_name="subscription_cancelled"),
        subscription("expired", "2023-03-24T12:43:49Z", event_name="subscription_expired"),
    ]
    events = [e for envelope in life for e in await mapped(envelope, ledger=ledger, prices=PRICES)]
    assert [(e.event_type, e.amount, e.mrr_impact) for e in events] == [
        (EventType.SUBSCRIPTION, Decimal("9.99"), Decimal("49.95")),
        (EventType.UPGRADE, Decimal("79.92"), Decimal("29.97")),
        (EventType.CHURN, Decimal("0"), Decimal("-79.92")),
    ]
    assert events[-1].transaction_id == "subscriptions:1"
    assert sum(e.mrr_impact or 0 for e in events) == 0


async def test_a_yearly_price_is_normalised_to_a_month(ledger: Ledger) -> None:
    prices = {1: Price(12000, "USD", "year"), "2": Price(600, "USD", "week", 2)}
    await mapped(subscription("active", "2023-01-24T12:43:48Z"), ledger=ledger, prices=prices)
    (first,) = await mapped(
        invoice("initial", "2023-01-24T12:43:49Z"), ledger=ledger, prices=prices
    )
    assert first.mrr_impact == Decimal("50.00")  # 120.00 x 5 seats / 12
    item = {"price_id": 2, "quantity": 1}
    changed = subscription("active", "2023-02-01T00:00:00Z", first_subscription_item=item)
    await mapped(changed, ledger=ledger, prices=prices)
    (renewal,) = await mapped(
        invoice("renewal", "2023-02-24T12:43:49Z"), ledger=ledger, prices=prices
    )
    assert renewal.event_type is EventType.DOWNGRADE
    assert renewal.mrr_impact == Decimal("13.00") - Decimal("50.00")  # 6.00 / 2 weeks = 13.00


async def test_a_cancelled_subscription_bills_until_it_expires(ledger: Ledger) -> None:
    await mapped(subscription("active", "2023-01-24T12:43:48Z"), ledger=ledger, prices=PRICES)
    await mapped(invoice("initial", "2023-01-24T12:43:49Z"), ledger=ledger, prices=PRICES)
    cancelled = subscription(
        "cancelled", "2023-02-01T00:00:00Z", event_name="subscription_cancelled"
    )
    assert await mapped(cancelled, ledger=ledger, prices=PRICES) == []
    late = invoice("renewal", "2023-01-31T00:00:00Z")  # paid before, delivered after
    (paid,) = await mapped(late, ledger=ledger, prices=PRICES)
    assert (paid.event_type, paid.mrr_impact) == (EventType.RENEWAL, None)  # still billing
    resumed = subscription("active", "2023-02-02T00:00:00Z", event_name="subscription_resumed")
    assert await mapped(resumed, ledger=ledger, prices=PRICES) == []
    (renewal,) = await mapped(
        invoice("renewal", "2023-02-24T12:43:49Z"), ledger=ledger, prices=PRICES
    )
    assert (renewal.event_type, renewal.mrr_impact) == (EventType.RENEWAL, None)


async def test_a_late_older_snapshot_is_not_applied(ledger: Ledger) -> None:
    await mapped(subscription("active", "2023-01-24T12:43:48Z"), ledger=ledger, prices=PRICES)
    await mapped(invoice("initial", "2023-01-24T12:43:49Z"), ledger=ledger, prices=PRICES)
    expired = subscription("expired", "2023-03-24T00:00:00Z", event_name="subscription_expired")
    (churn,) = await mapped(expired, ledger=ledger, prices=PRICES)
    assert churn.mrr_impact == Decimal("-49.95")
    late = subscription("active", "2023-02-01T00:00:00Z")
    assert await mapped(late, ledger=ledger, prices=PRICES) == []
    assert await mapped(expired, ledger=ledger, prices=PRICES) == [churn]  # redelivered


async def test_expiry_without_a_ledger() -> None:
    expired = subscription(
        "expired", "2023-03-24T00:00:00Z", event_name="subscription_expired", trial_ends_at=None
    )
    (churn,) = await mapped(expired, prices=PRICES)
    assert (churn.event_type, churn.amount, churn.mrr_impact) == (
        EventType.CHURN,
        Decimal("0"),
        Decimal("-49.95"),
    )
    assert await mapped(expired) == []  # no price: nothing to subtract
    in_trial = subscription("expired", "2023-01-20T00:00:00Z", event_name="subscription_expired")
    assert await mapped(in_trial, prices=PRICES) == []  # it never billed
    pause = {"mode": "void", "resumes_at": None}
    paused = subscription("paused", "2023-03-01T00:00:00Z", trial_ends_at=None, pause=pause)
    paused["meta"]["event_name"] = "subscription_paused"
    (lost,) = await mapped(paused, prices=PRICES)
    assert lost.transaction_id == "subscriptions:1:paused:2023-03-01T00:00:00Z"
    assert lost.mrr_impact == Decimal("-49.95")
    expired["data"]["attributes"]["pause"] = pause
    assert await mapped(expired, prices=PRICES) == []  # lost at the pause


async def test_a_refund_nets_out_its_payment() -> None:
    (refund,) = await mapped(fixture("subscription_payment_refunded"), prices=PRICES)
    assert (refund.event_type, refund.amount) == (EventType.REFUND, Decimal("-9.99"))
    assert refund.transaction_id == "subscription-invoices:1:refund"
    assert refund.customer_subscription_id == "1"
    (paid,) = await mapped(fixture("subscription_payment_success"), prices=PRICES)
    assert paid.amount + refund.amount == 0


@pytest.mark.parametrize("with_prices", [True, False])
async def test_a_subscriptions_first_payment_and_its_refund_count_once(with_prices: bool) -> None:
    """Lemon Squeezy tells one first payment twice: as an order and as an initial invoice."""
    prices = PRICES if with_prices else None
    order = fixture("order_created")
    order["data"]["attributes"]["first_order_item"]["price_id"] = 1
    order["data"]["attributes"].update(total=999, subtotal=999, tax=0)
    order_refunded = copy.deepcopy(order)
    order_refunded["meta"]["event_name"] = "order_refunded"
    order_refunded["data"]["attributes"].update(status="refunded", refunded_amount=999)
    first = invoice("initial", "2023-02-18T12:16:24Z", total=999, subtotal=999, tax=0)
    first_refunded = copy.deepcopy(first)
    first_refunded["meta"]["event_name"] = "subscription_payment_refunded"
    first_refunded["data"]["attributes"].update(refunded=True, refunded_amount=999)
    told = [order, first, order_refunded, first_refunded]
    events = [e for envelope in told for e in await mapped(envelope, prices=prices)]
    assert sorted(e.amount for e in events) == [Decimal("-9.99"), Decimal("9.99")]
    (paid,) = [e for e in events if e.amount > 0]
    # With prices the invoice, which names the subscription, is the payment; else the order.
    kind = EventType.SUBSCRIPTION if with_prices else EventType.PURCHASE
    assert paid.event_type is kind


async def test_a_refund_is_net_of_tax_by_default() -> None:
    envelope = fixture("subscription_payment_refunded")  # a renewal's: its own payment
    envelope["data"]["attributes"].update(
        billing_reason="renewal", tax=200, total=1199, refunded_amount=1199
    )
    (refund,) = await mapped(envelope)
    assert refund.amount == Decimal("-9.99")
    (gross,) = await mapped(envelope, include_tax=True)
    assert gross.amount == Decimal("-11.99")


async def test_partial_refunds_add_up_with_a_ledger(ledger: Ledger) -> None:
    def refunded(amount: int, at: str) -> dict[str, Any]:
        envelope = fixture("subscription_payment_refunded")
        envelope["data"]["attributes"].update(
            billing_reason="renewal",  # a renewal's: its own payment
            tax=200,
            total=1199,
            refunded_amount=amount,
            updated_at=at,
            refunded_at=at,
        )
        return envelope

    first, second = refunded(600, "2023-02-01T00:00:00Z"), refunded(1199, "2023-02-02T00:00:00Z")
    (one,) = await mapped(first, ledger=ledger)
    (two,) = await mapped(second, ledger=ledger)
    assert await mapped(first, ledger=ledger) == [one]  # a redelivery: the same answer
    assert one.amount + two.amount == Decimal("-9.99")  # the whole payment, net of tax
    assert one.transaction_id != two.transaction_id
    # Delivered out of order, the older one adds nothing.
    other = MemoryLedger()
    (whole,) = await mapped(second, ledger=other)
    assert await mapped(first, ledger=other) == []
    assert whole.amount == Decimal("-9.99")


async def test_other_events_map_to_nothing() -> None:
    envelope = fixture("subscription_payment_success")
    envelope["meta"]["event_name"] = "subscription_payment_failed"
    assert await lemonsqueezy.to_revenue_events(envelope) == []
    envelope["meta"]["event_name"] = "license_key_created"
    assert await lemonsqueezy.to_revenue_events(envelope) == []


def test_price_from_the_api() -> None:
    api = {
        "type": "prices",
        "id": "1",
        "attributes": {
            "category": "subscription",
            "scheme": "package",
            "unit_price": 999,
            "renewal_interval_unit": "month",
            "renewal_interval_quantity": 3,
            "package_size": 10,
            "usage_aggregation": None,
        },
    }
    assert Price.from_api(api, "usd") == Price(999, "USD", "month", 3, 10)
    one_time = {"category": "one_time", "scheme": "standard", "unit_price": 500}
    assert Price.from_api(one_time, "EUR") == Price(500, "EUR")
    with pytest.raises(ValueError, match="graduated"):
        Price.from_api({"scheme": "graduated", "unit_price": 1}, "USD")
    with pytest.raises(ValueError, match="interval"):
        Price(100, "USD", "fortnight")
    with pytest.raises(ValueError, match="currency"):
        Price(100, "XYZ", "month")

"""Paddle Billing events to revenue events, on the shapes of Paddle's SDK fixtures."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pulsora_revenue import EventType
from pulsora_revenue.webhooks import MissingAttributionError, WebhookPayloadError, paddle

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures" / "paddle"
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}
CUSTOMER = "ctm_01hv6y1jedq4p1n0yqn5ba3ky4"


def data(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def event(kind: str, entity: dict[str, Any]) -> dict[str, Any]:
    """Wrap a notification entity in its envelope, as Paddle sends it."""
    return {
        "event_id": "evt_01hv8x2acma2gz4acmdnx2pvm2",
        "event_type": kind,
        "occurred_at": "2024-04-12T10:18:49.738971Z",
        "notification_id": "ntf_01hv8x2af1s6vdn0qzkhv1uyqh",
        "data": entity,
    }


async def resolver(customer_id: str) -> tuple[str, str] | None:
    return ("fp_db", "sess_db") if customer_id == CUSTOMER else None


async def test_first_transaction_of_a_subscription() -> None:
    (sub,) = await paddle.to_revenue_events(
        event("transaction.completed", data("transaction.completed")), resolver=resolver
    )
    assert sub.event_type is EventType.SUBSCRIPTION
    assert sub.amount == Decimal("652.15")  # grand_total "65215", minor units
    assert sub.currency == "USD"
    assert sub.mrr_impact == Decimal("400.00")  # 30.00 x 10 + 100.00; the one-off item is not MRR
    assert sub.customer_subscription_id == "sub_01hv8x29kz0t586xy6zn1a62ny"
    assert sub.transaction_id == data("transaction.completed")["id"]
    assert (sub.visitor_fingerprint, sub.session_id) == ("fp_db", "sess_db")
    assert sub.payment_processor == "paddle"
    assert sub.occurred_at is not None
    assert sub.occurred_at.isoformat() == "2024-04-12T10:18:49.738971+00:00"


async def test_attribution_from_custom_data() -> None:
    entity = data("transaction.completed") | {"custom_data": dict(ATTRIBUTION)}
    (sub,) = await paddle.to_revenue_events(event("transaction.completed", entity))
    assert sub.visitor_fingerprint == "fp_browser"


async def test_no_custom_data_and_no_resolver() -> None:
    with pytest.raises(MissingAttributionError, match=r"data\.custom_data"):
        await paddle.to_revenue_events(
            event("transaction.completed", data("transaction.completed"))
        )


async def test_a_transaction_without_subscription_is_a_purchase() -> None:
    entity = data("transaction.paid") | {"custom_data": dict(ATTRIBUTION)}
    (purchase,) = await paddle.to_revenue_events(event("transaction.completed", entity))
    assert purchase.event_type is EventType.PURCHASE
    assert purchase.mrr_impact is None
    assert purchase.customer_subscription_id is None


@pytest.mark.parametrize(
    ("origin", "kind"),
    [
        ("subscription_recurring", EventType.RENEWAL),
        ("subscription_charge", EventType.PURCHASE),
        ("subscription_update", None),
        ("subscription_payment_method_change", None),
    ],
)
async def test_origins(origin: str, kind: EventType | None) -> None:
    entity = data("transaction.completed") | {"origin": origin, "custom_data": dict(ATTRIBUTION)}
    mapped = await paddle.to_revenue_events(event("transaction.completed", entity))
    assert [e.event_type for e in mapped] == ([kind] if kind else [])


@pytest.mark.parametrize(
    ("code", "total", "amount"),
    [("JPY", "5000", "5000"), ("KWD", "5000", "5.000"), ("EUR", "5000", "50.00")],
)
async def test_amounts_use_the_currency_exponent(code: str, total: str, amount: str) -> None:
    entity = data("transaction.paid") | {"currency_code": code, "custom_data": dict(ATTRIBUTION)}
    entity["details"]["totals"]["grand_total"] = total
    (purchase,) = await paddle.to_revenue_events(event("transaction.completed", entity))
    assert str(purchase.amount) == amount


async def test_pending_refund_is_not_yet_revenue() -> None:
    for kind in ("adjustment.created", "adjustment.updated"):
        assert await paddle.to_revenue_events(event(kind, data(kind)), resolver=resolver) == []


async def test_approved_refund() -> None:
    entity = data("adjustment.updated") | {"status": "approved"}
    (refund,) = await paddle.to_revenue_events(
        event("adjustment.updated", entity), resolver=resolver
    )
    assert refund.event_type is EventType.REFUND
    assert refund.amount == Decimal("-1.00")
    assert refund.transaction_id == "adj_01hvgf2s84dr6reszzg29zbvcm"
    assert refund.metadata == {"original_transaction": "txn_01hvcc93znj3mpqt1tenkjb04y"}


async def test_created_and_updated_adjustments_are_one_transaction() -> None:
    created = data("adjustment.created") | {"status": "approved"}
    updated = data("adjustment.updated") | {"status": "approved"}
    (a,) = await paddle.to_revenue_events(event("adjustment.created", created), resolver=resolver)
    (b,) = await paddle.to_revenue_events(event("adjustment.updated", updated), resolver=resolver)
    assert a.dedup_key == b.dedup_key


async def test_credits_and_chargebacks_are_not_refunds() -> None:
    entity = data("adjustment.updated") | {"status": "approved", "action": "credit"}
    assert (
        await paddle.to_revenue_events(event("adjustment.updated", entity), resolver=resolver) == []
    )


async def test_canceled_subscription_is_churn() -> None:
    (churn,) = await paddle.to_revenue_events(
        event("subscription.canceled", data("subscription.canceled")), resolver=resolver
    )
    assert churn.event_type is EventType.CHURN
    assert churn.amount == 0
    assert churn.mrr_impact == Decimal("-950.00")  # 30.00 x 20 + 100.00 + 250.00


async def test_a_daily_price_of_an_exact_half_rounds_half_to_even() -> None:
    entity = data("subscription.canceled")
    entity["items"] = entity["items"][:1]
    entity["items"][0]["quantity"] = 1
    entity["items"][0]["price"]["unit_price"]["amount"] = "1650"  # 16.50 a day
    entity["items"][0]["price"]["billing_cycle"] = {"interval": "day", "frequency": 1}
    (churn,) = await paddle.to_revenue_events(
        event("subscription.canceled", entity), resolver=resolver
    )
    assert churn.mrr_impact == Decimal("-501.88")  # 50,187.5 cents a month, half to even


async def test_yearly_items_count_a_twelfth() -> None:
    entity = data("subscription.canceled")
    for item in entity["items"]:
        item["price"]["billing_cycle"] = {"interval": "year", "frequency": 1}
    (churn,) = await paddle.to_revenue_events(
        event("subscription.canceled", entity), resolver=resolver
    )
    assert churn.mrr_impact == Decimal("-79.17")  # 950.00 / 12, half to even


async def test_unmapped_events_give_nothing() -> None:
    for kind in ("transaction.paid", "subscription.created", "subscription.updated"):
        assert await paddle.to_revenue_events(event(kind, data("transaction.paid"))) == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda t: t["details"]["totals"].update(grand_total=652.15),
            "data.details.totals.grand_total",
        ),
        (
            lambda t: t["details"]["totals"].update(grand_total="65.215"),
            "data.details.totals.grand_total",
        ),
        (
            lambda t: t["details"]["totals"].update(grand_total=None),
            "data.details.totals.grand_total",
        ),
        (lambda t: t.update(currency_code="ABC"), "data.currency_code"),
        (lambda t: t.update(customer_id=None), "data.customer_id"),
        (lambda t: t["items"][0].update(quantity="ten"), "data.items[0].quantity"),
        (
            lambda t: t["items"][0]["price"].update(
                billing_cycle={"interval": "fortnight", "frequency": 1}
            ),
            "data.items[0].price.billing_cycle",
        ),
        (lambda t: t.update(details=None), "data.details"),
    ],
)
async def test_malformed_payloads_name_the_field(mutate: Any, field: str) -> None:
    entity = data("transaction.completed") | {"custom_data": dict(ATTRIBUTION)}
    mutate(entity)
    with pytest.raises(WebhookPayloadError) as info:
        await paddle.to_revenue_events(event("transaction.completed", entity))
    assert info.value.field == field


async def test_a_bad_occurred_at_is_named() -> None:
    envelope = event("transaction.completed", data("transaction.completed"))
    envelope["occurred_at"] = "yesterday"
    with pytest.raises(WebhookPayloadError, match="occurred_at"):
        await paddle.to_revenue_events(envelope, resolver=resolver)


async def test_a_localised_transaction_takes_mrr_in_its_own_currency() -> None:
    entity = data("transaction.completed") | {
        "currency_code": "EUR",
        "custom_data": dict(ATTRIBUTION),
    }
    lines = {line["price_id"]: line for line in entity["details"]["line_items"]}
    (sub,) = await paddle.to_revenue_events(event("transaction.completed", entity))
    if all(lines.get(i["price"]["id"]) for i in entity["items"] if i["price"]["billing_cycle"]):
        assert sub.mrr_impact is not None
        assert sub.currency == "EUR"
    entity["details"]["line_items"] = []
    (sub,) = await paddle.to_revenue_events(event("transaction.completed", entity))
    assert sub.mrr_impact is None  # the base price is in USD: the EUR amount is unknown


def localised_cancel(*overrides: dict[str, Any]) -> dict[str, Any]:
    """A cancelled subscription of 10 seats in EUR, on a USD price with *overrides*."""
    entity = data("subscription.canceled") | {"currency_code": "EUR"}
    entity["items"] = entity["items"][:1]
    entity["items"][0]["quantity"] = 10
    entity["items"][0]["price"]["unit_price_overrides"] = list(overrides)
    return entity


def override(amount: str, code: str) -> dict[str, Any]:
    return {"country_codes": ["DE"], "unit_price": {"amount": amount, "currency_code": code}}


@pytest.mark.parametrize(
    "overrides",
    [
        (override("2800", "EUR"), override("2500", "GBP")),
        (override("2800", "EUR"), override("2800", "EUR")),
    ],
)
async def test_a_localised_subscription_cancels_at_its_override_price(
    overrides: tuple[dict[str, Any], ...],
) -> None:
    entity = localised_cancel(*overrides)
    (churn,) = await paddle.to_revenue_events(
        event("subscription.canceled", entity), resolver=resolver
    )
    assert (churn.currency, churn.mrr_impact) == ("EUR", Decimal("-280.00"))


@pytest.mark.parametrize(
    "overrides",
    [(), (override("2500", "GBP"),), (override("2800", "EUR"), override("2700", "EUR"))],
)
async def test_a_localised_cancel_without_one_override_in_its_currency_has_no_mrr(
    overrides: tuple[dict[str, Any], ...],
) -> None:
    entity = localised_cancel(*overrides)
    (churn,) = await paddle.to_revenue_events(
        event("subscription.canceled", entity), resolver=resolver
    )
    assert churn.mrr_impact is None


async def test_a_resolver_answer_that_is_not_two_strings_is_a_type_error() -> None:
    async def lookup(customer_id: str) -> Any:
        return {"visitor_fingerprint": "fp_db", "session_id": "sess_db"}

    with pytest.raises(TypeError, match=r"lookup.*returned \{.visitor_fingerprint."):
        await paddle.to_revenue_events(
            event("subscription.canceled", data("subscription.canceled")), resolver=lookup
        )

"""Paddle Billing events to revenue events, on the shapes of Paddle's SDK fixtures."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
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
    SQLiteLedger,
    WebhookPayloadError,
    paddle,
)

from ..conftest import examples

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures" / "paddle"
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}
CUSTOMER = "ctm_01hv6y1jedq4p1n0yqn5ba3ky4"
SUB = "sub_01hv8x29kz0t586xy6zn1a62ny"
_ids = itertools.count(1)


def data(name: str) -> dict[str, Any]:
    """A fixture's entity (the ``data`` of an envelope, or the file itself)."""
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded["data"] if "event_type" in loaded else loaded


def event(kind: str, entity: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """Wrap a notification entity in its envelope, as Paddle sends it (a new event id)."""
    return {
        "event_id": event_id or f"evt_{next(_ids):026d}",
        "event_type": kind,
        "occurred_at": "2024-04-12T10:18:49.738971Z",
        "notification_id": "ntf_01hv8x2af1s6vdn0qzkhv1uyqh",
        "data": entity,
    }


async def resolver(customer_id: str) -> tuple[str, str] | None:
    return ("fp_db", "sess_db") if customer_id == CUSTOMER else None


async def no_resolver(customer_id: str) -> tuple[str, str] | None:
    raise AssertionError(f"asked about {customer_id}, for an event that maps to nothing")


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        yield MemoryLedger()
    else:
        async with SQLiteLedger(tmp_path / "ledger.sqlite") as sqlite:
            yield sqlite


async def mapped(kind: str, entity: dict[str, Any], **options: Any) -> list[RevenueEvent]:
    return await paddle.to_revenue_events(event(kind, entity), resolver=resolver, **options)


def txn(origin: str, *, at: str, grand_total: str = "30000", tax: str = "0") -> dict[str, Any]:
    """The subscription's transaction of *origin*, updated *at*, paying *grand_total*."""
    entity = data("transaction.completed") | {"origin": origin, "updated_at": at, "id": f"txn_{at}"}
    entity["details"]["totals"].update(grand_total=grand_total, tax=tax, grand_total_tax=tax)
    return entity


FIRST = ("transaction.completed", "transaction.completed")  # 400.00, at 10:18


def at(name: str, updated_at: str, **fields: Any) -> dict[str, Any]:
    """A subscription fixture of *SUB*, as it was at *updated_at*."""
    return data(name) | {"id": SUB, "updated_at": updated_at, **fields}


async def test_first_transaction_of_a_subscription() -> None:
    (sub,) = await mapped("transaction.completed", data("transaction.completed"))
    assert sub.event_type is EventType.SUBSCRIPTION
    assert sub.amount == Decimal("599.00")  # grand_total 652.15 less tax 53.15
    assert sub.currency == "USD"
    assert sub.mrr_impact == Decimal("400.00")  # 30.00 x 10 + 100.00; the one-off item is not MRR
    assert sub.customer_subscription_id == SUB
    assert sub.transaction_id == data("transaction.completed")["id"]
    assert (sub.visitor_fingerprint, sub.session_id) == ("fp_db", "sess_db")
    assert sub.payment_processor == "paddle"
    assert sub.is_recurring is True
    assert sub.occurred_at is not None
    assert sub.occurred_at.isoformat() == "2024-04-12T10:18:49.738971+00:00"


async def test_include_tax_counts_the_grand_total() -> None:
    (sub,) = await mapped("transaction.completed", data("transaction.completed"), include_tax=True)
    assert (sub.amount, sub.mrr_impact) == (Decimal("652.15"), Decimal("400.00"))


async def test_a_discounted_transaction_is_net_of_discounts_and_tax() -> None:
    entity = data("sdk_transaction.billed.discount") | {"custom_data": dict(ATTRIBUTION)}
    (purchase,) = await mapped("transaction.completed", entity)
    assert purchase.amount == Decimal("25379.10")  # 28,199.00 less 2,819.90 discount, no tax
    entity["subscription_id"] = SUB
    (sub,) = await mapped("transaction.completed", entity)
    assert sub.mrr_impact == Decimal("2100.00")  # (22,500.00 + 2,700.00) a year, net of 10 %


async def test_credit_spent_on_a_transaction_lowers_its_amount() -> None:
    entity = data("transaction.completed")
    entity["details"]["totals"].update(credit="10000", grand_total="55215", grand_total_tax="4500")
    (sub,) = await mapped("transaction.completed", entity)
    assert sub.amount == Decimal("507.15")  # what was paid, less the tax in it


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
    assert (purchase.mrr_impact, purchase.customer_subscription_id) == (None, None)
    assert purchase.is_recurring is None


@pytest.mark.parametrize(
    ("origin", "kind", "mrr", "recurring"),
    [
        ("web", EventType.SUBSCRIPTION, Decimal("400.00"), True),
        ("api", EventType.SUBSCRIPTION, Decimal("400.00"), True),
        ("subscription_recurring", EventType.RENEWAL, None, True),
        ("subscription_update", EventType.UPGRADE, None, True),
        ("subscription_charge", EventType.PURCHASE, None, False),
        ("subscription_payment_method_change", EventType.PURCHASE, None, False),
    ],
)
async def test_every_origin_without_a_ledger(
    origin: str, kind: EventType, mrr: Decimal | None, recurring: bool
) -> None:
    entity = data("transaction.completed") | {"origin": origin}
    (mapped_event,) = await mapped("transaction.completed", entity)
    assert mapped_event.event_type is kind
    assert (mapped_event.amount, mapped_event.mrr_impact) == (Decimal("599.00"), mrr)
    assert mapped_event.is_recurring is recurring


GROWN = ("subscription.updated", "sdk_subscription.updated")  # 950.00 from 10:49


@pytest.mark.parametrize(
    ("before", "origin", "kind", "mrr"),
    [
        ([], "web", EventType.SUBSCRIPTION, Decimal("400.00")),
        ([], "api", EventType.SUBSCRIPTION, Decimal("400.00")),
        ([FIRST], "subscription_recurring", EventType.RENEWAL, None),
        ([FIRST, GROWN], "subscription_update", EventType.UPGRADE, Decimal("550.00")),
        ([FIRST], "subscription_update", EventType.UPGRADE, None),  # no snapshot seen yet
        ([FIRST], "subscription_charge", EventType.PURCHASE, None),
        ([FIRST, GROWN], "subscription_charge", EventType.UPGRADE, Decimal("550.00")),
    ],
)
async def test_every_origin_with_a_ledger(
    before: list[tuple[str, str]], origin: str, kind: EventType, mrr: Decimal | None, ledger: Ledger
) -> None:
    for earlier, name in before:
        await mapped(earlier, data(name), ledger=ledger)
    (mapped_event,) = await mapped(
        "transaction.completed", txn(origin, at="2024-04-12T11:00Z"), ledger=ledger
    )
    assert (mapped_event.event_type, mapped_event.mrr_impact) == (kind, mrr)
    assert mapped_event.amount == Decimal("300.00")


async def test_a_renewal_with_a_ledger(ledger: Ledger) -> None:
    first = await mapped("transaction.completed", data("transaction.completed"), ledger=ledger)
    renewal = txn("subscription_recurring", at="2024-05-12T10:18:49Z", grand_total="40000")
    (again,) = await mapped("transaction.completed", renewal, ledger=ledger)
    assert [(e.event_type, e.mrr_impact) for e in [*first, again]] == [
        (EventType.SUBSCRIPTION, Decimal("400.00")),
        (EventType.RENEWAL, None),
    ]


async def test_real_recurring_transactions() -> None:
    (gbp,) = await mapped(
        "transaction.completed",
        data("sdk_event_transaction.completed.subscription_recurring")
        | {"custom_data": dict(ATTRIBUTION)},
    )
    assert (gbp.event_type, gbp.currency, gbp.amount) == (EventType.RENEWAL, "GBP", Decimal(550))


@pytest.mark.parametrize(
    ("code", "total", "amount"),
    [("JPY", "5000", "5000"), ("KWD", "5000", "5.000"), ("EUR", "5000", "50.00")],
)
async def test_amounts_use_the_currency_exponent(code: str, total: str, amount: str) -> None:
    entity = data("transaction.paid") | {"currency_code": code, "custom_data": dict(ATTRIBUTION)}
    entity["details"]["totals"].update(grand_total=total, grand_total_tax="0")
    (purchase,) = await paddle.to_revenue_events(event("transaction.completed", entity))
    assert str(purchase.amount) == amount


async def test_a_transaction_of_nothing_is_no_event_but_the_ledger_sees_it(ledger: Ledger) -> None:
    await mapped("transaction.completed", data("transaction.completed"), ledger=ledger)
    grown = at("sdk_subscription.updated", "2024-04-20T00:00Z")  # 950.00, not paid for yet
    assert await mapped("subscription.updated", grown, ledger=ledger) == []
    credit = txn("subscription_update", at="2024-04-20T00:00:01Z", grand_total="0")
    assert await mapped("transaction.completed", credit, ledger=ledger) == []
    charge = txn("subscription_charge", at="2024-04-21T00:00Z", grand_total="5000")
    (paid,) = await mapped("transaction.completed", charge, ledger=ledger)
    assert (paid.event_type, paid.mrr_impact) == (EventType.UPGRADE, Decimal("550.00"))


async def test_the_issue_s_plan_change_then_cancellation_nets_zero(ledger: Ledger) -> None:
    """400.00 -> 950.00 (10 -> 20 seats, plus an add-on), then cancelled: MRR nets 0."""
    life = [
        ("transaction.completed", data("transaction.completed")),  # +400.00
        ("subscription.updated", data("sdk_subscription.updated")),  # 950.00, 10:49
        ("transaction.completed", txn("subscription_update", at="2024-04-12T10:49:40Z")),
        ("subscription.canceled", data("subscription.canceled")),  # 11:24
    ]
    events = [e for kind, entity in life for e in await mapped(kind, entity, ledger=ledger)]
    assert [(e.event_type, e.mrr_impact) for e in events] == [
        (EventType.SUBSCRIPTION, Decimal("400.00")),
        (EventType.UPGRADE, Decimal("550.00")),  # the proration, 300.00, carries the change
        (EventType.CHURN, Decimal("-950.00")),
    ]
    without_the_proration, other = [life[0], life[1], life[3]], MemoryLedger()
    changes = [
        e.mrr_impact
        for kind, entity in without_the_proration
        for e in await mapped(kind, entity, ledger=other)
    ]
    assert changes == [Decimal("400.00"), Decimal("-400.00")]


async def test_without_a_ledger_the_plan_change_is_not_seen() -> None:
    first = await mapped("transaction.completed", data("transaction.completed"))
    assert await mapped("subscription.updated", data("sdk_subscription.updated")) == []
    churn = await mapped("subscription.canceled", data("subscription.canceled"))
    assert sum(e.mrr_impact or 0 for e in [*first, *churn]) == Decimal("-550.00")  # the limit


async def test_a_trial_cancelled_in_its_trial_is_nothing(ledger: Ledger | None) -> None:
    trial = at("sdk_subscription.trialing", "2024-04-12T11:30:29Z")
    cancelled = at(
        "subscription.canceled", "2024-04-13T00:00Z", first_billed_at=None, customer_id="ctm_x"
    )
    for chosen in (ledger, None):
        for kind, entity in (
            ("subscription.trialing", trial),
            ("subscription.canceled", cancelled),
        ):
            envelope = event(kind, entity)
            assert (
                await paddle.to_revenue_events(envelope, resolver=no_resolver, ledger=chosen) == []
            )


async def test_a_trial_converts_at_its_first_payment(ledger: Ledger) -> None:
    trial = at("sdk_subscription.trialing", "2024-04-12T11:30Z")
    assert await mapped("subscription.trialing", trial, ledger=ledger) == []
    active = at("sdk_subscription.activated", "2024-04-26T11:30Z")
    assert await mapped("subscription.activated", active, ledger=ledger) == []
    first = txn("subscription_recurring", at="2024-04-26T11:30:02Z", grand_total="40000")
    (paid,) = await mapped("transaction.completed", first, ledger=ledger)
    assert (paid.event_type, paid.mrr_impact) == (EventType.SUBSCRIPTION, Decimal("400.00"))


async def test_paused_resumed_renewed(ledger: Ledger) -> None:
    life = [
        ("transaction.completed", data("transaction.completed")),  # +400.00
        ("subscription.paused", data("sdk_subscription.paused")),  # -400.00
        ("subscription.resumed", data("sdk_subscription.resumed")),  # 400.00, not paid yet
        ("transaction.completed", txn("subscription_recurring", at="2024-04-12T12:45Z")),
    ]
    events = [e for kind, entity in life for e in await mapped(kind, entity, ledger=ledger)]
    assert [(e.event_type, e.mrr_impact, e.transaction_id) for e in events] == [
        (EventType.SUBSCRIPTION, Decimal("400.00"), data("transaction.completed")["id"]),
        (EventType.CHURN, Decimal("-400.00"), f"{SUB}:paused:2024-04-12T12:43:43.214000Z"),
        (EventType.SUBSCRIPTION, Decimal("400.00"), "txn_2024-04-12T12:45Z"),
    ]
    assert events[1].metadata == {"reason": "paused"}


async def test_a_pause_delivered_after_the_resume_loses_no_mrr(ledger: Ledger) -> None:
    life = [
        ("transaction.completed", data("transaction.completed")),  # +400.00
        ("subscription.paused", data("sdk_subscription.paused")),  # -400.00
        ("subscription.resumed", data("sdk_subscription.resumed")),  # 400.00, not paid yet
        ("subscription.updated", data("sdk_subscription.paused")),  # the pause again, late
        ("transaction.completed", txn("subscription_charge", at="2024-04-12T13:00Z")),
    ]
    events = [e for kind, entity in life for e in await mapped(kind, entity, ledger=ledger)]
    assert sum(e.mrr_impact or 0 for e in events) == Decimal("400.00")


async def test_a_paused_subscription_without_a_ledger_churns() -> None:
    paused = data("node_subscription.paused") | {"custom_data": dict(ATTRIBUTION)}
    (churn,) = await mapped("subscription.paused", paused)
    assert (churn.event_type, churn.amount, churn.mrr_impact) == (
        EventType.CHURN,
        Decimal(0),
        Decimal("-432.00"),  # 32.40 x 10 + 108.00: its items are inactive, but they billed
    )
    assert await mapped("subscription.resumed", data("node_subscription.resumed")) == []


async def test_an_older_snapshot_is_not_applied_again(ledger: Ledger) -> None:
    await mapped("transaction.completed", data("transaction.completed"), ledger=ledger)  # 400.00
    await mapped("subscription.updated", data("sdk_subscription.updated"), ledger=ledger)  # 950
    stale = data("sdk_subscription.activated")  # 400.00, from 10:18
    assert await mapped("subscription.activated", stale, ledger=ledger) == []
    charge = txn("subscription_charge", at="2024-04-13T00:00Z")
    (paid,) = await mapped("transaction.completed", charge, ledger=ledger)
    assert (paid.event_type, paid.mrr_impact) == (EventType.UPGRADE, Decimal("550.00"))


async def test_a_redelivered_notification_maps_to_the_same_events(ledger: Ledger) -> None:
    life = [
        event("transaction.completed", data("transaction.completed")),
        event("subscription.updated", data("sdk_subscription.updated")),
        event("transaction.completed", txn("subscription_update", at="2024-04-12T10:49:40Z")),
        event("subscription.canceled", data("subscription.canceled")),
    ]
    first = [await paddle.to_revenue_events(e, resolver=resolver, ledger=ledger) for e in life]
    again = [await paddle.to_revenue_events(e, resolver=resolver, ledger=ledger) for e in life]
    assert again == first
    assert sum(1 for events in first for _ in events) == 3


async def test_snapshots_with_a_ledger_emit_nothing_and_need_no_attribution(
    ledger: Ledger,
) -> None:
    for name in (
        "sdk_subscription.created",
        "sdk_subscription.updated",
        "node_subscription.trialing",
    ):
        envelope = event("subscription.updated", data(name))
        assert await paddle.to_revenue_events(envelope, ledger=ledger, resolver=no_resolver) == []


async def test_pending_refund_is_not_yet_revenue() -> None:
    for kind in ("adjustment.created", "adjustment.updated"):
        assert await paddle.to_revenue_events(event(kind, data(kind)), resolver=no_resolver) == []


async def test_approved_refund_excludes_tax() -> None:
    entity = data("adjustment.updated") | {"status": "approved"}
    (refund,) = await mapped("adjustment.updated", entity)
    assert refund.event_type is EventType.REFUND
    assert refund.amount == Decimal("-0.92")  # total 1.00 less tax 0.08
    assert refund.transaction_id == "adj_01hvgf2s84dr6reszzg29zbvcm"
    assert refund.metadata == {"original_transaction": "txn_01hvcc93znj3mpqt1tenkjb04y"}
    (gross,) = await mapped("adjustment.updated", entity, include_tax=True)
    assert gross.amount == Decimal("-1.00")


async def test_a_full_refund_nets_its_payment_out() -> None:
    payment = data("transaction.completed")
    adjustment = data("adjustment.updated") | {
        "status": "approved",
        "transaction_id": payment["id"],
    }
    adjustment["totals"].update(subtotal="59900", tax="5315", total="65215")
    for include_tax in (False, True):
        (paid,) = await mapped("transaction.completed", payment, include_tax=include_tax)
        (refund,) = await mapped("adjustment.updated", adjustment, include_tax=include_tax)
        assert paid.amount + refund.amount == 0


async def test_created_and_updated_adjustments_are_one_transaction() -> None:
    created = data("adjustment.created") | {"status": "approved"}
    updated = data("adjustment.updated") | {"status": "approved"}
    (a,) = await mapped("adjustment.created", created)
    (b,) = await mapped("adjustment.updated", updated)
    assert a.dedup_key == b.dedup_key


@pytest.mark.parametrize(
    ("action", "kind", "amount"),
    [
        ("chargeback", EventType.REFUND, Decimal("-0.92")),
        ("chargeback_reverse", EventType.PURCHASE, Decimal("0.92")),
    ],
)
async def test_chargebacks(action: str, kind: EventType, amount: Decimal) -> None:
    entity = data("node_adjustment.updated") | {"action": action, "customer_id": CUSTOMER}
    entity["id"] = f"adj_{action}"
    (mapped_event,) = await mapped("adjustment.updated", entity)
    assert (mapped_event.event_type, mapped_event.amount) == (kind, amount)
    assert mapped_event.transaction_id == f"adj_{action}"
    assert mapped_event.metadata is not None
    assert mapped_event.metadata["adjustment_action"] == action


async def test_credits_are_nothing() -> None:
    entity = data("sdk_api_adjustment.credit.approved")
    assert await paddle.to_revenue_events(event("adjustment.updated", entity)) == []


async def test_canceled_subscription_is_churn() -> None:
    (churn,) = await mapped("subscription.canceled", data("subscription.canceled"))
    assert churn.event_type is EventType.CHURN
    assert (churn.amount, churn.transaction_id) == (Decimal(0), SUB)
    assert churn.mrr_impact == Decimal("-950.00")  # 30.00 x 20 + 100.00 + 250.00


async def test_a_daily_price_of_an_exact_half_rounds_half_to_even() -> None:
    entity = data("subscription.canceled")
    entity["items"] = entity["items"][:1]
    entity["items"][0]["quantity"] = 1
    entity["items"][0]["price"]["unit_price"]["amount"] = "1650"  # 16.50 a day
    entity["items"][0]["price"]["billing_cycle"] = {"interval": "day", "frequency": 1}
    (churn,) = await mapped("subscription.canceled", entity)
    assert churn.mrr_impact == Decimal("-501.88")  # 50,187.5 cents a month, half to even


async def test_yearly_items_count_a_twelfth() -> None:
    entity = data("subscription.canceled")
    for item in entity["items"]:
        item["price"]["billing_cycle"] = {"interval": "year", "frequency": 1}
    (churn,) = await mapped("subscription.canceled", entity)
    assert churn.mrr_impact == Decimal("-79.17")  # 950.00 / 12, half to even


async def test_unmapped_events_give_nothing() -> None:
    for kind in ("transaction.paid", "subscription.created", "subscription.updated"):
        assert await paddle.to_revenue_events(event(kind, data("transaction.paid"))) == []


def _line(t: dict[str, Any]) -> dict[str, Any]:
    line: dict[str, Any] = t["details"]["line_items"][0]["totals"]
    return line


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t["details"]["totals"].update(grand_total=652.15), "grand_total"),
        (lambda t: t["details"]["totals"].update(grand_total="65.215"), "grand_total"),
        (lambda t: t["details"]["totals"].update(grand_total=None), "grand_total"),
        (lambda t: t["details"]["totals"].update(grand_total_tax=[]), "grand_total_tax"),
        (lambda t: t.update(currency_code="ABC"), "data.currency_code"),
        (lambda t: t.update(customer_id=None), "data.customer_id"),
        (lambda t: _line(t).update(total="ten"), "data.details.line_items[0].totals.total"),
        (
            lambda t: t["items"][0]["price"].update(
                billing_cycle={"interval": "fortnight", "frequency": 1}
            ),
            "data.items[0].price.billing_cycle",
        ),
        (lambda t: t.update(details=None), "data.details"),
        (lambda t: t.update(items="none"), "data.items"),
    ],
)
async def test_malformed_payloads_name_the_field(mutate: Any, field: str) -> None:
    entity = data("transaction.completed") | {"custom_data": dict(ATTRIBUTION)}
    mutate(entity)
    with pytest.raises(WebhookPayloadError) as info:
        await paddle.to_revenue_events(event("transaction.completed", entity))
    assert info.value.field.endswith(field)


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "field"),
    [
        ("subscription.updated", "sdk_subscription.updated", {"updated_at": None}, "updated_at"),
        ("subscription.updated", "sdk_subscription.updated", {"status": 3}, "status"),
        ("subscription.updated", "sdk_subscription.updated", {"items": [1]}, "items[0]"),
        ("subscription.created", "sdk_subscription.created", {"discount": "x"}, "discount"),
        ("transaction.completed", "transaction.completed", {"updated_at": "soon"}, "updated_at"),
    ],
)
async def test_malformed_snapshots_name_the_field(
    kind: str, name: str, mutate: dict[str, Any], field: str, ledger: Ledger
) -> None:
    with pytest.raises(WebhookPayloadError) as info:
        await mapped(kind, data(name) | mutate, ledger=ledger)
    assert info.value.field == f"data.{field}"


async def test_a_bad_occurred_at_is_named() -> None:
    envelope = event("transaction.completed", data("transaction.completed"))
    envelope["occurred_at"] = "yesterday"
    with pytest.raises(WebhookPayloadError, match="occurred_at"):
        await paddle.to_revenue_events(envelope, resolver=resolver)


async def test_a_localised_transaction_takes_mrr_in_its_own_currency() -> None:
    entity = data("transaction.completed") | {"currency_code": "EUR"}
    (sub,) = await mapped("transaction.completed", entity)
    assert (sub.currency, sub.mrr_impact) == ("EUR", Decimal("400.00"))  # its lines, in EUR
    entity["details"]["line_items"] = []
    (sub,) = await mapped("transaction.completed", entity)
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
    (churn,) = await mapped("subscription.canceled", localised_cancel(*overrides))
    assert (churn.currency, churn.mrr_impact) == ("EUR", Decimal("-280.00"))


@pytest.mark.parametrize(
    "overrides",
    [(), (override("2500", "GBP"),), (override("2800", "EUR"), override("2700", "EUR"))],
)
async def test_a_localised_cancel_without_one_override_in_its_currency_has_no_mrr(
    overrides: tuple[dict[str, Any], ...],
) -> None:
    (churn,) = await mapped("subscription.canceled", localised_cancel(*overrides))
    assert churn.mrr_impact is None


async def test_a_discount_or_a_tax_inclusive_price_hides_the_mrr_a_cancel_loses() -> None:
    discounted = data("subscription.canceled") | {"discount": {"id": "dsc_1", "ends_at": None}}
    inclusive = data("subscription.canceled")
    inclusive["items"][0]["price"]["tax_mode"] = "internal"
    for entity in (discounted, inclusive):
        (churn,) = await mapped("subscription.canceled", entity)
        assert churn.mrr_impact is None


async def test_a_resolver_answer_that_is_not_two_strings_is_a_type_error() -> None:
    async def lookup(customer_id: str) -> Any:
        return {"visitor_fingerprint": "fp_db", "session_id": "sess_db"}

    with pytest.raises(TypeError, match=r"lookup.*returned \{.visitor_fingerprint."):
        await paddle.to_revenue_events(
            event("subscription.canceled", data("subscription.canceled")), resolver=lookup
        )


ENVELOPES = sorted(
    path.stem for path in FIXTURES.glob("*.json") if "event_type" in json.loads(path.read_text())
)


@pytest.mark.parametrize("name", ENVELOPES)
async def test_every_real_notification_maps(name: str, ledger: Ledger) -> None:
    envelope = json.loads((FIXTURES / f"{name}.json").read_text())

    async def anyone(customer_id: str) -> tuple[str, str]:
        return ("fp_db", "sess_db")

    for chosen in (ledger, None):
        events = await paddle.to_revenue_events(envelope, resolver=anyone, ledger=chosen)
        assert all(e.payment_processor == "paddle" for e in events)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value, itself first."""
    yield prefix
    if isinstance(value, dict | list):
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            yield from paths(child, (*prefix, key))


JUNK = st.sampled_from([None, True, 0, -1, 10**40, 1.5, "", "x", "-5", [], {}, [1], {"id": 1}])
BREAKABLE = [
    ("transaction.completed", "transaction.completed"),
    ("transaction.completed", "sdk_transaction.billed.discount"),
    ("adjustment.updated", "node_adjustment.updated"),
    ("subscription.updated", "sdk_subscription.updated"),
    ("subscription.canceled", "subscription.canceled"),
    ("subscription.paused", "node_subscription.paused"),
]


@settings(max_examples=examples(150), deadline=None)
@given(case=st.sampled_from(BREAKABLE), pick=st.integers(0, 10**6), junk=JUNK, keep=st.booleans())
async def test_a_broken_payload_is_a_payload_error(
    case: tuple[str, str], pick: int, junk: Any, keep: bool
) -> None:
    envelope = event(case[0], data(case[1]))
    every = list(paths(envelope))[1:]
    *parents, last = every[pick % len(every)]
    target = envelope
    for key in parents:
        target = target[key]
    target[last] = junk
    ledger = MemoryLedger() if keep else None
    with contextlib.suppress(WebhookPayloadError, MissingAttributionError):  # never another
        await paddle.to_revenue_events(envelope, resolver=resolver, ledger=ledger)


async def anyone(customer_id: str) -> tuple[str, str]:
    return ("fp_db", "sess_db")


@pytest.mark.parametrize(
    ("name", "amount"),
    [
        ("php_transaction.completed", Decimal("599.00")),  # 652.15 paid, 53.15 of it tax
        ("sdk_api_transaction.completed.subscription_recurring", Decimal("400.00")),
    ],
)
async def test_real_transactions_of_other_sdks_count_their_revenue(
    name: str, amount: Decimal, ledger: Ledger
) -> None:
    (paid,) = await paddle.to_revenue_events(
        event("transaction.completed", data(name)), resolver=anyone, ledger=ledger
    )
    assert paid.amount == amount


@pytest.mark.parametrize("name", ["php_adjustment.created", "sdk_sim_adjustment.created"])
async def test_real_refunds_count_once_approved_without_their_tax(name: str) -> None:
    pending = data(name)
    assert await paddle.to_revenue_events(event("adjustment.created", pending)) == []
    approved = pending | {"status": "approved"}
    (refund,) = await paddle.to_revenue_events(
        event("adjustment.updated", approved), resolver=anyone
    )
    assert (refund.event_type, refund.amount) == (EventType.REFUND, Decimal("-0.92"))


async def test_a_real_credit_is_no_revenue_event() -> None:
    credit = data("sdk_api_adjustment.credit.aud") | {"status": "approved"}
    assert await paddle.to_revenue_events(event("adjustment.updated", credit)) == []


async def test_a_scheduled_pause_is_not_yet_a_churn(ledger: Ledger) -> None:
    scheduled = data("sdk_api_subscription.scheduled_change")  # active, pausing later
    assert scheduled["scheduled_change"]["action"] == "pause"
    updated = event("subscription.updated", scheduled)
    assert await paddle.to_revenue_events(updated, resolver=no_resolver, ledger=ledger) == []
    assert await paddle.to_revenue_events(updated, resolver=no_resolver) == []

"""Polar: Standard Webhooks signatures checked against Polar's own verifier, and the mapping."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polar.base import deserialize
from polar.v2026_04.outputs import Order as SDKOrder
from polar.v2026_04.outputs import Subscription as SDKSubscription
from polar.webhooks import PolarWebhookUnknownTypeError, PolarWebhookVerificationError
from polar.webhooks import validate_event as polar_validate_event
from standardwebhooks.webhooks import Webhook

from pulsora_revenue import EventType, RevenueEvent
from pulsora_revenue.webhooks import (
    Ledger,
    MalformedSignatureError,
    MemoryLedger,
    MissingAttributionError,
    MissingSignatureError,
    SignatureMismatchError,
    SQLiteLedger,
    StaleTimestampError,
    WebhookPayloadError,
    polar,
)

from ..conftest import examples

FIXTURES = Path(__file__).parent / "fixtures" / "polar"
SECRET = "polar_whs_8zQq3docs0example0secret"
ATTRIBUTION = {"visitor_fingerprint": "fp_browser", "session_id": "sess_browser"}
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = b'{"type":"order.paid","timestamp":"2026-01-01T00:00:00Z","data":{}}'
_ids = itertools.count(1)


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


ORDER = fixture("server_order.paid.subscription_cycle")  # Polar's server tests, 20.00 USD
SUBSCRIPTION = fixture("server_subscription.revoked")  # status canceled, amount 0
CUSTOMER = ORDER["customer_id"]


# Signatures: ours against Polar's SDK and standardwebhooks, both ways.


def polar_accepts(body: bytes | str, headers: dict[str, str], secret: str = SECRET) -> bool:
    """Whether Polar's SDK (``polar.webhooks.validate_event``) accepts the request."""
    try:
        polar_validate_event(body, headers, secret, frozenset({"order.paid"}), lambda d: d)
    except PolarWebhookVerificationError:
        return False
    except PolarWebhookUnknownTypeError:
        return True  # verified, then refused for its type: the signature passed
    return True


def polar_signs(body: bytes | str, secret: str = SECRET, msg_id: str = "msg_1") -> dict[str, str]:
    """Headers as Polar's own tests sign them: standardwebhooks over the base64 of the secret."""
    stamp = datetime.now(UTC)
    key = base64.b64encode(secret.encode()).decode()
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(stamp.timestamp())),
        "Webhook-Signature": Webhook(key).sign(msg_id, stamp, body),
    }


def test_what_we_sign_polar_accepts() -> None:
    headers = polar.sign(BODY, SECRET, timestamp=int(time.time()))
    assert polar_accepts(BODY, headers)
    assert Webhook(base64.b64encode(SECRET.encode()).decode()).verify(BODY, headers) is not None


def test_what_polar_signs_we_accept() -> None:
    headers = polar_signs(BODY)
    assert polar.verify(BODY, headers, SECRET)["type"] == "order.paid"


def test_a_standard_webhooks_secret_is_also_its_decoding() -> None:
    """Polar's SDK also keys by the base64 decoding of a ``whsec_`` secret; so do we."""
    raw = b"\x00\x01raw key bytes\xff"
    whsec = "whsec_" + base64.b64encode(raw).decode()
    stamp = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_std",
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(whsec).sign("msg_std", stamp, BODY),
    }
    assert polar_accepts(BODY, headers, whsec)
    assert polar.verify(BODY, headers, whsec)["type"] == "order.paid"


@settings(max_examples=examples(50), deadline=None)
@given(
    body=st.binary(max_size=200).map(lambda b: b'{"k":"' + b.hex().encode() + b'"}'),
    secret=st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,20}", fullmatch=True),
    ours=st.booleans(),
)
def test_we_and_polar_agree(body: bytes, secret: str, msg_id: str, ours: bool) -> None:
    if ours:
        headers = polar.sign(body, secret, msg_id=msg_id, timestamp=int(time.time()))
    else:
        headers = polar_signs(body, secret, msg_id)
    assert polar_accepts(body, headers, secret)
    assert polar.verify(body, headers, secret) == json.loads(body)
    tampered = body[:-1] + b" }"
    assert not polar_accepts(tampered, headers, secret)
    with pytest.raises(SignatureMismatchError):
        polar.verify(tampered, headers, secret)


def test_a_tampered_body_or_another_id_is_a_mismatch() -> None:
    headers = polar.sign(BODY, SECRET, msg_id="msg_a", timestamp=NOW)
    with pytest.raises(SignatureMismatchError):
        polar.verify(BODY.replace(b"paid", b"gift"), headers, SECRET, now=NOW)
    with pytest.raises(SignatureMismatchError):
        polar.verify(BODY, headers | {"webhook-id": "msg_b"}, SECRET, now=NOW)
    with pytest.raises(SignatureMismatchError):
        polar.verify(BODY, headers, "polar_whs_another", now=NOW)


def test_stale_and_future_times() -> None:
    headers = polar.sign(BODY, SECRET, timestamp=NOW)
    assert polar.verify(BODY, headers, SECRET, now=NOW + 300)["data"] == {}
    with pytest.raises(StaleTimestampError, match="ago"):
        polar.verify(BODY, headers, SECRET, now=NOW + 301)
    with pytest.raises(StaleTimestampError, match="in the future"):
        polar.verify(BODY, headers, SECRET, now=NOW - 301)
    assert polar.verify(BODY, headers, SECRET, tolerance=None, now=NOW + 10**6)["data"] == {}
    old = polar_signs(BODY)
    old["Webhook-Timestamp"] = str(int(old["Webhook-Timestamp"]) - 301)
    assert not polar_accepts(BODY, old)  # and the signature no longer matches either


def test_a_forged_request_is_reported_as_forged_not_late() -> None:
    headers = polar.sign(BODY, "polar_whs_forger", timestamp=NOW)
    with pytest.raises(SignatureMismatchError):
        polar.verify(BODY, headers, SECRET, now=NOW + 10**6)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header(name: str) -> None:
    headers = polar.sign(BODY, SECRET, timestamp=NOW)
    with pytest.raises(MissingSignatureError, match=name):
        polar.verify(BODY, {k: v for k, v in headers.items() if k != name}, SECRET, now=NOW)
    with pytest.raises(MissingSignatureError):
        polar.verify(BODY, headers | {name: " "}, SECRET, now=NOW)
    with pytest.raises(MissingSignatureError):
        polar.verify(BODY, None, SECRET, now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"webhook-timestamp": "17672256OO"},
        {"webhook-timestamp": "1767225600.5"},
        {"webhook-timestamp": "-1"},
        {"webhook-signature": "v2,aGVsbG8="},
        {"webhook-signature": "v1,not base64!"},
        {"webhook-signature": "v1,aGVsbG8="},  # base64, but not a SHA-256 digest
        {"webhook-signature": "v1a,c2lnbmVk"},  # asymmetric: not ours to check
        {"webhook-signature": "8f1e7c"},
    ],
)
def test_malformed_headers(changes: dict[str, str]) -> None:
    headers = polar.sign(BODY, SECRET, timestamp=NOW) | changes
    with pytest.raises(MalformedSignatureError):
        polar.verify(BODY, headers, SECRET, now=NOW)


def test_several_signatures_and_several_secrets() -> None:
    ours = polar.sign(BODY, SECRET, timestamp=NOW)
    other = polar.sign(BODY, "polar_whs_old", timestamp=NOW)["webhook-signature"]
    both = ours | {"webhook-signature": f"v1a,c2ln {other} {ours['webhook-signature']}"}
    assert polar.verify(BODY, both, SECRET, now=NOW)["type"] == "order.paid"
    assert polar.verify(BODY, ours, ["polar_whs_new", SECRET], now=NOW)["type"] == "order.paid"
    with pytest.raises(SignatureMismatchError):
        polar.verify(BODY, ours, ["polar_whs_new", "polar_whs_third"], now=NOW)


def test_header_names_in_any_case_and_a_str_body() -> None:
    headers = {k.upper(): v for k, v in polar.sign(BODY, SECRET, timestamp=NOW).items()}
    assert polar.verify(BODY.decode(), headers, SECRET, now=NOW)["type"] == "order.paid"


def test_bad_arguments_and_a_body_that_is_not_json() -> None:
    headers = polar.sign(BODY, SECRET, timestamp=NOW)
    with pytest.raises(TypeError, match="payload"):
        polar.verify({"type": "order.paid"}, headers, SECRET, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="headers"):
        polar.verify(BODY, [("webhook-id", "x")], SECRET, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        polar.verify(BODY, headers, "", now=NOW)
    with pytest.raises(ValueError, match="tolerance"):
        polar.verify(BODY, headers, SECRET, tolerance=-1, now=NOW)
    not_json = polar.sign(b"{", SECRET, timestamp=NOW)
    with pytest.raises(WebhookPayloadError):
        polar.verify(b"{", not_json, SECRET, now=NOW)


def test_sign_derives_a_stable_id_from_the_body() -> None:
    first = polar.sign(BODY, SECRET, timestamp=NOW)
    assert first["webhook-id"] == polar.sign(BODY, SECRET, timestamp=NOW + 5)["webhook-id"]
    assert first["webhook-id"].startswith("msg_")


# The mapping.


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


def envelope(kind: str, data: dict[str, Any], at: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    """An event as Polar sends it (the envelope of Polar's own server tests)."""
    return {"type": kind, "timestamp": at, "data": data}


def subscription(
    status: str = "active",
    amount: int = 2000,
    interval: str = "month",
    count: int = 1,
    **fields: Any,
) -> dict[str, Any]:
    entity = copy.deepcopy(SUBSCRIPTION)
    entity.update(
        id=ORDER["subscription_id"],
        status=status,
        amount=amount,
        recurring_interval=interval,
        recurring_interval_count=count,
    )
    entity["ended_at"] = None if status != "canceled" else entity["ended_at"]
    entity.update(fields)
    return entity


def order(
    reason: str = "subscription_cycle", net: int = 2000, tax: int = 0, **fields: Any
) -> dict[str, Any]:
    entity = copy.deepcopy(ORDER)
    entity.update(
        id=f"00000000-0000-0000-0000-{next(_ids):012d}",
        billing_reason=reason,
        net_amount=net,
        tax_amount=tax,
        total_amount=net + tax,
        **fields,
    )
    return entity


async def mapped(kind: str, data: dict[str, Any], **options: Any) -> list[RevenueEvent]:
    at = options.pop("at", "2026-01-01T00:00:00Z")
    options.setdefault("resolver", resolver)
    return await polar.to_revenue_events(envelope(kind, data, at), **options)


@pytest.mark.anyio
async def test_the_real_order_is_a_renewal() -> None:
    (renewal,) = await mapped("order.paid", ORDER)
    assert renewal.event_type is EventType.RENEWAL
    assert (renewal.amount, renewal.currency) == (Decimal("20.00"), "USD")
    assert renewal.transaction_id == ORDER["id"]
    assert renewal.customer_subscription_id == ORDER["subscription_id"]
    assert (renewal.customer_id, renewal.payment_processor) == (CUSTOMER, "polar")
    assert (renewal.visitor_fingerprint, renewal.session_id) == ("fp_db", "sess_db")
    assert renewal.mrr_impact is None
    assert renewal.is_recurring is True
    assert renewal.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.anyio
@pytest.mark.parametrize("with_ledger", [False, True])
async def test_every_real_payload_maps(with_ledger: bool) -> None:
    store = MemoryLedger() if with_ledger else None
    (paid,) = await mapped("order.paid", ORDER, ledger=store)
    assert paid.amount == Decimal("20.00")
    refunded = ORDER | {"refunded_amount": 500, "status": "partially_refunded"}
    (refund,) = await mapped("order.refunded", refunded, ledger=store)
    assert refund.amount == Decimal("-5.00")
    for kind in ("subscription.revoked", "subscription.canceled", "subscription.updated"):
        # A free subscription (amount 0) ends: no MRR to lose, no attribution needed.
        assert await mapped(kind, SUBSCRIPTION, ledger=store, resolver=no_resolver) == []


def completed(entity: dict[str, Any]) -> dict[str, Any]:
    """The fixture with the three fields its source leaves out and Polar's SDK requires."""
    entity = copy.deepcopy(entity) | {"units": None}
    entity["customer"]["first_user_event_at"] = None
    entity["product"]["is_deletable"] = True
    return entity


@pytest.mark.anyio
async def test_polar_s_sdk_reads_the_real_payloads_alike() -> None:
    sdk_order = deserialize(completed(ORDER), SDKOrder)
    (paid,) = await mapped("order.paid", completed(ORDER))
    assert paid.amount == Decimal(sdk_order.net_amount).scaleb(-2)  # USD: two decimals
    assert (paid.currency, paid.transaction_id) == (sdk_order.currency.upper(), sdk_order.id)
    assert (paid.customer_id, paid.customer_subscription_id) == (
        sdk_order.customer_id,
        sdk_order.subscription_id,
    )
    assert sdk_order.billing_reason == "subscription_cycle"
    sdk_subscription = deserialize(completed(SUBSCRIPTION), SDKSubscription)
    assert (sdk_subscription.status, sdk_subscription.recurring_interval) == ("canceled", "month")
    assert (sdk_subscription.amount, sdk_subscription.metadata) == (0, {})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "net", "amount"),
    [("jpy", 1500, "1500"), ("kwd", 1500, "1.500"), ("eur", 1500, "15.00"), ("USD", 1, "0.01")],
)
async def test_amounts_use_the_currency_exponent(code: str, net: int, amount: str) -> None:
    (paid,) = await mapped(
        "order.paid", order("purchase", net, subscription_id=None, currency=code)
    )
    assert str(paid.amount) == amount
    assert paid.currency == code.upper()


@pytest.mark.anyio
async def test_an_unknown_currency_is_a_payload_error() -> None:
    with pytest.raises(WebhookPayloadError, match=r"data\.currency"):
        await mapped("order.paid", order(currency="xxy"))


@pytest.mark.anyio
async def test_tax_is_not_revenue_unless_asked() -> None:
    taxed = order("purchase", 1000, 200, subscription_id=None)
    (net,) = await mapped("order.paid", taxed)
    (gross,) = await mapped("order.paid", taxed, include_tax=True)
    assert (net.amount, gross.amount) == (Decimal("10.00"), Decimal("12.00"))
    assert (net.event_type, net.is_recurring, net.customer_subscription_id) == (
        EventType.PURCHASE,
        None,
        None,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("where", "data"),
    [
        ("metadata", lambda: order(metadata=dict(ATTRIBUTION))),
        ("custom_field_data", lambda: order(custom_field_data=dict(ATTRIBUTION))),
        ("subscription", lambda: order(subscription=subscription(metadata=dict(ATTRIBUTION)))),
    ],
)
async def test_attribution_from_the_checkout_metadata(where: str, data: Any) -> None:
    (paid,) = await polar.to_revenue_events(envelope("order.paid", data()))
    assert (paid.visitor_fingerprint, paid.session_id) == ("fp_browser", "sess_browser"), where


@pytest.mark.anyio
async def test_attribution_under_other_keys_then_the_resolver() -> None:
    data = order(metadata={"fp": "fp_custom", "sid": "sess_custom"})
    (paid,) = await mapped("order.paid", data, keys=("fp", "sid"))
    assert (paid.visitor_fingerprint, paid.session_id) == ("fp_custom", "sess_custom")
    (paid,) = await mapped("order.paid", data)
    assert paid.visitor_fingerprint == "fp_db"
    with pytest.raises(MissingAttributionError, match=r"data\.metadata"):
        await polar.to_revenue_events(envelope("order.paid", data))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("amount", "interval", "count", "mrr"),
    [
        (2000, "month", 1, "20.00"),
        (24000, "year", 1, "20.00"),
        (6000, "month", 3, "20.00"),
        (1000, "week", 1, "43.33"),  # 10.00 x 52 / 12
        (100, "day", 1, "30.42"),  # 1.00 x 365 / 12
    ],
)
async def test_the_first_order_states_the_monthly_mrr(
    amount: int, interval: str, count: int, mrr: str
) -> None:
    state = subscription(amount=amount, interval=interval, count=count)
    (first,) = await mapped("order.paid", order("subscription_create", amount, subscription=state))
    assert (first.event_type, first.mrr_impact) == (EventType.SUBSCRIPTION, Decimal(mrr))


@pytest.mark.anyio
async def test_mrr_excludes_tax_and_is_unknown_under_a_discount(ledger: Ledger) -> None:
    taxed = order("subscription_create", 2000, 400, subscription=subscription())
    (first,) = await mapped("order.paid", taxed, ledger=ledger)
    assert (first.amount, first.mrr_impact) == (Decimal("20.00"), Decimal("20.00"))
    discounted = subscription(amount=5000, discount_id="d1")
    assert (
        await mapped("subscription.updated", discounted, ledger=ledger, at="2026-01-02T00:00Z")
        == []
    )
    later = order(net=4000, subscription=discounted)
    (renewal,) = await mapped("order.paid", later, ledger=ledger, at="2026-02-01T00:00Z")
    assert (renewal.event_type, renewal.mrr_impact) == (EventType.RENEWAL, None)  # unknown


@pytest.mark.anyio
async def test_a_life_with_a_ledger_nets_to_zero(ledger: Ledger) -> None:
    """Created, renewed, upgraded with a proration, cancelled at period end, uncancelled,
    cancelled again, revoked: the MRR reported is 20, 20, 50, 50, 50, 0."""
    monthly, grown = subscription(amount=2000), subscription(amount=5000)
    at_end = subscription(amount=5000, cancel_at_period_end=True, canceled_at="2026-03-05T00:00Z")
    ended = subscription("canceled", amount=5000, ended_at="2026-04-01T00:00Z")
    life = [
        ("subscription.created", monthly, "2026-01-01T00:00:00Z"),
        ("order.paid", order("subscription_create", subscription=monthly), "2026-01-01T00:00:01Z"),
        ("subscription.active", monthly, "2026-01-01T00:00:02Z"),
        ("order.paid", order(subscription=monthly), "2026-02-01T00:00:00Z"),
        ("subscription.updated", grown, "2026-02-10T00:00:00Z"),
        (
            "order.paid",
            order("subscription_update", 900, subscription=grown),
            "2026-02-10T00:00:01Z",
        ),
        ("subscription.canceled", at_end, "2026-03-05T00:00:00Z"),
        ("subscription.uncanceled", grown, "2026-03-06T00:00:00Z"),
        ("order.paid", order(net=5000, subscription=grown), "2026-03-10T00:00:00Z"),
        ("subscription.canceled", at_end, "2026-03-15T00:00:00Z"),
        ("subscription.revoked", ended, "2026-04-01T00:00:00Z"),
        ("subscription.updated", ended, "2026-04-01T00:00:00Z"),
    ]
    events = [e for kind, data, at in life for e in await mapped(kind, data, ledger=ledger, at=at)]
    assert [(e.event_type, e.mrr_impact) for e in events] == [
        (EventType.SUBSCRIPTION, Decimal("20.00")),
        (EventType.RENEWAL, None),
        (EventType.UPGRADE, Decimal("30.00")),  # the proration carries the change
        (EventType.RENEWAL, None),
        (EventType.CHURN, Decimal("-50.00")),
    ]
    assert events[-1].transaction_id == ORDER["subscription_id"]
    assert (events[-1].amount, events[-1].metadata) == (Decimal(0), {"reason": "canceled"})


@pytest.mark.anyio
async def test_a_trial_is_no_mrr_until_its_first_payment(ledger: Ledger) -> None:
    trial = subscription("trialing", trial_end="2026-01-15T00:00:00Z")
    free = order("subscription_create", 0, subscription=trial)
    assert await mapped("order.paid", free, ledger=ledger) == []
    converted = subscription(trial_end="2026-01-15T00:00:00Z")
    first = order(subscription=converted)
    (paid,) = await mapped("order.paid", first, ledger=ledger, at="2026-01-15T00:00Z")
    assert (paid.event_type, paid.mrr_impact) == (EventType.SUBSCRIPTION, Decimal("20.00"))


@pytest.mark.anyio
async def test_a_trial_revoked_in_its_trial_is_nothing(ledger: Ledger) -> None:
    ended = subscription(
        "canceled", trial_end="2026-01-15T00:00:00Z", ended_at="2026-01-10T00:00:00Z"
    )
    for store in (ledger, None):
        assert await mapped("subscription.revoked", ended, ledger=store, resolver=no_resolver) == []


@pytest.mark.anyio
async def test_without_a_ledger_the_end_churns_its_mrr() -> None:
    ended = subscription("canceled", amount=24000, interval="year")
    (churn,) = await mapped("subscription.revoked", ended)
    assert (churn.event_type, churn.amount, churn.mrr_impact) == (
        EventType.CHURN,
        Decimal(0),
        Decimal("-20.00"),
    )
    at_end = subscription(cancel_at_period_end=True)
    assert await mapped("subscription.canceled", at_end, resolver=no_resolver) == []


@pytest.mark.anyio
async def test_a_pause_churns_once_with_a_ledger(ledger: Ledger) -> None:
    await mapped(
        "order.paid", order("subscription_create", subscription=subscription()), ledger=ledger
    )
    paused = subscription("paused", paused_at="2026-01-20T00:00:00Z")
    (churn,) = await mapped("subscription.paused", paused, ledger=ledger, at="2026-01-20T00:00Z")
    assert (churn.transaction_id, churn.mrr_impact) == (
        f"{ORDER['subscription_id']}:paused:2026-01-20T00:00:00Z",
        Decimal("-20.00"),
    )
    assert await mapped("subscription.updated", paused, ledger=ledger, at="2026-01-20T00:00Z") == []


@pytest.mark.anyio
async def test_partial_refunds_net_out_with_a_ledger(ledger: Ledger) -> None:
    paid = order("purchase", 10_000, 2_000, subscription_id=None, metadata=dict(ATTRIBUTION))
    (sale,) = await mapped("order.paid", paid, ledger=ledger)
    first = paid | {"refunded_amount": 3_000, "refunded_tax_amount": 600}
    second = paid | {"refunded_amount": 10_000, "refunded_tax_amount": 2_000}
    (one,) = await mapped("order.refunded", first, ledger=ledger, at="2026-01-02T00:00Z")
    (two,) = await mapped("order.refunded", second, ledger=ledger, at="2026-01-03T00:00Z")
    assert (one.amount, two.amount) == (Decimal("-30.00"), Decimal("-70.00"))  # without tax
    assert sale.amount + one.amount + two.amount == 0
    assert (one.transaction_id, two.transaction_id) == (
        f"{paid['id']}:refunded:3000",
        f"{paid['id']}:refunded:10000",
    )
    assert one.event_type is EventType.REFUND
    assert one.metadata == {"original_transaction": paid["id"]}
    again = await mapped("order.refunded", first, ledger=ledger, at="2026-01-02T00:00Z")
    assert again == [one]  # a redelivery: the same answer, which Pulsora drops


@pytest.mark.anyio
async def test_refunds_out_of_order_and_with_tax(ledger: Ledger) -> None:
    paid = order("purchase", 10_000, 2_000, subscription_id=None, metadata=dict(ATTRIBUTION))
    first = paid | {"refunded_amount": 3_000, "refunded_tax_amount": 600}
    second = paid | {"refunded_amount": 5_000, "refunded_tax_amount": 1_000}
    (late_first,) = await mapped(
        "order.refunded", second, ledger=ledger, include_tax=True, at="2026-01-03T00:00Z"
    )
    stale = await mapped("order.refunded", first, ledger=ledger, include_tax=True, at="2026-01-02Z")
    assert (late_first.amount, stale) == (Decimal("-60.00"), [])


@pytest.mark.anyio
async def test_without_a_ledger_an_order_s_first_refund_counts() -> None:
    paid = order("purchase", 10_000, 2_000, subscription_id=None, metadata=dict(ATTRIBUTION))
    refunded = paid | {"refunded_amount": 10_000, "refunded_tax_amount": 2_000}
    (refund,) = await mapped("order.refunded", refunded)
    assert (refund.amount, refund.transaction_id) == (Decimal("-100.00"), f"{paid['id']}:refunded")


@pytest.mark.anyio
async def test_events_that_map_to_nothing() -> None:
    for kind in ("order.created", "order.updated", "checkout.updated", "refund.created"):
        assert await mapped(kind, ORDER, resolver=no_resolver) == []


@pytest.mark.anyio
async def test_malformed_payloads_name_the_field() -> None:
    with pytest.raises(WebhookPayloadError, match=r"data\.net_amount|data\.total_amount"):
        await mapped("order.paid", order() | {"total_amount": None})
    with pytest.raises(WebhookPayloadError, match="type"):
        await polar.to_revenue_events({"data": ORDER})
    with pytest.raises(WebhookPayloadError, match=r"data\.recurring_interval"):
        await mapped("subscription.revoked", subscription("canceled", interval="fortnight"))

"""Chargebee: basic auth and source addresses, and events to revenue events.

The payloads in ``fixtures/chargebee`` are built to the field names of Chargebee's own SDK
types (see the README there); Chargebee's SDK reads each of them as an independent check.
"""

from __future__ import annotations

import base64
import copy
import hmac
import ipaddress
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
    WebhookVerificationError,
    chargebee,
)

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures" / "chargebee"
NAMES = sorted(path.stem for path in FIXTURES.glob("*.json"))
USER, PASSWORD = "pulsora", "s3cret-Pa55"
BODY = (FIXTURES / "payment_succeeded.first.json").read_bytes()
#: Documentation addresses (RFC 5737), standing in for Chargebee's published ones.
CHARGEBEE_IPS = ["192.0.2.25", "192.0.2.205", "198.51.100.138/32"]


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


async def resolver(customer_id: str) -> tuple[str, str] | None:
    return ("fp_db", "sess_db") if customer_id.startswith("cust_") else None


async def revenue(event: dict[str, Any], **options: Any) -> list[RevenueEvent]:
    options.setdefault("resolver", resolver)
    return await chargebee.to_revenue_events(event, **options)


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    stored = SQLiteLedger(tmp_path / "ledger.sqlite")
    try:
        yield stored
    finally:
        await stored.aclose()


# Basic auth.


def test_right_credentials_return_the_event() -> None:
    event = chargebee.verify(BODY, chargebee.basic_auth(USER, PASSWORD), (USER, PASSWORD))
    assert event == json.loads(BODY)
    pair: Any = [USER, PASSWORD]  # a list serves as well as a tuple
    as_text = chargebee.verify(BODY.decode(), chargebee.basic_auth(USER, PASSWORD), pair)
    assert as_text == event


def test_basic_auth_builds_the_header() -> None:
    header = chargebee.basic_auth("user", "pa:ss")
    assert header == "Basic " + base64.b64encode(b"user:pa:ss").decode()
    # A password may hold ':' (only the username may not), and the scheme is case-blind.
    chargebee.verify(BODY, header, ("user", "pa:ss"))
    chargebee.verify(BODY, "basic " + header.split()[1], ("user", "pa:ss"))
    chargebee.verify(BODY, header.encode(), ("user", "pa:ss"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("user", "password"),
    [
        (USER, "wrong"),
        ("wrong", PASSWORD),
        ("", ""),
        (USER, PASSWORD + "x"),
        (USER.upper(), PASSWORD),
    ],
)
def test_wrong_credentials_are_a_mismatch(user: str, password: str) -> None:
    with pytest.raises(chargebee.CredentialsMismatchError) as caught:
        chargebee.verify(BODY, chargebee.basic_auth(user, password), (USER, PASSWORD))
    assert isinstance(caught.value, SignatureMismatchError)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_credentials(header: str | None) -> None:
    with pytest.raises(chargebee.MissingCredentialsError) as caught:
        chargebee.verify(BODY, header, (USER, PASSWORD))
    assert isinstance(caught.value, MissingSignatureError)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        f"Digest {base64.b64encode(b'pulsora:x').decode()}",
        "t=1,v1=abc",  # a signature header where the Authorization belongs
    ],
)
def test_malformed_credentials(header: str) -> None:
    with pytest.raises(chargebee.MalformedCredentialsError) as caught:
        chargebee.verify(BODY, header, (USER, PASSWORD))
    assert isinstance(caught.value, MalformedSignatureError)


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both halves go through ``hmac.compare_digest``, as equal-length digests, always."""
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module the adapter calls through
    with pytest.raises(chargebee.CredentialsMismatchError):
        chargebee.verify(BODY, chargebee.basic_auth("x", PASSWORD), (USER, PASSWORD))
    assert len(compared) == 2  # the password is compared even though the user differs
    assert all(len(a) == len(b) == 32 for a, b in compared)
    compared.clear()
    chargebee.verify(BODY, chargebee.basic_auth(USER, PASSWORD), (USER, PASSWORD))
    assert len(compared) == 2


@pytest.mark.parametrize(
    ("credentials", "error"),
    [
        ("pulsora:secret", TypeError),
        ((USER,), TypeError),
        ((USER, None), TypeError),
        (("", PASSWORD), ValueError),
        ((USER, ""), ValueError),
        (("a:b", PASSWORD), ValueError),
    ],
)
def test_impossible_credentials_are_argument_errors(
    credentials: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        chargebee.verify(BODY, chargebee.basic_auth(USER, PASSWORD), credentials)


def test_a_verified_body_that_is_not_json_is_a_payload_error() -> None:
    with pytest.raises(WebhookPayloadError):
        chargebee.verify(b"{oops", chargebee.basic_auth(USER, PASSWORD), (USER, PASSWORD))
    with pytest.raises(TypeError):
        chargebee.verify({"id": 1}, chargebee.basic_auth(USER, PASSWORD), (USER, PASSWORD))  # type: ignore[arg-type]


# Source addresses.


def checked(source_ip: Any, allowed_ips: Any) -> Any:
    header = chargebee.basic_auth(USER, PASSWORD)
    return chargebee.verify(
        BODY, header, (USER, PASSWORD), source_ip=source_ip, allowed_ips=allowed_ips
    )


@pytest.mark.parametrize(
    "source_ip",
    [
        "192.0.2.25",
        " 192.0.2.205 ",
        "198.51.100.138",
        ipaddress.ip_address("192.0.2.25"),
        "::ffff:192.0.2.25",  # from a dual-stack socket
    ],
)
def test_an_allowed_source_passes(source_ip: Any) -> None:
    assert checked(source_ip, CHARGEBEE_IPS)["id"] == "ev_AzZ9mSP1first"


def test_allowed_ips_take_networks_and_addresses() -> None:
    allowed = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_address("2001:db8::1")]
    assert checked("10.1.2.3", allowed)
    assert checked("2001:db8::1", allowed)
    assert checked("10.1.2.3", (n for n in ["10.0.0.0/8"]))  # any iterable, once


@pytest.mark.parametrize("source_ip", ["192.0.2.26", "127.0.0.1", "2001:db8::2", "not-an-ip"])
def test_a_source_outside_the_list_is_refused(source_ip: str) -> None:
    with pytest.raises(chargebee.SourceAddressError) as caught:
        checked(source_ip, CHARGEBEE_IPS)
    assert isinstance(caught.value, WebhookVerificationError)


def test_the_source_is_checked_even_with_the_right_credentials_and_before_them() -> None:
    with pytest.raises(chargebee.SourceAddressError):
        chargebee.verify(
            BODY, "Bearer x", (USER, PASSWORD), source_ip="1.1.1.1", allowed_ips=CHARGEBEE_IPS
        )


@pytest.mark.parametrize(
    ("source_ip", "allowed_ips", "error"),
    [
        (None, CHARGEBEE_IPS, ValueError),  # a list to check, and nothing to check it with
        ("192.0.2.25", [], ValueError),
        ("192.0.2.25", "192.0.2.25", TypeError),  # a str is not a list of addresses
        ("192.0.2.25", ["192.0.2.0/16"], ValueError),  # host bits set: a typo
        ("192.0.2.25", [42], TypeError),
        (3, CHARGEBEE_IPS, TypeError),
    ],
)
def test_impossible_address_arguments(
    source_ip: Any, allowed_ips: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        checked(source_ip, allowed_ips)


def test_no_allow_list_checks_no_address() -> None:
    assert checked(None, None)["id"] == "ev_AzZ9mSP1first"
    assert checked("203.0.113.9", None)


# Events.


@pytest.mark.parametrize("name", NAMES)
async def test_every_payload_maps_and_the_sdk_reads_it_alike(name: str) -> None:
    sdk = pytest.importorskip("chargebee")
    text = (FIXTURES / f"{name}.json").read_text()
    parsed = sdk.Chargebee(api_key="test", site="test").Event.deserialize(text)
    assert (parsed.id, parsed.event_type) == (load(name)["id"], load(name)["event_type"])
    events = await revenue(json.loads(text))
    for event in events:
        assert event.payment_processor == "chargebee"
        assert event.occurred_at is not None
    if "transaction" in parsed.content and events:
        # Chargebee's own reader: the transaction's amount less the tax share we report.
        txn = sdk.models.transaction.responses.TransactionResponse.construct(
            parsed.content["transaction"]
        )
        assert txn.id == events[0].transaction_id
        assert txn.currency_code == events[0].currency


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("payment_succeeded")])
async def test_payment_amounts_agree_with_the_sdks_reading(name: str) -> None:
    """Chargebee's SDK reads the transaction and invoice; the revenue is its amount less tax."""
    sdk = pytest.importorskip("chargebee")
    content = (
        sdk.Chargebee(api_key="test", site="test")
        .Event.deserialize((FIXTURES / f"{name}.json").read_text())
        .content
    )
    models = sdk.models
    txn = models.transaction.responses.TransactionResponse.construct(content["transaction"])
    invoice = models.invoice.responses.InvoiceResponse.construct(content["invoice"])
    exponent = {"USD": 2, "JPY": 0}[txn.currency_code]
    net = txn.amount - invoice.tax * txn.amount // invoice.total
    (event,) = await revenue(load(name))
    assert event.amount == Decimal(net).scaleb(-exponent)
    (gross,) = await revenue(load(name), include_tax=True)
    assert gross.amount == Decimal(txn.amount).scaleb(-exponent)


def test_basic_auth_matches_the_sdks_own_encoding() -> None:
    """The SDK sends its API key as a basic auth username with an empty password."""
    pytest.importorskip("chargebee")
    http_request = pytest.importorskip("chargebee.http_request")
    encode = getattr(http_request, "_basic_auth_str", None)
    if encode is None:
        pytest.skip("this chargebee version encodes basic auth elsewhere")
    assert chargebee.basic_auth("test_key_123", "") == encode("test_key_123")


def test_non_ascii_credentials_match_in_utf8_or_latin1() -> None:
    """RFC 7617 prefers UTF-8; Chargebee's SDK encodes its keys as Latin-1: take either."""
    utf8 = chargebee.basic_auth("ünï", "päss")
    latin1 = "Basic " + base64.b64encode("ünï:päss".encode("latin-1")).decode()
    assert utf8 != latin1
    for header in (utf8, latin1):
        assert chargebee.verify(BODY, header, ("ünï", "päss"))["id"] == "ev_AzZ9mSP1first"
    with pytest.raises(chargebee.CredentialsMismatchError):
        chargebee.verify(BODY, latin1, ("ünï", "pass"))
    with pytest.raises(chargebee.CredentialsMismatchError):
        chargebee.verify(BODY, chargebee.basic_auth("ünï", "päss"), ("ünï", "pä"))


EXPECTED = {
    "payment_succeeded.first": ("txn_AzZ9mSP1first", EventType.SUBSCRIPTION, "135.00", "85.00"),
    "payment_succeeded.renewal_jpy": ("txn_JpSub77renew", EventType.RENEWAL, "10000", None),
    "payment_succeeded.one_off": ("txn_OneOff5", EventType.PURCHASE, "50.00", None),
    "payment_refunded": ("txn_AzZ9mSP1refund", EventType.REFUND, "-67.50", None),
    "credit_note_created": ("txn_AzZ9mSP1refund", EventType.REFUND, "-67.50", None),
    "subscription_cancelled": ("AzZ9mSP1sub:cancelled:1719000000", EventType.CHURN, "0", "-100.00"),
}


@pytest.mark.parametrize("name", NAMES)
async def test_what_each_payload_becomes_without_a_ledger(name: str) -> None:
    events = await revenue(load(name))
    if name not in EXPECTED:
        assert events == []
        return
    transaction_id, kind, amount, mrr = EXPECTED[name]
    (event,) = events
    assert (event.transaction_id, event.event_type) == (transaction_id, kind)
    assert event.amount == Decimal(amount)
    assert event.mrr_impact == (None if mrr is None else Decimal(mrr))


async def test_amounts_follow_the_currency_exponent() -> None:
    (yen,) = await revenue(load("payment_succeeded.renewal_jpy"))
    assert (yen.currency, yen.amount) == ("JPY", Decimal(10000))  # 11,000 yen less 1,000 tax
    dinars = load("payment_succeeded.one_off")
    for entity in (dinars["content"]["transaction"], dinars["content"]["invoice"]):
        entity["currency_code"] = "KWD"
    (kwd,) = await revenue(dinars)
    assert (kwd.currency, kwd.amount) == ("KWD", Decimal("5.000"))  # 5,400 fils less 400


async def test_an_unknown_currency_is_a_payload_error() -> None:
    event = load("payment_succeeded.one_off")
    event["content"]["transaction"]["currency_code"] = "XYZ"
    with pytest.raises(WebhookPayloadError) as caught:
        await revenue(event)
    assert caught.value.field == "content.transaction.currency_code"


async def test_tax_is_out_by_default_and_in_on_request() -> None:
    event = load("payment_succeeded.first")
    (net,) = await revenue(event)
    (gross,) = await revenue(event, include_tax=True)
    assert (net.amount, gross.amount) == (Decimal("135.00"), Decimal("146.14"))
    assert net.mrr_impact == gross.mrr_impact == Decimal("85.00")  # MRR never has tax
    (refund,) = await revenue(load("payment_refunded"), include_tax=True)
    assert refund.amount == Decimal("-73.07")


async def test_a_part_payment_carries_its_share_of_the_tax() -> None:
    event = load("payment_succeeded.first")
    event["content"]["transaction"]["amount"] = 7307  # half of 146.14
    (half,) = await revenue(event)
    assert half.amount == Decimal("67.50")  # 73.07 less 5.57, half of the 11.14 tax


async def test_attribution_from_the_subscription_then_the_customer_then_the_resolver() -> None:
    event = load("payment_succeeded.first")
    (first,) = await revenue(event)
    assert (first.visitor_fingerprint, first.session_id) == ("fp_sub", "sess_sub")
    del event["content"]["subscription"]["meta_data"]
    (second,) = await revenue(event)
    assert (second.visitor_fingerprint, second.session_id) == ("fp_cust", "sess_cust")
    del event["content"]["customer"]["meta_data"]
    (third,) = await revenue(event)
    assert (third.visitor_fingerprint, third.session_id, third.customer_id) == (
        "fp_db",
        "sess_db",
        "cust_AzZ9mSP1",
    )
    with pytest.raises(MissingAttributionError) as caught:
        await revenue(event, resolver=None)
    assert "content.subscription.meta_data" in str(caught.value)


async def test_attribution_from_custom_fields_and_custom_keys() -> None:
    (one_off,) = await revenue(load("payment_succeeded.one_off"), resolver=None)
    assert (one_off.visitor_fingerprint, one_off.session_id) == ("fp_cf", "sess_cf")
    event = load("payment_succeeded.first")
    event["content"]["subscription"]["meta_data"] = {"fp": "fp_mine", "sid": "sess_mine"}
    (mine,) = await revenue(event, keys=("fp", "sid"))
    assert (mine.visitor_fingerprint, mine.session_id) == ("fp_mine", "sess_mine")


async def test_a_credit_note_needs_the_resolver() -> None:
    (refund,) = await revenue(load("credit_note_created"))
    assert (refund.visitor_fingerprint, refund.customer_id) == ("fp_db", "cust_AzZ9mSP1")
    with pytest.raises(MissingAttributionError):
        await revenue(load("credit_note_created"), resolver=None)


async def test_one_refund_nets_out_once(ledger: Ledger) -> None:
    """Both events describe one refund: one transaction id, one amount; Pulsora keeps one."""
    accepted: dict[tuple[str, str | None], RevenueEvent] = {}
    for name in ("payment_succeeded.first", "credit_note_created", "payment_refunded"):
        for event in await revenue(load(name), ledger=ledger):
            accepted.setdefault(event.dedup_key, event)
    cash = sum(e.amount for e in accepted.values())
    assert cash == Decimal("135.00") - Decimal("67.50")
    refunds = [e for e in accepted.values() if e.event_type is EventType.REFUND]
    assert [e.transaction_id for e in refunds] == ["txn_AzZ9mSP1refund"]


async def test_the_second_description_of_a_refund_reports_the_first_ones_amount(
    ledger: Ledger,
) -> None:
    refunded = load("payment_refunded")
    (first,) = await revenue(refunded, ledger=ledger)
    credit_note = load("credit_note_created")
    credit_note["content"]["credit_note"]["taxes"] = []  # a later state that would differ
    (second,) = await revenue(credit_note, ledger=ledger)
    assert (second.transaction_id, second.amount) == (first.transaction_id, first.amount)


async def test_a_refund_without_invoice_or_credit_note_nets_tax_as_the_payment_did(
    ledger: Ledger,
) -> None:
    await revenue(load("payment_succeeded.first"), ledger=ledger)
    bare = load("payment_refunded")
    del bare["content"]["credit_note"], bare["content"]["invoice"]
    bare["content"]["transaction"]["amount"] = 14614
    (refund,) = await revenue(bare, ledger=ledger)
    assert refund.amount == Decimal("-135.00")
    assert refund.metadata == {"original_transaction": "txn_AzZ9mSP1first"}


async def test_credits_and_failed_refunds_are_not_cash() -> None:
    assert await revenue(load("credit_note_created.adjustment")) == []
    pending = load("credit_note_created")
    pending["content"]["credit_note"]["linked_refunds"][0]["txn_status"] = "in_progress"
    assert await revenue(pending) == []
    failed = load("payment_succeeded.first")
    failed["content"]["transaction"]["status"] = "failure"
    assert await revenue(failed) == []


async def test_a_subscription_life_telescopes(ledger: Ledger) -> None:
    """Created, paid, changed (no cash), cancelled, reactivated: the MRR adds up."""
    mrr = Decimal(0)
    seen: dict[str, list[RevenueEvent]] = {}
    for name in (
        "subscription_created",
        "payment_succeeded.first",
        "subscription_changed",
        "subscription_cancelled",
        "subscription_reactivated",
    ):
        seen[name] = await revenue(load(name), ledger=ledger)
        mrr += sum((e.mrr_impact or 0 for e in seen[name]), Decimal(0))
    assert [e.mrr_impact for e in seen["payment_succeeded.first"]] == [Decimal("85.00")]
    assert seen["subscription_changed"] == []  # rides on a payment that never came
    (churn,) = seen["subscription_cancelled"]
    assert (churn.amount, churn.mrr_impact) == (Decimal(0), Decimal("-85.00"))
    assert seen["subscription_reactivated"] == []
    assert mrr == 0
    again = await revenue(load("subscription_cancelled"), ledger=ledger)  # a redelivery
    assert again == seen["subscription_cancelled"]
    # The reactivated subscription's next payment brings its new MRR: 5 x 2,400.00 a year.
    renewal = load("payment_succeeded.first")
    renewal["id"], renewal["content"]["transaction"]["id"] = "ev_next", "txn_next"
    renewal["content"]["invoice"]["first_invoice"] = False
    renewal["content"]["subscription"] = load("subscription_reactivated")["content"]["subscription"]
    (paid,) = await revenue(renewal, ledger=ledger)
    assert (paid.event_type, paid.mrr_impact) == (EventType.SUBSCRIPTION, Decimal("100.00"))


async def test_a_stale_snapshot_is_not_applied(ledger: Ledger) -> None:
    await revenue(load("payment_succeeded.first"), ledger=ledger)
    late = load("subscription_cancelled")
    late["content"]["subscription"]["resource_version"] = 1717000000000  # older than paid
    assert await revenue(late, ledger=ledger) == []


async def test_a_trial_cancelled_in_its_trial_never_churns(ledger: Ledger) -> None:
    trial = load("subscription_created.in_trial")
    assert await revenue(trial, ledger=ledger) == []
    cancelled = copy.deepcopy(trial)
    cancelled["id"], cancelled["event_type"] = "ev_trial_cancel", "subscription_cancelled"
    cancelled["content"]["subscription"].update(
        status="cancelled", cancelled_at=1717300000, resource_version=1717300000000
    )
    assert await revenue(cancelled, ledger=ledger) == []
    assert await revenue(cancelled) == []  # without a ledger: it never activated


async def test_a_coupon_hides_the_mrr_and_the_older_word_stands(ledger: Ledger) -> None:
    event = load("payment_succeeded.first")
    event["content"]["subscription"]["coupons"] = [{"coupon_id": "HALF", "applied_count": 1}]
    (paid,) = await revenue(event)
    assert paid.mrr_impact is None
    (with_ledger,) = await revenue(event, ledger=ledger)
    assert with_ledger.mrr_impact is None


async def test_the_mrr_field_is_not_trusted() -> None:
    """``subscription.mrr`` (asynchronous, may predate the change) is not the MRR used."""
    event = load("subscription_cancelled")
    event["content"]["subscription"]["mrr"] = 1
    (churn,) = await revenue(event)
    assert churn.mrr_impact == Decimal("-100.00")  # 5 x 2,400.00 a year


async def test_catalog_v1_subscriptions() -> None:
    event = load("subscription_cancelled")
    subscription = event["content"]["subscription"]
    del subscription["subscription_items"]
    subscription.update(
        plan_id="basic",
        plan_unit_price=1000,
        plan_quantity=2,
        billing_period=3,
        billing_period_unit="month",
        addons=[{"id": "extra", "quantity": 1, "unit_price": 1400}],
    )
    (churn,) = await revenue(event)
    assert churn.mrr_impact == Decimal("-11.33")  # (2 x 10.00 + 14.00) / 3


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("content",), None, "content"),
        (("content", "transaction", "amount"), "12.5", "content.transaction.amount"),
        (("content", "transaction", "id"), None, "content.transaction.id"),
        (("event_type",), None, "event_type"),
    ],
)
async def test_unexpected_shapes_are_payload_errors(
    path: tuple[str, ...], value: Any, field: str
) -> None:
    event = load("payment_succeeded.first")
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(WebhookPayloadError) as caught:
        await revenue(event)
    assert caught.value.field == field


async def test_other_events_map_to_nothing() -> None:
    other = load("payment_succeeded.first") | {"event_type": "invoice_generated"}
    assert await revenue(other, resolver=None) == []

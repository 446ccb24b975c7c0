"""The Starlette/FastAPI helper, and the example Stripe webhook app end to end."""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.testclient import TestClient

from pulsora_revenue import EventType, Revenue
from pulsora_revenue._outbox import _drainer
from pulsora_revenue.starlette import get_revenue, lifespan
from pulsora_revenue.testing import FakePulsora, sign_stripe
from pulsora_revenue.webhooks import SQLiteLedger

from .conftest import DevServer
from .data import TOKEN
from .webhooks.test_webhook_stripe import event, paid, paid_session, refunded_charge, subscription

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
create_app: Callable[..., FastAPI] = importlib.import_module("fastapi_stripe").create_app

Backend = Literal["asyncio", "trio"]

SECRET = "whsec_test_0123456789"
backends = pytest.mark.parametrize("backend", ["asyncio", "trio"])


@pytest.fixture
def fake() -> FakePulsora:
    return FakePulsora()


def client(fake: FakePulsora, backend: Backend) -> TestClient:
    app = create_app(SECRET, api_token=TOKEN, transport=fake.transport)
    return TestClient(app, backend=backend)


def post(test_client: TestClient, payload: dict[str, Any], secret: str = SECRET) -> Any:
    body = json.dumps(payload).encode()
    headers = {"Stripe-Signature": sign_stripe(body, secret), "Content-Type": "application/json"}
    return test_client.post("/webhooks/stripe", content=body, headers=headers)


@backends
def test_a_paid_checkout_is_tracked(fake: FakePulsora, backend: Backend) -> None:
    with client(fake, backend) as test_client:
        response = post(test_client, event("checkout.session.completed", paid_session()))
    assert response.status_code == 200, response.text
    assert response.json() == {"tracked": 1}
    (tracked,) = fake.events
    assert tracked.amount == Decimal("49.99")
    assert tracked.visitor_fingerprint == "fp_browser"


@backends
def test_a_redelivered_webhook_is_recorded_once(fake: FakePulsora, backend: Backend) -> None:
    with client(fake, backend) as test_client:
        post(test_client, event("charge.refunded", refunded_charge(60), {"amount_refunded": 0}))
        again = post(
            test_client, event("charge.refunded", refunded_charge(60), {"amount_refunded": 0})
        )
    assert again.status_code == 200  # Pulsora has it already (409): acknowledged, not retried
    assert again.json() == {"tracked": 0}
    assert [e.event_type for e in fake.events] == [EventType.REFUND]


@backends
def test_a_bad_signature_is_refused(fake: FakePulsora, backend: Backend) -> None:
    with client(fake, backend) as test_client:
        response = post(test_client, event("checkout.session.completed", paid_session()), "whsec_x")
        missing = test_client.post("/webhooks/stripe", content=b"{}")
    assert response.status_code == 400
    assert "matches" in response.json()["detail"]
    assert missing.status_code == 400
    assert fake.events == []


@backends
def test_unattributable_events_are_acknowledged_not_tracked(
    fake: FakePulsora, backend: Backend
) -> None:
    with client(fake, backend) as test_client:
        response = post(test_client, event("checkout.session.completed", paid_session(metadata={})))
    assert response.status_code == 200
    assert response.json()["tracked"] == 0
    assert "visitor_fingerprint" in response.json()["skipped"]


@backends
def test_pulsora_down_makes_stripe_retry(fake: FakePulsora, backend: Backend) -> None:
    fake.outage(503, seconds=3600)
    with client(fake, backend) as test_client:
        response = post(test_client, event("checkout.session.completed", paid_session()))
    assert response.status_code == 503


@pytest.mark.parametrize(
    ("statuses", "outbox"),
    [((404,), True), ((408, 408, 408, 408), False), ((403,), False)],
    ids=["a-proxy-404-with-an-outbox", "408s-without-an-outbox", "a-public-token"],
)
def test_what_was_not_kept_is_not_acknowledged(
    fake: FakePulsora, tmp_path: Path, statuses: tuple[int, ...], outbox: bool
) -> None:
    fake.fail_next(*statuses)
    options = {"outbox": tmp_path / "outbox.sqlite"} if outbox else {}
    app = create_app(SECRET, api_token=TOKEN, transport=fake.transport, **options)
    with TestClient(app) as test_client:
        response = post(test_client, event("checkout.session.completed", paid_session()))
    assert response.status_code == 503  # so that Stripe delivers it again


@backends
def test_a_subscription_life_through_the_app_nets_its_mrr_to_zero(
    fake: FakePulsora, backend: Backend, tmp_path: Path
) -> None:
    one, three = subscription(quantity=1), subscription(quantity=3)
    life = [
        event("customer.subscription.created", one, id="evt_1", created=100),
        event("invoice.paid", paid(one, "subscription_create", 2000, 101), id="evt_2", created=101),
        event("customer.subscription.updated", three, id="evt_3", created=200),
        event("invoice.paid", paid(three, "subscription_update", 2667, 201), id="evt_4"),
        event("customer.subscription.deleted", three | {"status": "canceled"}, id="evt_5"),
    ]
    ledger = SQLiteLedger(tmp_path / "ledger.sqlite")
    app = create_app(SECRET, api_token=TOKEN, transport=fake.transport, ledger=ledger)
    with TestClient(app, backend=backend) as test_client:
        for payload in life[:3]:
            assert post(test_client, payload).status_code == 200
        fake.outage(503, seconds=3600)  # Pulsora is down: Stripe will deliver it again
        assert post(test_client, life[3]).status_code == 503
        fake.clear_faults()
        for payload in life[3:]:
            assert post(test_client, payload).status_code == 200
    mrr = [(e.event_type, e.mrr_impact) for e in fake.events]
    assert mrr == [
        (EventType.SUBSCRIPTION, Decimal("20.00")),
        (EventType.UPGRADE, Decimal("40.00")),  # the redelivery got the first answer again
        (EventType.CHURN, Decimal("-60.00")),
    ]


@backends
def test_lifespan_opens_and_closes_one_client(backend: Backend) -> None:
    fake = FakePulsora()
    seen: list[Revenue] = []
    app = FastAPI(lifespan=lifespan(api_token=TOKEN, transport=fake.transport))

    @app.get("/")
    async def handler(revenue: Annotated[Revenue, Depends(get_revenue)]) -> dict[str, str]:
        seen.append(revenue)
        return {"revenue": repr(revenue)}

    with TestClient(app, backend=backend) as test_client:
        test_client.get("/")
        test_client.get("/")
    assert seen[0] is seen[1]
    assert "closed" in repr(seen[0])


def test_lifespan_checks_the_configuration_at_once() -> None:
    from pulsora_revenue import ConfigurationError

    with pytest.raises(ConfigurationError):
        lifespan(api_token="pub_nope")


@backends
def test_get_revenue_without_the_lifespan_says_what_to_do(backend: Backend) -> None:
    app = FastAPI()

    @app.get("/")
    async def handler(revenue: Annotated[Revenue, Depends(get_revenue)]) -> None:
        return None

    with (
        TestClient(app, backend=backend) as test_client,
        pytest.raises(RuntimeError, match="lifespan"),
    ):
        test_client.get("/")


@backends
def test_a_signed_body_that_is_not_an_event_is_a_400(fake: FakePulsora, backend: Backend) -> None:
    with client(fake, backend) as test_client:
        for body in (b"not json", b"[]"):
            headers = {"Stripe-Signature": sign_stripe(body, SECRET)}
            response = test_client.post("/webhooks/stripe", content=body, headers=headers)
            assert response.status_code in (200, 400), response.text
            assert response.status_code == 400 or response.json()["tracked"] == 0


def test_the_example_over_real_http_with_the_emulator(server: DevServer) -> None:
    """uvicorn serves the example app, which tracks into the dev server (aiohttp on asyncio)."""
    from pulsora_revenue._emulator._app import serve_in_thread

    app = create_app(SECRET, api_token=TOKEN, endpoint=server.endpoint)
    with serve_in_thread(app) as url:
        body = json.dumps(event("checkout.session.completed", paid_session())).encode()
        headers = {"Stripe-Signature": sign_stripe(body, SECRET)}
        first = httpx.post(f"{url}/webhooks/stripe", content=body, headers=headers)
        again = httpx.post(f"{url}/webhooks/stripe", content=body, headers=headers)
    assert (first.status_code, first.json()) == (200, {"tracked": 1})
    assert (again.status_code, again.json()) == (200, {"tracked": 0})
    (stored,) = server.events()
    assert stored["amount"] == 49.99


@backends
def test_with_an_outbox_an_outage_is_acknowledged_and_delivered_later(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first app's drainer may have tried already, and put the event off for a
    # second: the second app's then looks again at its idle check, 5 s on, not 0.1.
    monkeypatch.setattr(_drainer, "IDLE_CHECK", 0.1)
    fake = FakePulsora()
    fake.outage(503, seconds=3600)
    outbox = tmp_path / "outbox.sqlite"
    app = create_app(SECRET, api_token=TOKEN, transport=fake.transport, outbox=outbox)
    with TestClient(app, backend=backend) as test_client:
        response = post(test_client, event("checkout.session.completed", paid_session()))
    assert response.status_code == 200
    assert response.json() == {"tracked": 1}
    assert fake.events == []
    fake.clear_faults()
    app = create_app(SECRET, api_token=TOKEN, transport=fake.transport, outbox=outbox)
    with TestClient(app, backend=backend):  # the lifespan's drainer delivers in the background
        deadline = time.monotonic() + 20
        while not fake.events and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [e.transaction_id for e in fake.events] == [paid_session()["payment_intent"]]

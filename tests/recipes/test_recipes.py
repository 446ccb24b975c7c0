"""The framework recipes in examples/, each driven by its framework's own test tooling.

Django's test ``Client``, Flask's ``test_client()``, Celery in eager mode (no
broker), and the serverless handler run as a script of its own: each against
``FakePulsora`` or the emulator over HTTP, configured from the environment as
users configure them.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import django
import pytest
from django.conf import settings
from django.test import Client
from django.urls import clear_url_caches

from pulsora_revenue import SyncRevenue
from pulsora_revenue.testing import FakePulsora

from ..conftest import DevServer
from ..data import TOKEN

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

PAYMENT: dict[str, Any] = {
    "id": "pi_recipe_1",
    "customer": "cus_1",
    "amount": "49.99",
    "currency": "usd",
    "visitor_fingerprint": "fp_recipe",
    "session_id": "sess_recipe",
}


def attribution(event: Any) -> tuple[object, object, object]:
    """What a recipe must carry through: the payment, and who made it in which session."""
    if isinstance(event, dict):
        return event["transaction_id"], event["visitor_fingerprint"], event["session_id"]
    return event.transaction_id, event.visitor_fingerprint, event.session_id


@pytest.fixture
def configured(server: DevServer, monkeypatch: pytest.MonkeyPatch) -> DevServer:
    """The environment of a deployed app, its endpoint the emulator."""
    monkeypatch.setenv("PULSORA_SECRET_TOKEN", TOKEN)
    monkeypatch.setenv("PULSORA_ENDPOINT", server.endpoint)
    return server


def fresh(name: str) -> ModuleType:
    """Import the example *name* anew: its module-level clients read this test's environment."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.fixture
def django_views(configured: DevServer) -> Iterator[ModuleType]:
    """The example's views, as the URLconf of a minimal project (no database)."""
    if not settings.configured:
        settings.configure(ROOT_URLCONF="django_views", ALLOWED_HOSTS=["testserver"])
        django.setup()
    views = fresh("django_views")
    clear_url_caches()  # the URLconf is the module just imported
    yield views
    views.revenue.close()
    asyncio.run(views.async_revenue.aclose())


def test_django_sync_view(django_views: ModuleType, server: DevServer) -> None:
    response = Client().post("/payments/", PAYMENT, content_type="application/json")
    assert (response.status_code, response.json()) == (200, {"tracked": True})
    again = Client().post("/payments/", PAYMENT, content_type="application/json")
    assert again.status_code == 200  # a repeat: Pulsora has it already
    (event,) = server.events()
    assert attribution(event) == ("pi_recipe_1", "fp_recipe", "sess_recipe")


def test_django_async_view_on_a_new_loop_per_request(
    django_views: ModuleType, server: DevServer
) -> None:
    client = Client()  # under WSGI: each async view runs in an asyncio.run of its own
    for n in range(3):
        payment = {**PAYMENT, "id": f"pi_async_{n}"}
        response = client.post("/payments/async/", payment, content_type="application/json")
        assert (response.status_code, response.json()) == (200, {"tracked": True})
    assert sorted(attribution(e) for e in server.events()) == [
        (f"pi_async_{n}", "fp_recipe", "sess_recipe") for n in range(3)
    ]


def test_django_refuses_an_unattributed_payment(django_views: ModuleType) -> None:
    payment = {**PAYMENT, "session_id": ""}
    response = Client().post("/payments/", payment, content_type="application/json")
    assert response.status_code == 400
    assert "session_id" in response.json()["error"]


def test_flask_route() -> None:
    create_app = fresh("flask_app").create_app
    fake = FakePulsora()
    with SyncRevenue(TOKEN, transport=fake.transport) as revenue:
        client = create_app(revenue).test_client()
        response = client.post("/payments", json=PAYMENT)
        assert response.status_code == 200
        assert response.json == {"tracked": True, "queued": False}
        invalid = client.post("/payments", json={**PAYMENT, "visitor_fingerprint": None})
        assert invalid.status_code == 400
    (event,) = fake.events
    assert attribution(event) == ("pi_recipe_1", "fp_recipe", "sess_recipe")


def test_celery_task_eagerly(configured: DevServer) -> None:
    tasks = fresh("celery_tasks")
    tasks.app.conf.update(
        broker_url="memory://", task_always_eager=True, task_eager_propagates=True
    )
    try:
        assert tasks.record_payment.delay(PAYMENT).get(timeout=10) is True
        assert tasks.record_payment.delay(PAYMENT).get(timeout=10) is False  # recorded once
    finally:
        tasks.revenue.close()
    (event,) = configured.events()
    assert attribution(event) == ("pi_recipe_1", "fp_recipe", "sess_recipe")


def test_serverless_handler_then_the_process_ends(configured: DevServer) -> None:
    """The handler returns, and the process ends without close(): at once, and quietly."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "serverless.py")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert (done.returncode, done.stderr) == (0, "")
    assert "'statusCode': 200" in done.stdout
    assert elapsed < 5
    (event,) = configured.events()
    assert attribution(event) == (
        "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "fp_from_the_page",
        "session_from_the_page",
    )

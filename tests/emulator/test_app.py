"""The emulator's HTTP surface, through a plain HTTP client: no event loop, no backend.

What the client library does against the emulator over HTTP is in test_server.py,
on every event loop and backend.
"""

from __future__ import annotations

import httpx
import pytest

from ..conftest import DevServer
from .test_ingest import MALFORMED, SECRET


@pytest.mark.parametrize(
    ("name", "payload", "wanted"), MALFORMED[:12], ids=[m[0] for m in MALFORMED[:12]]
)
def test_malformed_bodies_over_http(
    server: DevServer, name: str, payload: bytes, wanted: str
) -> None:
    with httpx.Client() as client:
        response = client.post(server.endpoint, headers=dict(SECRET), content=payload)
    assert response.status_code == 400, name
    assert wanted in response.text
    assert server.events() == []


def test_huge_body_is_refused_without_a_500(server: DevServer) -> None:
    with httpx.Client() as client:
        response = client.post(
            server.endpoint, headers=dict(SECRET), content=b"x" * (5 * 1024 * 1024)
        )
    assert response.status_code == 400
    assert "larger than" in response.json()["message"]


def test_bad_fault_script_is_a_400(server: DevServer) -> None:
    with httpx.Client() as client:
        response = client.post(f"{server.url}/api/faults", json={"faults": [{"status": "x"}]})
    assert response.status_code == 400
    assert "status" in response.json()["error"]


def test_a_refused_fault_script_changes_nothing(server: DevServer) -> None:
    with httpx.Client() as client:
        bad = client.post(
            f"{server.url}/api/faults", json={"faults": [{"status": 503}], "chaos": 5}
        )
        assert bad.status_code == 400
        probe = client.post(f"{server.url}/api/faults", json={"faults": []})
    assert probe.json()["pending"] == 0

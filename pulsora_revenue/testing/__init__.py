"""Helpers for testing code that uses pulsora_revenue.

``FakePulsora`` is Pulsora's ingest API in process, usable as
``Revenue(..., transport=fake.transport)``; the pytest fixture ``fake_pulsora``
comes with ``pytest_plugins = ["pulsora_revenue.testing.pytest_plugin"]``.
``serve_emulator()`` serves the same contract over real HTTP, in a thread, for
tests that need a URL (``Revenue(endpoint=emulator.endpoint)``).

``set_testing(True)`` makes retries wait no real time: every wait the client
would sleep is recorded instead (see ``recorded_sleeps``), and deadlines are
measured as if the waits had happened.

``sign_stripe`` and ``sign_paddle`` sign webhook payloads, to test your routes.
"""

from __future__ import annotations

from .._emulator._fake import FakePulsora, Rejection
from .._emulator._faults import Fault
from ._mode import fast_retries, is_testing, recorded_sleeps, set_testing
from ._serve import EmulatorServer, serve_emulator
from ._signatures import sign_paddle, sign_stripe

__all__ = [
    "EmulatorServer",
    "FakePulsora",
    "Fault",
    "Rejection",
    "fast_retries",
    "is_testing",
    "recorded_sleeps",
    "serve_emulator",
    "set_testing",
    "sign_paddle",
    "sign_stripe",
]

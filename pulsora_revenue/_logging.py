"""The ``PULSORA_LOG`` switch: the library's logging turned on without code.

``PULSORA_LOG=info`` (or ``debug``) adds one handler to the ``pulsora_revenue``
logger, writing to stderr at that level, as ``OPENAI_LOG`` does for openai's;
``debug`` also logs every attempt, as ``Revenue(debug=True)`` does. Read when a
client is constructed: one environment lookup, and nothing more when it is unset.
"""

from __future__ import annotations

import logging
import os
import warnings

from ._event import RevenueEvent

LOG_ENV = "PULSORA_LOG"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The name of the handler PULSORA_LOG adds, by which it is found again.
HANDLER_NAME = "pulsora_revenue: PULSORA_LOG"

logger = logging.getLogger("pulsora_revenue")

#: The values of PULSORA_LOG already warned about: one warning each.
_warned: set[str] = set()


def apply_env() -> bool:
    """Apply ``$PULSORA_LOG``; return whether every attempt is to be logged (``debug``).

    An unset or empty variable changes nothing; an unknown value is ignored, with
    one ``RuntimeWarning``.
    """
    value = os.environ.get(LOG_ENV)
    if not value:
        return False
    level = LEVELS.get(value.strip().lower())
    if level is None:
        if value not in _warned:
            _warned.add(value)
            warnings.warn(
                f"{LOG_ENV}={value!r} is ignored: use {LOG_ENV}=info or {LOG_ENV}=debug",
                RuntimeWarning,
                stacklevel=3,
            )
        return False
    switch_on(level)
    return level == logging.DEBUG


def switch_on(level: int) -> None:
    """Log at *level* and above to stderr: one handler, added once, at the latest level."""
    handler = next((h for h in logger.handlers if h.name == HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler()  # stderr
        handler.name = HANDLER_NAME
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    handler.setLevel(level)
    logger.setLevel(level)


def log_fields(event: RevenueEvent, **more: object) -> dict[str, object]:
    """The ``extra`` of a log record about *event*, for JSON log handlers.

    No visitor, session or customer id: the event's type and transaction id,
    and *more* (``attempt``, ``status_code``...).
    """
    kind = event.event_type.value if event.event_type else None
    return {"event_type": kind, "transaction_id": event.transaction_id, **more}

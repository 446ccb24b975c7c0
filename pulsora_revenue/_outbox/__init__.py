"""The outbox: events ``track`` could not deliver, kept on disk (SQLite) until they are.

Loaded only by a client given ``outbox=``, and by the command line's ``outbox``
command: ``sqlite3`` is imported here, not by ``import pulsora_revenue``.
"""

from ._queue import Outbox, is_outbox
from ._service import OutboxService

__all__ = ["Outbox", "OutboxService", "is_outbox"]

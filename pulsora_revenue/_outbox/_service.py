"""A client's outbox as one service: the queue on disk, and its drainer in the background."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from os import PathLike

import anyio

from .. import _json
from .._convert import CONVERTER
from .._delivery import Channel
from .._errors import OutboxError, ValidationError
from .._event import RevenueEvent, idempotency_key
from .._hooks import OutboxChangeKind
from .._logging import log_fields
from .._results import DeadLetter
from .._transports import Sender
from ._drainer import Drainer, drain_channel
from ._queue import Buried, Outbox

logger = logging.getLogger("pulsora_revenue")

#: The shortest wait between two drains of ``flush`` while Pulsora is down.
FLUSH_POLL = 0.05


def _dead_letter(buried: Buried) -> DeadLetter:
    try:
        event: RevenueEvent | None = CONVERTER.structure(_json.loads(buried.data), RevenueEvent)
    except (ValidationError, ValueError):
        event = None
    return DeadLetter(
        buried.id,
        buried.transaction_id,
        buried.event_type,
        event,
        buried.error,
        datetime.fromtimestamp(buried.enqueued_at, UTC),
        datetime.fromtimestamp(buried.died_at, UTC),
    )


class OutboxService:
    """The outbox of one client: events it could not deliver yet, and their delivery.

    ``running`` delivers what earlier runs queued, in the background, for as
    long as its block lasts; ``stop`` ends that from any task.
    """

    def __init__(self, path: str | PathLike[str], *, endpoint: str, channel: Channel) -> None:
        self.queue = Outbox(path, endpoint=endpoint)
        self._drainer = Drainer(self.queue, drain_channel(channel))
        self._pauses, self._hooks = channel.pauses, channel.hooks
        self._draining: anyio.CancelScope | None = None  # the background drainer's
        self._drained: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"<OutboxService {str(self.queue.path)!r}>"

    @asynccontextmanager
    async def running(self, sender: Sender) -> AsyncIterator[None]:
        """Open the file (a bad path fails here), and drain it in the background meanwhile."""
        await self.queue.open()
        self._draining, self._drained = anyio.CancelScope(), anyio.Event()
        async with anyio.create_task_group() as background:
            background.start_soon(self._run, sender, self._draining, self._drained)
            try:
                yield
            finally:
                await self.stop()

    async def _run(self, sender: Sender, scope: anyio.CancelScope, done: anyio.Event) -> None:
        try:
            with scope:
                await self._drainer.run(sender)
        finally:
            done.set()

    async def stop(self) -> None:
        """Stop delivering, and close the file once its last write is done; idempotent."""
        with anyio.CancelScope(shield=True):  # no closing the file under its last write
            if self._draining is not None and self._drained is not None:
                self._draining.cancel()
                await self._drained.wait()
            await self.queue.close()

    async def put(self, event: RevenueEvent, body: bytes, failure: Exception) -> None:
        """Queue *event* (encoded as *body*), whose delivery failed with *failure*."""
        transaction_id, event_type = event.dedup_key
        data = _json.dumps(CONVERTER.unstructure(event)).decode()
        await self.queue.put(
            idempotency_key(event), transaction_id, event_type, data, body, failure=failure
        )
        await self._count_once()
        status = getattr(failure, "status_code", None)
        extra = log_fields(event, status_code=status, depth=self.queue.pending)
        logger.info("queued %s in the outbox: %s", transaction_id, failure, extra=extra)
        if self._hooks is not None:
            self._hooks.outbox(OutboxChangeKind.QUEUED, event, self.queue.pending, failure)
        self._drainer.wake()

    async def flush(self, sender: Sender, timeout: float | None) -> int:  # noqa: ASYNC109
        """Deliver now, for at most *timeout* seconds; return how many are left."""
        drainer = self._drainer
        with anyio.move_on_after(timeout):
            await self._count_once()
            while await drainer.drain(sender, due_only=False) or await self.size():
                with self._pauses.cut_short():  # closing the client ends it, as a back-off
                    await anyio.sleep(max(drainer.pause, FLUSH_POLL))  # paced: Pulsora is down
                self._pauses.check()
        return await self.size()

    async def _count_once(self) -> None:
        """Count the rows, once, for the depth changes report; unknown if that fails."""
        if self.queue.pending is None:
            with contextlib.suppress(OutboxError):
                await self.size()

    async def size(self) -> int:
        """How many events for this endpoint wait."""
        return (await self.queue.stats()).pending

    async def dead_letters(self) -> list[DeadLetter]:
        """This endpoint's dead letters, oldest first."""
        return [_dead_letter(buried) for buried in await self.queue.dead_letters()]

    async def retry_dead_letters(self, letters: Iterable[DeadLetter] | None) -> int:
        """Queue *letters* (or all of this endpoint's) again; return how many."""
        ids = None if letters is None else [letter.id for letter in letters]
        revived = await self.queue.revive(ids)
        if revived:
            self._drainer.wake()
        return revived

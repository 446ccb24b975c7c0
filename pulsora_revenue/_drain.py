"""Draining the outbox: deliver queued events, oldest first, and back off while Pulsora is down."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable

import anyio
import attrs

from . import _json
from ._convert import CONVERTER
from ._delivery import MAX_RETRY_AFTER, Channel
from ._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    DuplicateTransactionError,
    OutboxError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from ._event import RevenueEvent
from ._outbox import Outbox, Row
from ._retry import RetryPolicy

logger = logging.getLogger("pulsora_revenue")

#: Rows claimed at a time: each takes at most the drain deadline (10 s), so that a
#: batch is sent well within the claim's lease, and no other drainer takes them.
BATCH = 4
#: Longest wait between two drains while Pulsora is down, and between two idle checks.
MAX_PAUSE = 60.0
IDLE_CHECK = 5.0

_DOWN = (
    APIConnectionError,
    ServerError,
    RateLimitError,
    AuthenticationError,
    PermissionDeniedError,
)

#: Statuses that refuse the event itself, for good: such rows become dead letters.
PERMANENT = frozenset({400, 413, 422})


#: How long writing down an outcome may hold up a cancellation (``aclose()``, a
#: flush timeout) while another process has the file locked. If it runs out, the
#: row stays claimed until its lease ends, and is sent again then: Pulsora's 409
#: says it was recorded.
SETTLE_WITHIN = 2.0


def settling() -> anyio.CancelScope:
    """A scope for writing down an outcome: shielded, for ``SETTLE_WITHIN`` at most."""
    return anyio.CancelScope(shield=True, deadline=anyio.current_time() + SETTLE_WITHIN)


@attrs.define
class Drainer:
    """Delivers an outbox's rows over *channel*; one per ``Revenue`` with an outbox."""

    outbox: Outbox
    channel: Channel
    wake: anyio.Event = attrs.Factory(anyio.Event)
    pause: float = 0.0  # the current back-off, while Pulsora is down

    async def drain(self, *, due_only: bool = True) -> int:
        """Deliver rows until none is left or Pulsora is down; return how many went.

        With *due_only* false, rows waiting out a back-off are taken too. A row
        whose outcome the outbox cannot write down (a full disk) stays claimed
        until its lease ends, and the next rows go on; the first such
        ``OutboxError`` is raised once the drain is over.
        """
        delivered, down = 0, False
        unwritten: list[OutboxError] = []
        while not down and (rows := await self.outbox.claim(BATCH, due_only=due_only)):
            for position, row in enumerate(rows):
                try:
                    outcome = await self._deliver(row, unwritten)
                except BaseException:  # cancelled (aclose), or a failure of our own:
                    with settling(), contextlib.suppress(OutboxError):  # hand the rest back
                        await self.outbox.release(rows[position:])  # (else their lease ends)
                    raise
                if outcome == "down":
                    with settling():  # nothing left claimed for a lease
                        await self._release(rows[position + 1 :])
                    down = True
                    break
                if outcome == "done":
                    delivered += 1
                    self.pause = 0.0  # Pulsora accepts again: a later failure starts afresh
        if unwritten:
            raise unwritten[0]
        return delivered

    async def _deliver(self, row: Row, unwritten: list[OutboxError]) -> str:
        """Send one row and write down its outcome ("done", "down" or "dead")."""
        try:
            event = CONVERTER.structure(_json.loads(row.data), RevenueEvent)
        except (ValidationError, ValueError) as exc:  # a row this version cannot read
            await self._write(self.outbox.bury(row, f"unreadable: {exc}"), unwritten)
            return "dead"
        try:
            await self.channel.deliver(event, row.body, key=row.idempotency_key)
        except DuplicateTransactionError:
            pass  # recorded already, by an earlier lost answer
        except (*_DOWN, APIError) as exc:
            return await self._refused(row, exc, unwritten)
        await self._write(self.outbox.done(row), unwritten)
        return "done"

    async def _write(self, write: Awaitable[None], unwritten: list[OutboxError]) -> bool:
        """Write down an outcome in a ``settling`` scope; False if it ran out of time.

        Once the answer is in, a cancellation must not hand back a row Pulsora
        has accepted. A write that fails (an ``OutboxError``, kept in
        *unwritten*) or runs out of time leaves the row claimed until its lease
        ends; it is sent again then, and Pulsora's 409 says it was recorded.
        """
        with settling():
            try:
                await write
            except OutboxError as exc:
                unwritten.append(exc)
            return True
        return False

    async def _refused(
        self, row: Row, exc: APIConnectionError | APIError, unwritten: list[OutboxError]
    ) -> str:
        if isinstance(exc, _DOWN) or exc.status_code not in PERMANENT:
            # Pulsora down, or a 408, or a proxy's 404: not the row's fault.
            self.pause = min(MAX_PAUSE, max(1.0, self.pause * 2))
            if isinstance(exc, RateLimitError) and exc.retry_after is not None:
                wait = min(exc.retry_after, MAX_RETRY_AFTER)  # not a proxy's absurd 1e20
                self.pause = max(self.pause, wait)  # for the whole queue
            await self._write(self.outbox.retry_later(row, self.pause, str(exc)), unwritten)
            logger.info("outbox: not delivered, next try in %.0f s: %s", self.pause, exc)
            return "down"
        if not await self._write(self.outbox.bury(row, str(exc)), unwritten):
            return "down"  # writing it down ran out of time: the lease ends the claim
        logger.warning("outbox: dead letter %s: %s", row.idempotency_key[:12], exc)
        return "dead"

    async def _release(self, rows: list[Row]) -> None:
        for row in rows:
            await self.outbox.retry_later(row, self.pause, "not tried: Pulsora was down")

    async def run(self) -> None:
        """Drain at once, then when woken, after a back-off, or every few seconds.

        Nothing a drain raises (a full disk, a locked file) may end this loop: it
        runs beside the application's own code, which it must never cancel.
        """
        while True:
            try:
                await self.drain()
            except OutboxError as exc:  # the disk: what could be delivered was
                self.pause = min(MAX_PAUSE, max(1.0, self.pause * 2))
                logger.error("outbox: %s Next try in %.0f s.", exc, self.pause)  # noqa: TRY400
            except Exception:
                self.pause = min(MAX_PAUSE, max(1.0, self.pause * 2))
                logger.exception("outbox: drain failed, next try in %.0f s", self.pause)
            with anyio.move_on_after(self.pause or IDLE_CHECK):
                await self.wake.wait()
            self.wake = anyio.Event()


def drain_channel(channel: Channel) -> Channel:
    """The channel for draining: one quick attempt a row; the drainer backs off itself."""
    policy = channel.policy
    quick = RetryPolicy(
        max_attempts=2,
        initial_delay=policy.initial_delay,
        max_delay=policy.max_delay,
        deadline=min(policy.deadline, 10.0),
        uniform=policy.uniform,
    )
    return attrs.evolve(channel, policy=quick)

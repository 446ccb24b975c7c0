"""Draining the outbox: deliver queued events, oldest first, and back off while Pulsora is down."""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Awaitable

import anyio
import attrs

from .. import _json
from .._convert import CONVERTER
from .._delivery import MAX_RETRY_AFTER, Channel
from .._errors import (
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
from .._event import RevenueEvent
from .._hooks import OutboxChangeKind
from .._logging import log_fields
from .._retry import RetryPolicy
from .._transports import Sender
from ._queue import Outbox, Queued

logger = logging.getLogger("pulsora_revenue")

#: Rows claimed at a time: each takes at most the drain deadline (10 s), so that a
#: batch is sent well within the claim's lease, and no other drainer takes them.
BATCH = 4
#: The back-off while Pulsora is down: from MIN_PAUSE, doubling, to MAX_PAUSE seconds.
MIN_PAUSE = 1.0
MAX_PAUSE = 60.0
#: The longest wait between two drains while there is nothing to send; a row put
#: off until sooner (by another process's back-off) is drained when it falls due.
IDLE_CHECK = 5.0
#: The shortest wait between two idle drains.
IDLE_FLOOR = 0.05

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


class Settled(enum.Enum):
    """What became of one row a drainer sent."""

    DELIVERED = "delivered"  # accepted (or recorded already): deleted
    DOWN = "down"  # Pulsora (or the disk) is in trouble: it waits for the back-off
    DEAD = "dead"  # refused for good: moved to the dead letters


def settling() -> anyio.CancelScope:
    """A scope for writing down an outcome: shielded, for ``SETTLE_WITHIN`` at most."""
    return anyio.CancelScope(shield=True, deadline=anyio.current_time() + SETTLE_WITHIN)


@attrs.define
class Drainer:
    """Delivers an outbox's rows over *channel*; one per ``Revenue`` with an outbox."""

    outbox: Outbox
    channel: Channel
    pause: float = 0.0  # the current back-off, while Pulsora is down
    _woken: anyio.Event | None = None  # set by wake(): there is a row to send

    def backed_off(self) -> float:
        """The next pause while Pulsora is down: the last one doubled, within bounds."""
        return min(MAX_PAUSE, max(MIN_PAUSE, self.pause * 2))

    def wake(self) -> None:
        """Say that a row was queued: an idle ``run`` drains now, not at its next check.

        A drainer backing off (Pulsora down) waits its back-off out all the same.
        """
        if self._woken is not None:
            self._woken.set()

    async def drain(self, sender: Sender, *, due_only: bool = True) -> int:
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
                    outcome = await self._deliver(sender, row, unwritten)
                except BaseException:  # cancelled (aclose), or a failure of our own:
                    with settling(), contextlib.suppress(OutboxError):  # hand the rest back
                        await self.outbox.release(rows[position:])  # (else their lease ends)
                    raise
                if outcome is Settled.DOWN:
                    with settling():  # nothing left claimed for a lease
                        await self._release(rows[position + 1 :])
                    down = True
                    break
                if outcome is Settled.DELIVERED:
                    delivered += 1
                    self.pause = 0.0  # Pulsora accepts again: a later failure starts afresh
        if unwritten:
            raise unwritten[0]
        return delivered

    async def _deliver(self, sender: Sender, row: Queued, unwritten: list[OutboxError]) -> Settled:
        """Send one row and write down what became of it."""
        try:
            event = CONVERTER.structure(_json.loads(row.data), RevenueEvent)
        except (ValidationError, ValueError) as exc:  # a row this version cannot read
            if await self._write(self.outbox.bury(row, f"unreadable: {exc}"), unwritten):
                self._report(OutboxChangeKind.DEAD_LETTERED, None, exc)
            return Settled.DEAD
        try:
            await self.channel.deliver(sender, event, row.body, key=row.idempotency_key)
        except DuplicateTransactionError:
            pass  # recorded already, by an earlier lost answer
        except (*_DOWN, APIError) as exc:
            return await self._refused(row, event, exc, unwritten)
        if await self._write(self.outbox.done(row), unwritten):
            self._report(OutboxChangeKind.DELIVERED, event)
        return Settled.DELIVERED

    def _report(
        self, change: OutboxChangeKind, event: RevenueEvent | None, error: Exception | None = None
    ) -> None:
        """Tell the client's hooks, if any, of a change."""
        if self.channel.hooks is not None:
            self.channel.hooks.outbox(change, event, self.outbox.pending, error)

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
        self,
        row: Queued,
        event: RevenueEvent,
        exc: APIConnectionError | APIError,
        unwritten: list[OutboxError],
    ) -> Settled:
        if isinstance(exc, _DOWN) or exc.status_code not in PERMANENT:
            # Pulsora down, or a 408, or a proxy's 404: not the row's fault.
            self.pause = self.backed_off()
            if isinstance(exc, RateLimitError) and exc.retry_after is not None:
                wait = min(exc.retry_after, MAX_RETRY_AFTER)  # not a proxy's absurd 1e20
                self.pause = max(self.pause, wait)  # for the whole queue
            await self._write(self.outbox.retry_later(row, self.pause, str(exc)), unwritten)
            status = getattr(exc, "status_code", None)
            extra = log_fields(event, status_code=status, wait=self.pause)
            logger.info(
                "outbox: not delivered, next try in %.0f s: %s", self.pause, exc, extra=extra
            )
            return Settled.DOWN
        if not await self._write(self.outbox.bury(row, str(exc)), unwritten):
            return Settled.DOWN  # writing it down ran out of time: the lease ends the claim
        extra = log_fields(event, status_code=exc.status_code, depth=self.outbox.pending)
        logger.warning("outbox: dead letter %s: %s", row.idempotency_key[:12], exc, extra=extra)
        self._report(OutboxChangeKind.DEAD_LETTERED, event, exc)
        return Settled.DEAD

    async def _release(self, rows: list[Queued]) -> None:
        for row in rows:
            await self.outbox.retry_later(row, self.pause, "not tried: Pulsora was down")

    async def run(self, sender: Sender) -> None:
        """Drain at once; then after a back-off, or when woken, or every few seconds.

        Nothing a drain raises (a full disk, a locked file) may end this loop: it
        runs beside the application's own code, which it must never cancel.
        """
        while True:
            self._woken = anyio.Event()
            try:
                await self.drain(sender)
            except OutboxError as exc:  # the disk: what could be delivered was
                self.pause = self.backed_off()
                logger.error("outbox: %s Next try in %.0f s.", exc, self.pause)  # noqa: TRY400
            except Exception:
                self.pause = self.backed_off()
                logger.exception("outbox: drain failed, next try in %.0f s", self.pause)
            if self.pause:  # Pulsora is down: a new row does not cut the back-off short
                await anyio.sleep(self.pause)
                continue
            with anyio.move_on_after(await self._idle()):
                await self._woken.wait()

    async def _idle(self) -> float:
        """How long to wait for a wake-up: until the next row falls due, at most IDLE_CHECK."""
        try:
            due = await self.outbox.next_due()
        except OutboxError:  # the next drain says what is wrong
            return IDLE_CHECK
        if due is None:
            return IDLE_CHECK
        return min(IDLE_CHECK, max(IDLE_FLOOR, due - time.time()))


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

"""Delivering one event: the retry loop shared by ``track`` and ``track_many``.

The loop only carries out what ``_retry.decide`` says. In bulk mode it also
waits for the shared ``Pacing``; a 429 there closes the gate for every sender
and does not use up the event's attempts, but the wait counts against its
deadline, like every other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio.lowlevel
import attrs

from . import _clock
from ._event import RevenueEvent
from ._http import Reply, idempotency_key, to_exception
from ._pacing import Pacing
from ._retry import RetryPolicy, Verdict, decide
from ._senders import Sender

logger = logging.getLogger("pulsora_revenue")

#: How many 429s one event may wait out in bulk mode before they count as failed
#: attempts: a server that never stops answering 429 must not hold a run forever.
MAX_PACED = 100

#: The longest ``Retry-After`` that is waited out (Pulsora's rate limit counts per
#: hour). In bulk mode a 429 asking for more counts as a failed attempt: an absurd
#: header (a proxy's ``Retry-After: 1e20``) must not hold a run forever either.
MAX_RETRY_AFTER = 3600.0


@attrs.frozen
class TrackResult:
    """What happened to one tracked event.

    ``status_code`` is the accepting HTTP status (409 for a ``duplicate``, None
    when queued), ``attempts`` the number of requests made, ``elapsed`` the
    seconds the call took, and ``duplicate`` whether Pulsora reported the event
    as already recorded after an earlier attempt of this same call lost its answer.
    """

    event: RevenueEvent
    status_code: int | None
    attempts: int
    elapsed: float
    duplicate: bool = False
    queued: bool = False


#: What ``Channel.send`` returns: a ``TrackResult``'s status_code, attempts,
#: elapsed and duplicate, in the order of its fields (``TrackResult(event, *delivered)``).
Delivered = tuple[int | None, int, float, bool]


@attrs.define
class Pauses:
    """The waits of a client's calls between attempts, which closing the client ends.

    A call waiting out a back-off (or a 429) when its client is closed would
    otherwise hold its caller until the wait is over, up to its whole deadline,
    only to fail then with ``ClientClosedError``.
    """

    closed: bool = False
    _scopes: set[anyio.CancelScope] = attrs.Factory(set)

    @contextmanager
    def cut_short(self) -> Iterator[None]:
        """A scope for one wait: cancelled when the client closes (at once, if it has)."""
        with anyio.CancelScope() as scope:
            if self.closed:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield
            finally:
                self._scopes.discard(scope)

    def close(self) -> None:
        """End every wait in progress, and any to come."""
        self.closed = True
        for scope in self._scopes:
            scope.cancel()


@attrs.frozen
class Channel:
    """Everything needed to send events to one Pulsora endpoint.

    *sender* returns the ``Sender`` to use (it raises once the owner is
    closed), *url* is the endpoint as shown in messages, *scrub* removes the
    token from text the server sent back, and *debug* logs every attempt.
    *pauses* are the waits between attempts, shared by every copy of a client's
    channel (``attrs.evolve`` keeps it), which the client ends when it closes.
    """

    sender: Callable[[], Sender] = attrs.field(repr=False)
    url: str
    policy: RetryPolicy
    scrub: Callable[[str], str] = attrs.field(repr=False)
    debug: bool = False
    pauses: Pauses = attrs.field(factory=Pauses, repr=False, eq=False)

    async def deliver(
        self,
        event: RevenueEvent,
        body: bytes,
        *,
        key: str | None = None,
        pacing: Pacing | None = None,
    ) -> TrackResult:
        """Send *event* (encoded as *body*) until accepted, or raise the final error.

        *key* is the event's ``idempotency_key``, if the caller has it already.
        A caller cancelled already sends nothing: on a pooled connection aiohttp
        writes the request before it first waits, where a cancellation would land.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        return TrackResult(event, *await self.send(event, body, key=key, pacing=pacing))

    async def send(
        self,
        event: RevenueEvent,
        body: bytes,
        *,
        key: str | None = None,
        pacing: Pacing | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Delivered:
        """Like ``deliver``, but return the figures of its ``TrackResult``, not one.

        ``track_many`` builds the ``TrackResult`` only when someone will see it,
        and passes the loop's *clock*, looked up once a run.
        """
        policy = self.policy
        key = key or idempotency_key(event)
        watch = _clock.Stopwatch(clock)
        maybe_delivered = False
        requests = tries = paced = 0
        while True:
            fresh = not requests  # a first attempt that did not wait has the whole deadline
            # Only where there is a wait: a cancel scope costs microseconds an event.
            if pacing is not None and not pacing.idle:  # the 429 gate counts against the deadline
                refusal = None  # if closing the client cut the wait short
                with self.pauses.cut_short():  # then self.sender() raises ClientClosedError
                    refusal = await pacing.wait(watch, policy.deadline)
                if refusal is not None:  # the gate would hold it past its deadline: fail now
                    raise to_exception(
                        refusal,
                        event=event,
                        attempts=requests,
                        url=self.url,
                        maybe_delivered=maybe_delivered,
                    )
                fresh = False
            budget = policy.deadline if fresh else max(0.0, policy.deadline - watch.elapsed())
            reply = await self.sender().post(body, key, budget=budget, scrub=self.scrub)
            requests += 1
            elapsed = watch.elapsed()
            if self.debug:
                self._log(event, reply, requests, elapsed)
            if reply.seen.accepted:  # the common case: nothing to decide
                return reply.seen.status_code, requests, elapsed, False
            if pacing is not None and reply.seen.status_code == 429 and paced < MAX_PACED:
                wait = reply.seen.retry_after
                if wait is None or wait <= MAX_RETRY_AFTER:
                    paced += 1  # waiting out a 429 is not a failed attempt, within reason
                    wait = policy.backoff(1) if wait is None else wait
                    pacing.gate.close_for(max(wait, policy.initial_delay), reply)
                    continue  # the gate turns it away if the wait ends past its deadline
            tries += 1
            decision = decide(
                policy, reply.seen, attempt=tries, elapsed=elapsed, maybe_delivered=maybe_delivered
            )
            if decision.verdict is Verdict.DELIVERED:
                return reply.seen.status_code, requests, elapsed, decision.duplicate
            if decision.verdict is Verdict.GIVE_UP:
                raise to_exception(
                    reply,
                    event=event,
                    attempts=requests,
                    url=self.url,
                    maybe_delivered=maybe_delivered,
                )
            maybe_delivered = maybe_delivered or reply.seen.may_have_landed
            if self.debug:
                logger.debug("retrying %s in %.3f s", summary(event), decision.delay)
            with self.pauses.cut_short():  # then self.sender() raises ClientClosedError
                await watch.sleep(decision.delay)

    def _log(self, event: RevenueEvent, reply: Reply, attempt: int, elapsed: float) -> None:
        status = reply.seen.status_code
        answer = str(status) if status is not None else reply.failure.split(":")[0]
        if reply.seen.foreign:
            answer += " (not Pulsora's acceptance)"
        logger.debug(
            "POST %s -> %s (attempt %d, %.3f s) %s",
            self.url,
            answer,
            attempt,
            elapsed,
            summary(event),
        )


def summary(event: RevenueEvent) -> str:
    """Describe an event for a log line without its visitor or session ids."""
    kind = event.event_type.value if event.event_type else "-"
    amount = f"{event.amount} {event.currency}"
    return f"transaction_id={event.transaction_id} event_type={kind} amount={amount}"

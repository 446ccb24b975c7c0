"""Delivering one event: the retry loop shared by ``track`` and ``track_many``.

The loop only carries out what ``_retry.decide`` says. In bulk mode it also
waits for the shared ``Pacing``; a 429 there closes the gate for every sender
and does not use up the event's attempts, but the wait counts against its
deadline, like every other. Each attempt is reported to the client's hooks, if
it has any: without, that costs one ``is not None`` test an attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import anyio.lowlevel
import attrs

from . import _clock
from ._errors import ClientClosedError
from ._event import RevenueEvent, idempotency_key
from ._hooks import HookSet
from ._logging import log_fields
from ._results import Delivered, TrackResult
from ._retry import RetryPolicy, Verdict, decide
from ._transports import Reply, Sender

if TYPE_CHECKING:
    from ._pacing import Pacing

logger = logging.getLogger("pulsora_revenue")

#: How many 429s one event may wait out in bulk mode before they count as failed
#: attempts: a server that never stops answering 429 must not hold a run forever.
MAX_PACED = 100

#: The longest ``Retry-After`` that is waited out (Pulsora's rate limit counts per
#: hour). In bulk mode a 429 asking for more counts as a failed attempt: an absurd
#: header (a proxy's ``Retry-After: 1e20``) must not hold a run forever either.
MAX_RETRY_AFTER = 3600.0


@attrs.define
class Pauses:
    """The waits of a client's calls between attempts, which closing the client ends.

    A call waiting out a back-off (or a 429) when its client is closed would
    otherwise hold its caller until the wait is over, up to its whole deadline,
    only to fail then with ``ClientClosedError``.
    """

    closed: bool = False
    _why: str = ""  # the message of the ClientClosedError of a call after closing
    _scopes: set[anyio.CancelScope] = attrs.Factory(set)

    def check(self) -> None:
        """Raise ``ClientClosedError`` once the client is closed: no attempt starts then."""
        if self.closed:
            raise ClientClosedError(self._why)

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

    def close(self, why: str) -> None:
        """End every wait in progress, and any to come; no attempt starts after this."""
        self.closed, self._why = True, why
        for scope in self._scopes:
            scope.cancel()


@attrs.frozen
class Channel:
    """Everything needed to send events to one Pulsora endpoint, but the ``Sender``.

    *url* is the endpoint as shown in messages, *scrub* removes the token from
    text the server sent back, and *debug* logs every attempt. *pauses* are the
    waits between attempts, shared by every copy of a client's channel
    (``attrs.evolve`` keeps it), which the client ends when it closes. *hooks*
    are the client's, None without any.
    """

    url: str
    policy: RetryPolicy
    scrub: Callable[[str], str] = attrs.field(repr=False)
    debug: bool = False
    pauses: Pauses = attrs.field(factory=Pauses, repr=False, eq=False)
    hooks: HookSet | None = attrs.field(default=None, repr=False, eq=False)

    async def deliver(
        self,
        sender: Sender,
        event: RevenueEvent,
        body: bytes,
        *,
        key: str | None = None,
        pacing: Pacing | None = None,
        clock: Callable[[], float] | None = None,
    ) -> TrackResult:
        """Send *event* (encoded as *body*) with *sender* until accepted, or raise the final error.

        *key* is the event's ``idempotency_key``, and *clock* the loop's, if the
        caller has them already. A caller cancelled already sends nothing: on a
        pooled connection aiohttp writes the request before it first waits, where
        a cancellation would land.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        delivered = await self.send(sender, event, body, key=key, pacing=pacing, clock=clock)
        return delivered.result(event)

    async def send(
        self,
        sender: Sender,
        event: RevenueEvent,
        body: bytes,
        *,
        key: str | None = None,
        pacing: Pacing | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Delivered:
        """Like ``deliver``, but say how it was ``Delivered``, without a ``TrackResult``.

        ``track_many`` builds the ``TrackResult`` only when someone will see it,
        and passes the loop's *clock*, looked up once a run.
        """
        policy, pauses, hooks = self.policy, self.pauses, self.hooks
        key = key or idempotency_key(event)
        watch = _clock.Stopwatch(clock)
        maybe_delivered = False
        requests = tries = paced = 0
        begun = 0.0  # when the attempt began, by the watch: only with hooks
        while True:
            fresh = not requests  # a first attempt that did not wait has the whole deadline
            # Only where there is a wait: a cancel scope costs microseconds an event.
            if pacing is not None and not pacing.idle:  # the 429 gate counts against the deadline
                refusal = None  # if closing the client cut the wait short
                with pauses.cut_short():  # then pauses.check() raises ClientClosedError
                    refusal = await pacing.wait(watch, policy.deadline)
                if refusal is not None:  # the gate would hold it past its deadline: fail now
                    raise failure(
                        refusal,
                        event=event,
                        attempts=requests,
                        url=self.url,
                        maybe_delivered=maybe_delivered,
                    )
                fresh = False
            budget = policy.deadline if fresh else max(0.0, policy.deadline - watch.elapsed())
            pauses.check()
            if hooks is not None:
                begun = watch.elapsed()
            reply = await sender.post(body, key, budget=budget, scrub=self.scrub)
            requests += 1
            elapsed = watch.elapsed()
            if self.debug:
                self._log(event, reply, requests, elapsed)
            if reply.seen.accepted:  # the common case: nothing to decide
                if hooks is not None:
                    hooks.attempt(event, self.url, reply, requests, elapsed - begun, elapsed, None)
                return Delivered(reply.seen.status_code, requests, elapsed, duplicate=False)
            if pacing is not None and reply.seen.status_code == 429 and paced < MAX_PACED:
                wait = reply.seen.retry_after
                if wait is None or wait <= MAX_RETRY_AFTER:
                    paced += 1  # waiting out a 429 is not a failed attempt, within reason
                    wait = max(policy.backoff(1) if wait is None else wait, policy.initial_delay)
                    pacing.gate.close_for(wait, reply)
                    if hooks is not None:
                        hooks.attempt(
                            event, self.url, reply, requests, elapsed - begun, elapsed, wait
                        )
                    continue  # the gate turns it away if the wait ends past its deadline
            tries += 1
            decision = decide(
                policy, reply.seen, attempt=tries, elapsed=elapsed, maybe_delivered=maybe_delivered
            )
            if hooks is not None:
                wait = decision.delay if decision.verdict is Verdict.RETRY else None
                hooks.attempt(event, self.url, reply, requests, elapsed - begun, elapsed, wait)
            if decision.verdict is Verdict.DELIVERED:
                return Delivered(reply.seen.status_code, requests, elapsed, decision.duplicate)
            if decision.verdict is Verdict.GIVE_UP:
                raise failure(
                    reply,
                    event=event,
                    attempts=requests,
                    url=self.url,
                    maybe_delivered=maybe_delivered,
                )
            maybe_delivered = maybe_delivered or reply.seen.may_have_landed
            if self.debug:
                extra = log_fields(event, attempt=requests, wait=decision.delay)
                logger.debug("retrying %s in %.3f s", describe(event), decision.delay, extra=extra)
            with pauses.cut_short():  # then pauses.check() raises ClientClosedError
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
            describe(event),
            extra=log_fields(event, attempt=attempt, status_code=status, elapsed=elapsed),
        )


def describe(event: RevenueEvent) -> str:
    """Describe an event for a log line without its visitor or session ids."""
    kind = event.event_type.value if event.event_type else "-"
    amount = f"{event.amount} {event.currency}"
    return f"transaction_id={event.transaction_id} event_type={kind} amount={amount}"


def failure(
    reply: Reply, *, event: RevenueEvent, attempts: int, url: str, maybe_delivered: bool
) -> Exception:
    """The exception for a final, failed *reply*: ``_failures`` is loaded on the first one."""
    from ._failures import to_exception

    return to_exception(
        reply, event=event, attempts=attempts, url=url, maybe_delivered=maybe_delivered
    )

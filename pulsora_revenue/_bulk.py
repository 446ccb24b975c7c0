"""``track_many``: a fixed pool of workers streaming events from any iterable.

Workers read the input lazily (an async iterable through one producer task and
a small buffer), so memory stays proportional to the concurrency, not to the
number of events. No task is started per event. Events are validated, keyed
and encoded ``PREPARE_CHUNK`` at a time into a queue that every worker sends
from, one event each.

A run may have a time limit, on the clock of ``_clock`` (which test mode moves
by the waits it skips): no event starts once it has passed, an event started
near it gets only the time left as its deadline, and the events read but not
sent get a failed ``Outcome``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from datetime import timedelta

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

from . import _clock
from ._convert import encode, to_event
from ._delivery import Channel
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    DuplicateTransactionError,
    EndpointError,
    PermissionDeniedError,
    ValidationError,
)
from ._event import RevenueEvent, key_digest
from ._first_failures import FirstFailures
from ._pacing import Pacing, RateGate, TokenBucket
from ._results import BatchReport, Counts, Outcome, OutcomeStatus, Progress
from ._retry import leaves_time, to_seconds
from ._transports import Sender

logger = logging.getLogger("pulsora_revenue")

#: How many distinct (transaction_id, event_type) keys are remembered to skip
#: repeats without a request. Older repeats are sent, and Pulsora's 409 reports
#: them as duplicates: either way nothing is recorded twice, and memory stays flat.
DEDUP_WINDOW = 20_000

#: Every this many events, a worker yields to the event loop even if nothing else
#: made it wait (a checkpoint costs a loop iteration: too dear for every event).
CHECKPOINT_EVERY = 64

#: Events are prepared (validated, keyed, encoded) this many at a time: the same
#: code running back to back stays in the CPU's caches, and costs about a third
#: of what it does interleaved with HTTP work (see benchmarks/README.md).
PREPARE_CHUNK = 16

#: Seconds between two calls of ``on_progress``.
PROGRESS_INTERVAL = 0.25

#: Seconds an async generator given as input has to clean up when a run stops early.
CLOSE_INPUT_WITHIN = 2.0

Source = Iterable[object] | AsyncIterable[object]
Items = Iterator[tuple[int, object]] | MemoryObjectReceiveStream[tuple[int, object]]
#: An event ready to send: index, input, event, idempotency key, body.
Job = tuple[int, object, RevenueEvent, str, bytes]
OnResult = Callable[[Outcome], object]
OnProgress = Callable[[Progress], object]

_STOPPERS = (AuthenticationError, PermissionDeniedError)


@attrs.define
class RecentKeys:
    """The last *limit* distinct keys seen, as 16-byte digests."""

    limit: int = DEDUP_WINDOW
    _keys: set[bytes] = attrs.Factory(set)
    _order: deque[bytes] = attrs.Factory(deque)

    def add(self, key: bytes) -> bool:
        """Remember *key*; return False if it was already remembered."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self.limit:
            self._keys.discard(self._order.popleft())
        return True


@attrs.define
class Batch:
    """One run of ``track_many``: its settings, its state, and its workers.

    Its counts have one writer, the run; it returns them as a ``BatchReport``.
    """

    channel: Channel
    concurrency: int
    pacing: Pacing
    on_result: OnResult | None = None
    on_progress: OnProgress | None = None
    time_limit: float | None = None  # seconds the whole run may take
    counts: Counts = attrs.Factory(Counts)
    in_flight: int = 0
    stop_error: APIError | EndpointError | None = None
    crash: Exception | None = None  # a callback failed: stop at once
    input_error: Exception | None = None  # the input failed: send what was read, then raise
    timed_out: bool = False  # the time limit passed: send no more, report what was read
    _started: float = 0.0  # by _clock.now(), for the time limit
    _reading: anyio.CancelScope | None = None  # the producer's
    _held: tuple[int, object] | None = None  # read by the producer, not yet handed over
    _taken: int = 0  # the index after the last one taken from the producer
    _recent: RecentKeys = attrs.Factory(RecentKeys)
    _first: FirstFailures = attrs.Factory(lambda self: FirstFailures(self.channel.url), True)
    _ready: deque[Job | Outcome] = attrs.Factory(deque)
    _now: Callable[[], float] = attrs.Factory(_clock.loop_clock)  # the loop's clock
    _watch: _clock.Stopwatch = attrs.Factory(lambda self: _clock.Stopwatch(self._now), True)
    _receive: MemoryObjectReceiveStream[tuple[int, object]] | None = None

    async def run(self, source: Source, sender: Sender) -> BatchReport:
        """Send every event of *source* with *sender*; return the report, or raise its stop."""
        self._started = _clock.now()
        try:
            async with anyio.create_task_group() as outer:
                if self.on_progress is not None:
                    outer.start_soon(self._tick)
                if self.time_limit is not None:
                    outer.start_soon(self._alarm, self.time_limit)
                async with anyio.create_task_group() as workers:
                    scope = workers.cancel_scope
                    items = self._pull(source, workers)
                    for _ in range(self.concurrency):
                        workers.start_soon(self._guard, scope, self._work(items, scope, sender))
                outer.cancel_scope.cancel()
            if self.timed_out and self.crash is None:  # nothing runs now: no more reading
                self._drop_unsent()
        except BaseExceptionGroup as group:
            error: BaseException = group
            while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
                error = error.exceptions[0]  # unwrap what one task raised
            if error is group:
                raise
            raise error from None
        finally:
            if self._receive is not None:
                self._receive.close()
            elapsed = self._watch.elapsed()
        closed = self.crash if isinstance(self.crash, ClientClosedError) else None
        if self.crash is not None and closed is None:
            raise self.crash
        self._progress()
        stop = closed or self.stop_error  # closed from another task, a refused token or endpoint
        if stop is not None:
            reason = str(stop).partition("\n")[0]
        elif self.timed_out:
            reason = f"the time limit of {self.time_limit:g} s passed"
        else:
            reason = ""
        report = self.counts.report(elapsed=elapsed, stop_reason=reason)
        if stop is not None:
            stop.report = report
            raise stop
        if self.input_error is not None:
            raise self.input_error
        return report

    def _pull(self, source: Source, workers: anyio.abc.TaskGroup) -> Items:
        """Return one shared source of (index, item) for the workers to take from.

        A plain iterable is read by the workers themselves (``next`` cannot be
        interrupted, so no lock is needed); an async iterable gets one producer
        task feeding a buffer the size of the pool.
        """
        if not isinstance(source, AsyncIterable):
            return enumerate(source)
        send, receive = anyio.create_memory_object_stream[tuple[int, object]](self.concurrency)
        workers.start_soon(self._guard, workers.cancel_scope, self._produce(source, send))
        self._receive, self._reading = receive, anyio.CancelScope()
        return receive

    async def _guard(self, scope: anyio.CancelScope, task: Awaitable[None]) -> None:
        """Run *task*; if it fails (a callback raised, say), stop the run with it at once."""
        try:
            await task
        except Exception as exc:
            if self.crash is None:
                self.crash = exc
            scope.cancel()

    async def _produce(
        self, source: AsyncIterable[object], send: anyio.abc.ObjectSendStream[tuple[int, object]]
    ) -> None:
        async with send:  # closing it tells the workers that the input is over
            index = 0
            iterator: AsyncIterator[object] | None = None
            try:
                with self._reading or anyio.CancelScope():  # cancelled when the time is up
                    iterator = aiter(source)
                    async for item in iterator:
                        pair = self._held = (index, item)
                        await send.send(pair)
                        index += 1
            except Exception as exc:
                self.input_error = exc
            finally:
                if isinstance(iterator, AsyncGenerator):
                    await close_input(iterator)

    async def _work(self, items: Items, scope: anyio.CancelScope, sender: Sender) -> None:
        # A send may not wait before its request is out (aiohttp on a pooled
        # connection, an in-process transport): look for a cancellation first, and
        # after each callback, which may have cancelled the caller (a full check
        # for every event is dear on the speed path: benchmarks/README.md).
        await anyio.lowlevel.checkpoint_if_cancelled()
        ready, hooks = self._ready, self.channel.hooks
        begun = 0.0  # when the event's delivery began: only with hooks
        while not (self.stop_error or self.crash or self.timed_out):  # else do not wait
            if not ready:
                await self._prepare(items)
                if not ready:  # another worker may have filled it while this one waited
                    return  # the input is over
            job = ready.popleft()
            if isinstance(job, Outcome):  # invalid, or a repeat: nothing to send
                self._record(job)
                await anyio.lowlevel.checkpoint()  # nothing was awaited: let the loop run
                continue
            index, item, event, key, body = job
            channel = self.channel if self.time_limit is None else self._in_time()
            if channel is None:  # no event starts once the time is up
                ready.appendleft(job)
                self._time_up()
                return
            outcome: Outcome | None = None
            self.in_flight += 1
            if hooks is not None:
                begun = _clock.now()  # with the waits test mode skips, as Delivered's
            try:
                delivered = await channel.send(
                    sender, event, body, key=key, pacing=self.pacing, clock=self._now
                )
            except (APIError, APIConnectionError) as exc:
                outcome = self._failed(index, item, event, exc)
                if hooks is not None:
                    hooks.failed(event, exc, _clock.now() - begun)
            else:
                self._first.delivered()
                if hooks is not None:
                    hooks.delivered(event, delivered)
                if self.on_result is not None:
                    result = delivered.result(event)
                    outcome = Outcome(index, event, item, OutcomeStatus.SENT, result=result)
            finally:
                self.in_flight -= 1
            if outcome is None:  # sent, and no one will see its Outcome: none was built
                self.counts.count_sent()
            else:  # outside the except block: a callback's error must not chain to it
                self._record(outcome)
                if self.stop_error is not None:
                    scope.cancel()
                elif self.on_result is not None:
                    await anyio.lowlevel.checkpoint_if_cancelled()
            if index % CHECKPOINT_EVERY == 0:
                # An instant transport never yields: let the loop run now and then
                # (other tasks, cancellation, clean-up of timers).
                await anyio.lowlevel.checkpoint()

    async def _alarm(self, limit: float) -> None:
        """End the run when its time is up, even if no event is about to start.

        Workers waiting for a slow input stop waiting; those in flight end by
        themselves (their deadlines are cut to the time left).
        """
        # Real time: _clock.now() runs no slower (in test mode, ahead by the skipped waits).
        await anyio.sleep(max(0.0, limit - (_clock.now() - self._started)))
        self._time_up()

    def _time_up(self) -> None:
        self.timed_out = True
        if self._reading is not None:
            self._reading.cancel()  # the input is read no further

    def _in_time(self) -> Channel | None:
        """The channel to send the next event with, its deadline cut to the time left.

        None once too little is left for an attempt: the run's time is up.
        """
        assert self.time_limit is not None
        elapsed = _clock.now() - self._started
        if not leaves_time(self.time_limit, elapsed, 0.0):
            return None
        left, policy = self.time_limit - elapsed, self.channel.policy
        if left >= policy.deadline:
            return self.channel
        return attrs.evolve(self.channel, policy=attrs.evolve(policy, deadline=left))

    def _drop_unsent(self) -> None:
        """Give every event read from the input but not sent its outcome: failed.

        Those the producer read are in its buffer, or still in its hands.
        """
        receive = self._receive
        if receive is not None:
            with contextlib.suppress(anyio.WouldBlock, anyio.EndOfStream):
                while True:
                    index, item = receive.receive_nowait()
                    self._taken = index + 1
                    self._ready.append(self._job(index, item))
            if self._held is not None and self._held[0] >= self._taken:
                self._ready.append(self._job(*self._held))  # its hand-over was cancelled
        while self._ready:
            job = self._ready.popleft()
            if not isinstance(job, Outcome):
                index, item, event, _, _ = job
                error = APITimeoutError(
                    f"Not sent: the time limit of track_many ({self.time_limit:g} s) passed "
                    f"before transaction {event.transaction_id!r} was sent. Track it again.",
                    attempts=0,
                )
                job = Outcome(index, event, item, OutcomeStatus.FAILED, error)
                if self.channel.hooks is not None:
                    self.channel.hooks.failed(event, error, 0.0)
            self._record(job)

    def _record(self, outcome: Outcome) -> None:
        self.counts.count(outcome)
        if self.on_result is not None:
            self.on_result(outcome)

    async def _prepare(self, items: Items) -> None:
        """Take the next chunk of the input, if any, into the queue."""
        chunk: list[tuple[int, object]] = []
        if isinstance(items, Iterator):
            if self.input_error is None:
                try:
                    for pair in itertools.islice(items, PREPARE_CHUNK):
                        chunk.append(pair)
                except Exception as exc:  # what was read before it still goes out
                    self.input_error = exc
        else:  # wait for one, then take what is there already
            try:
                chunk.append(await items.receive())
                while len(chunk) < PREPARE_CHUNK:
                    chunk.append(items.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                pass
            if chunk:
                self._taken = chunk[-1][0] + 1
        self._ready.extend(self._job(index, item) for index, item in chunk)

    def _job(self, index: int, item: object) -> Job | Outcome:
        """Validate, key and encode one input; or its outcome, if it is not to be sent."""
        try:
            event = to_event(item, {})
        except ValidationError as exc:
            return Outcome(index, None, item, OutcomeStatus.INVALID, exc)
        digest = key_digest(event)  # the idempotency key, and half of it to de-duplicate
        if not self._recent.add(digest[:16]):
            return Outcome(index, event, item, OutcomeStatus.SKIPPED)
        return (index, item, event, digest.hex(), encode(event))

    def _failed(
        self, index: int, item: object, event: RevenueEvent, error: APIError | APIConnectionError
    ) -> Outcome:
        if isinstance(error, DuplicateTransactionError):
            self._first.delivered()  # Pulsora answered: the endpoint is right
            return Outcome(index, event, item, OutcomeStatus.DUPLICATE, error)
        stop = error if isinstance(error, _STOPPERS) else self._first.failed(error)
        if stop is not None and self.stop_error is None:
            self.stop_error = stop
        return Outcome(index, event, item, OutcomeStatus.FAILED, error)

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(PROGRESS_INTERVAL)
            self._progress()

    def _progress(self) -> None:
        if self.on_progress is not None:
            elapsed = self._watch.elapsed()
            self.on_progress(self.counts.progress(in_flight=self.in_flight, elapsed=elapsed))


async def close_input(generator: AsyncGenerator[object, None]) -> None:
    """Close an input that a stopped run left unfinished, so that its clean-up runs now.

    Not when it is garbage collected (and trio warns). The clean-up gets
    ``CLOSE_INPUT_WITHIN`` seconds; what it raises is logged: the run's own
    outcome (its stop error, a cancellation) is what the caller must see.
    """
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + CLOSE_INPUT_WITHIN):
        try:
            await generator.aclose()
        except Exception:
            logger.warning("closing the input of track_many failed", exc_info=True)


def make_batch(
    channel: Channel,
    *,
    concurrency: int,
    rate_limit: float | None,
    on_result: OnResult | None,
    on_progress: OnProgress | None,
    keep_failures: bool,
    time_limit: float | timedelta | None = None,
) -> Batch:
    """Check the settings of a run and return it, ready to ``run``."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be an int of 1 or more, not {concurrency!r}")
    limit = None if time_limit is None else to_seconds(time_limit)
    if limit is not None and not limit > 0:
        raise ConfigurationError(f"time_limit must be a positive duration, not {time_limit!r}")
    bucket = TokenBucket(rate_limit) if rate_limit is not None else None
    pacing = Pacing(RateGate(channel.policy.uniform), bucket)
    return Batch(
        channel,
        concurrency,
        pacing,
        on_result=on_result,
        on_progress=on_progress,
        counts=Counts(keep_failures=keep_failures),
        time_limit=None if limit == math.inf else limit,
    )

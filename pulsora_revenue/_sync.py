"""``SyncRevenue``: the async client, run on an event loop in a thread of its own.

One daemon thread runs an event loop (uvloop's where it is installed); every
call from any thread is handed to that loop (``_loop_thread``), where one ``Revenue`` does
the work: retries, the 429 gate, the outbox and its drainer, ``track_many``.
The thread is a daemon and an ``atexit`` hook closes what is open, so that a
script that never calls ``close()`` still ends at once; a forked child (gunicorn
``--preload``, Celery prefork) starts a loop and a client of its own on first use.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import timedelta
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx

from ._client import Revenue
from ._config import Token, hide
from ._errors import ClientClosedError
from ._event import RevenueEvent
from ._hooks import Hooks
from ._results import BatchReport, DeadLetter, Outcome, Progress, TrackResult
from ._retry import RetryPolicy
from ._transports import Backend

if TYPE_CHECKING:
    from ._loop_thread import Running


logger = logging.getLogger("pulsora_revenue")

_T = TypeVar("_T")

#: How long closing at interpreter exit may take (delivering nothing new: the
#: outbox keeps what is queued); past it, the daemon thread ends with the process.
CLOSE_AT_EXIT = 2.0

#: Every client whose loop may be running: closed at exit, forgotten in a forked child.
_open_clients: weakref.WeakSet[SyncRevenue] = weakref.WeakSet()


class SyncRevenue:
    """A blocking client for code without an event loop: Django, Flask, Celery, scripts.

    It takes the arguments of ``Revenue`` and offers its methods without ``await``, with
    the same results and exceptions. It is safe to share between threads (one per
    process, as for ``Revenue``): the calls run on one event loop in a daemon thread of
    its own, started on first use. Use it as ``with SyncRevenue() as revenue:``, or call
    ``close()``; a process that does neither still exits at once (an ``atexit`` hook
    closes it), and the events its outbox holds stay for the next run. After
    ``os.fork()`` the child gets a loop and connections of its own.

    Args:
        api_token: the secret ``sec_`` token; by default ``$PULSORA_SECRET_TOKEN``.
        endpoint: the ingest URL; by default ``$PULSORA_ENDPOINT``, else Pulsora's.
        timeout: how long one attempt may wait to connect and for the answer, in seconds
            or as a ``timedelta``.
        retry: how failed attempts are retried; by default ``RetryPolicy()``.
        http_client: an ``httpx.AsyncClient`` of yours, used on the client's own loop and
            never closed here.
        transport: an httpx transport for the client made here; not with *http_client*.
        debug: log every attempt at DEBUG on the ``pulsora_revenue`` logger.
        backend: the HTTP library: ``"auto"`` (the default), ``"httpx"`` or ``"aiohttp"``,
            as for ``Revenue``.
        outbox: the path of an SQLite file that keeps what ``track`` could not deliver
            yet, delivered in the background once the client runs; None for no outbox.
        hooks: ``Hooks`` to call as the client works, as for ``Revenue``; they are called
            in the client's own thread.

    Raises:
        ConfigurationError: when an argument cannot work, as for ``Revenue``; checked
            here, in the caller's thread.
    """

    def __init__(
        self,
        api_token: str | None = None,
        *,
        endpoint: str | None = None,
        timeout: float | timedelta = 10.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        debug: bool = False,
        backend: Backend | None = None,
        outbox: str | PathLike[str] | None = None,
        hooks: Sequence[Hooks] = (),
    ) -> None:
        token = hide(api_token)  # first of all, as in Revenue: no local holds it as text
        del api_token
        options: dict[str, Any] = {
            "endpoint": endpoint,
            "timeout": timeout,
            "retry": retry,
            "http_client": http_client,
            "transport": transport,
            "debug": debug,
            "backend": backend,
            "outbox": outbox,
            "hooks": hooks,
        }
        # Checked now, in the caller's thread: a bad argument raises here.
        self._make = functools.partial(_revenue, token, options)
        self._revenue = self._make()
        self._lock = threading.Lock()
        self._running: Running | None = None
        self._pid = os.getpid()
        self._closed = False
        _open_clients.add(self)

    def __repr__(self) -> str:
        shown = repr(getattr(self, "_revenue", "<Revenue ?>"))
        return f"<SyncRevenue{shown.removeprefix('<Revenue')}"

    @property
    def endpoint(self) -> str:
        """The ingest URL events are sent to."""
        return self._revenue.endpoint

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._revenue.retry

    def __enter__(self) -> Self:
        self._open()  # the loop, the connections, the outbox: a bad path raises here
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def track(
        self, event: RevenueEvent | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> TrackResult:
        """Record one revenue event, and return once Pulsora has accepted it.

        The blocking form of ``Revenue.track``: the same validation, retries, outbox,
        result and exceptions (listed in full there).

        Args:
            event: a ``RevenueEvent``, or a mapping of its fields; positional only. Pass it
                or *fields*, not both.
            **fields: the event's fields as keywords, instead of *event*.

        Returns:
            The ``TrackResult``, as ``Revenue.track`` returns it.

        Raises:
            ValidationError: when the event is invalid; it lists every problem.
            TypeError: when both *event* and *fields* are given.
            APIError: when Pulsora answered but did not accept the event: the subclass
                says why (``BadRequestError``, ``AuthenticationError``, ...).
            APIConnectionError: when no answer came (``APITimeoutError``: not in time).
            OutboxError: when the outbox cannot be written: the event was neither delivered
                nor kept.
            RuntimeError: when called from the client's own thread (in a ``track_many``
                callback).
            ClientClosedError: when the client is closed.
        """
        return self._call(lambda revenue: revenue.track(event, **fields))

    def track_many(
        self,
        events: Iterable[RevenueEvent | Mapping[str, Any]],
        *,
        concurrency: int = 8,
        rate_limit: float | None = None,
        on_result: Callable[[Outcome], object] | None = None,
        on_progress: Callable[[Progress], object] | None = None,
        keep_failures: bool = True,
        time_limit: float | timedelta | None = None,
    ) -> BatchReport:
        """Record many events from an iterable, and return the run's report.

        The blocking form of ``Revenue.track_many``, with the same arguments (but a plain
        iterable), report and exceptions. *events* is read, and *on_result* and
        *on_progress* are called, in the client's own thread: a callback must not call
        this client.

        Args:
            events: ``RevenueEvent``s or mappings of their fields, read as the workers need
                them.
            concurrency: how many workers send at once.
            rate_limit: the most requests per second; None for no limit.
            on_result: called with each event's ``Outcome`` as it completes.
            on_progress: called with a ``Progress`` about four times a second, and once
                at the end.
            keep_failures: whether the report keeps every invalid and failed event in
                ``failures``.
            time_limit: how long the whole run may take, in seconds or as a ``timedelta``;
                None for no limit.

        Returns:
            The ``BatchReport`` of the run.

        Raises:
            AuthenticationError: when Pulsora refuses the token: the run stops at once, and
                the error's ``report`` is the run's.
            PermissionDeniedError: when the token may not send revenue events; as above.
            EndpointError: when the run's first events all failed at a wrong endpoint;
                ``report`` is the run's.
            ConfigurationError: when *concurrency*, *rate_limit* or *time_limit* is not
                usable.
            RuntimeError: when called from the client's own thread (in a callback).
            ClientClosedError: when the client is closed, or closes during the run.
        """
        return self._call(
            lambda revenue: revenue.track_many(
                events,
                concurrency=concurrency,
                rate_limit=rate_limit,
                on_result=on_result,
                on_progress=on_progress,
                keep_failures=keep_failures,
                time_limit=time_limit,
            )
        )

    def flush(self, timeout: float | None = None) -> int:
        """Deliver the events in the outbox now, for at most *timeout* seconds.

        The blocking form of ``Revenue.flush``.

        Args:
            timeout: the most seconds to spend; None (the default) to go on until no event
                is left.

        Returns:
            How many of this endpoint's events are still in the outbox (0 without one).

        Raises:
            OutboxError: when the outbox file cannot be written or read.
            RuntimeError: when called from the client's own thread (in a callback).
            ClientClosedError: when the client is closed.
        """
        return self._call(lambda revenue: revenue.flush(timeout))

    def outbox_size(self) -> int:
        """Count the events for this client's endpoint that wait in the outbox.

        The blocking form of ``Revenue.outbox_size``.

        Returns:
            How many there are; 0 without an outbox.

        Raises:
            OutboxError: when the outbox file cannot be read.
            RuntimeError: when called from the client's own thread (in a callback).
            ClientClosedError: when the client is closed.
        """
        return self._call(lambda revenue: revenue.outbox_size())

    def dead_letters(self) -> list[DeadLetter]:
        """List the events of this client's endpoint that the outbox gave up on, oldest first.

        The blocking form of ``Revenue.dead_letters``.

        Returns:
            The ``DeadLetter``s; an empty list without an outbox.

        Raises:
            OutboxError: when the outbox file cannot be read.
            RuntimeError: when called from the client's own thread (in a callback).
            ClientClosedError: when the client is closed.
        """
        return self._call(lambda revenue: revenue.dead_letters())

    def retry_dead_letters(self, letters: Iterable[DeadLetter] | None = None) -> int:
        """Queue dead letters again, once what made Pulsora refuse them is fixed.

        The blocking form of ``Revenue.retry_dead_letters``.

        Args:
            letters: the ``DeadLetter``s to queue again; None (the default) for every dead
                letter of this client's endpoint.

        Returns:
            How many were queued again.

        Raises:
            ConfigurationError: when the client has no outbox.
            OutboxError: when the outbox file cannot be written.
            RuntimeError: when called from the client's own thread (in a callback).
            ClientClosedError: when the client is closed.
        """
        return self._call(lambda revenue: revenue.retry_dead_letters(letters))

    def close(self) -> None:
        """Stop the outbox's delivery, close the connections and the loop; idempotent.

        Calls in progress in other threads finish first. Events still in the
        outbox stay there for the next run.

        Raises:
            RuntimeError: when called from the client's own thread (in a callback).
        """
        running = self._stop()
        if running is not None and running.thread is threading.current_thread():
            raise RuntimeError("close() was called from the client's own thread (a callback)")
        if running is not None:
            running.thread.join()

    def _close_at_exit(self) -> None:
        """Close, but give up after ``CLOSE_AT_EXIT`` seconds: the process is ending."""
        running = self._stop()
        if running is not None:
            running.thread.join(CLOSE_AT_EXIT)

    def _stop(self) -> Running | None:
        """Mark the client closed and ask its loop to stop; the loop, if this process runs one."""
        with self._lock:
            running, self._running, self._closed = self._running, None, True
        _open_clients.discard(self)
        if running is None or os.getpid() != self._pid:
            return None  # never started (or the parent's, after a fork: nothing runs here)
        running.stop()
        return running

    def _call(self, method: Callable[[Revenue], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``method(revenue)`` on the client's loop, and wait for its outcome."""
        running = self._open()
        if running.thread is threading.current_thread():  # it would wait on itself for ever
            raise RuntimeError(
                "a SyncRevenue method was called from the client's own thread (a callback);"
                " in on_result or on_progress, collect what you need and act after the call"
            )
        return running.call(method(self._revenue))

    def _open(self) -> Running:
        """The client's running loop, started on first use (and anew after a fork)."""
        with self._lock:
            if self._closed:
                raise ClientClosedError(f"{self!r} is closed; create a new SyncRevenue client")
            if os.getpid() != self._pid:
                self._forget_parent()
            if self._running is None:
                self._running = self._start()
            return self._running

    def _start(self) -> Running:
        """Start the loop's thread; return once its ``Revenue`` is entered (or raise why not)."""
        from ._loop_thread import start  # asyncio: loaded with the first call

        try:
            running = start(self._revenue)
        except BaseException:
            self._revenue = self._make()  # the failed one is closed: the next call tries anew
            raise
        # Dropped without close(): its loop stops (without waiting here) when it is collected.
        weakref.finalize(self, running.stop).atexit = False  # at exit: _close_every_client
        return running

    def _forget_parent(self) -> None:
        """In a forked child: the parent's loop thread does not exist here; start afresh."""
        self._pid = os.getpid()
        self._running = None
        self._revenue = self._make()  # its connections were the parent's


def _revenue(token: Token | None, options: Mapping[str, Any]) -> Revenue:
    """A new ``Revenue`` with *token* (a redacted ``Token``, or None) and *options*."""
    return Revenue(None if token is None else token.reveal(), **options)


@atexit.register
def _close_every_client() -> None:
    """Close what is open when the interpreter exits: quietly, and within seconds."""
    for client in list(_open_clients):
        try:
            client._close_at_exit()
        except Exception:  # nothing may fail a process's exit
            logger.debug("closing %r at exit failed", client, exc_info=True)


def _after_fork_in_child() -> None:
    """A forked child inherits locks that may be held: give each client a fresh one."""
    for client in list(_open_clients):
        client._lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)

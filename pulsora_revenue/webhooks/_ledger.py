"""The subscription ledger: what MRR each subscription has reported, so that it telescopes.

A webhook says what a subscription looks like now, not how much its MRR
moved. The ledger remembers, per subscription, the newest state seen (its
MRR and when it held) and the MRR already reported to Pulsora; an event that
carries cash, or ends the subscription, reports ``new − reported``. Each
answer is kept under the webhook event's id, so a redelivered event gets the
same answer again and Pulsora's de-duplication drops the repeat.

The decision is the pure function ``advance``; ``MemoryLedger`` and
``SQLiteLedger`` only store its states.
"""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import attrs

ZERO = Decimal(0)


@attrs.frozen
class Observation:
    """What one webhook event says about one subscription.

    ``mrr`` is the subscription's monthly recurring revenue as of ``as_of``
    (0 while it bills nothing: in a trial, paused, ended), or None when the
    event does not say. ``settle`` is true for an event that may carry the
    change to Pulsora: one that carries cash, or a churn.
    """

    subscription: str  # processor-scoped: "stripe:sub_123"
    event_id: str  # the webhook event's id: a redelivery gets the same answer
    as_of: datetime  # when this state held: an older one than applied is stale
    mrr: Decimal | None
    settle: bool
    ended: bool = False
    billing: bool | None = None
    #: A churn (amount 0) carries only a loss, and only as the newest state: a
    #: stale pause must not settle a change it cannot carry.
    churn: bool = False


@attrs.frozen
class Movement:
    """The MRR reported before and after one event; ``change`` rides on its revenue event."""

    before: Decimal
    after: Decimal

    @property
    def change(self) -> Decimal:
        """The MRR moved: ``after - before``."""
        return self.after - self.before


@attrs.frozen
class State:
    """What the ledger holds for one subscription: each fact with the time it held."""

    mrr: Decimal = ZERO  # what its items bill a month, as of mrr_as_of
    mrr_as_of: datetime | None = None
    billing: bool = True  # whether it bills them (not in a trial, unpaid, paused)
    billing_as_of: datetime | None = None
    ended: bool = False
    reported: Decimal = ZERO  # the MRR reported to Pulsora so far

    @property
    def due(self) -> Decimal:
        """The subscription's MRR: what it bills, while it bills."""
        return self.mrr if self.billing and not self.ended else ZERO


def advance(state: State, seen: Observation) -> tuple[State, Movement]:
    """The state after *seen*, and the MRR it reports (none, unless it settles).

    Each fact (the MRR of the items, whether it bills) is taken from *seen*
    unless a newer one was applied: an event that says nothing of a fact
    (a payment whose lines hide the MRR) leaves an older word about it
    standing. An ended subscription stays ended. A settling event reports
    the newest state's MRR, whichever events brought it; a churn, only a
    loss, and only when its own word made it.
    """
    applied = False
    if not state.ended:
        if seen.mrr is not None and _newer(seen, state.mrr_as_of):
            state, applied = attrs.evolve(state, mrr=seen.mrr, mrr_as_of=seen.as_of), True
        if seen.billing is not None and _newer(seen, state.billing_as_of):
            state = attrs.evolve(state, billing=seen.billing, billing_as_of=seen.as_of)
            applied = True
        if seen.ended:
            state, applied = attrs.evolve(state, ended=True), True
    carries = seen.settle and (not seen.churn or (applied and state.due < state.reported))
    if not carries:
        return state, Movement(state.reported, state.reported)
    return attrs.evolve(state, reported=state.due), Movement(state.reported, state.due)


def _newer(seen: Observation, as_of: datetime | None) -> bool:
    return as_of is None or seen.as_of >= as_of


@attrs.frozen
class Payment:
    """A payment as first reported, in minor units: what was paid, and the revenue in it."""

    gross: int  # what the customer paid, tax included
    net: int  # the revenue reported: without tax, unless asked to include it


class Ledger(Protocol):
    """Where the MRR reported per subscription is kept: ``MemoryLedger``, ``SQLiteLedger``."""

    async def observe(self, seen: Observation) -> Movement:
        """Apply what one webhook event says about a subscription, once.

        An event seen before (same subscription and event id) changes nothing, and gets
        the answer it got the first time.

        Args:
            seen: what the event says about the subscription.

        Returns:
            The MRR reported before and after the event; its ``change`` rides on the
            event's revenue event.
        """
        ...

    async def payment(self, payment_id: str, first: Payment | None) -> Payment | None:
        """Look up a payment as first reported, keeping *first* if there is none yet.

        Several events describe one payment (a Checkout Session and its
        PaymentIntent); the first one's revenue is the one every later one
        reports, and a refund nets out the revenue in the payment, not its tax.

        Args:
            payment_id: the payment's id (a PaymentIntent, an invoice, a transaction).
            first: the payment as this event describes it, kept if the payment is new;
                None only to look it up.

        Returns:
            The payment as first reported; None when none was, and *first* is None.
        """
        ...


class MemoryLedger:
    """A ledger in memory: for tests, and for one process that never restarts.

    Thread-safe. It forgets everything with the process; a webhook route in
    production wants ``SQLiteLedger``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, State] = {}
        self._answers: dict[tuple[str, str], Movement] = {}
        self._payments: dict[str, Payment] = {}

    def __repr__(self) -> str:
        return f"<MemoryLedger subscriptions={len(self._states)}>"

    async def observe(self, seen: Observation) -> Movement:
        """Apply what one webhook event says about a subscription, once.

        Args:
            seen: what the event says about the subscription.

        Returns:
            The MRR reported before and after the event: the first answer again, for an
            event seen before.
        """
        with self._lock:
            key = (seen.subscription, seen.event_id)
            answer = self._answers.get(key)
            if answer is None:
                state = self._states.get(seen.subscription, State())
                self._states[seen.subscription], answer = advance(state, seen)
                self._answers[key] = answer
            return answer

    async def payment(self, payment_id: str, first: Payment | None) -> Payment | None:
        """Look up a payment as first reported, keeping *first* if there is none yet.

        Args:
            payment_id: the payment's id.
            first: the payment as this event describes it; None only to look it up.

        Returns:
            The payment as first reported; None when none was, and *first* is None.
        """
        with self._lock:
            if first is None:
                return self._payments.get(payment_id)
            return self._payments.setdefault(payment_id, first)

    def reported(self, subscription: str) -> Decimal:
        """Return the MRR reported so far for a subscription.

        Args:
            subscription: the subscription, prefixed by its processor:
                ``"stripe:sub_..."``, ``"paddle:sub_..."``.

        Returns:
            The MRR reported; 0 for a subscription the ledger does not know.
        """
        with self._lock:
            return self._states.get(subscription, State()).reported

"""The command line: ``pulsora-revenue backfill | validate | outbox | dev | demo``.

Needs the ``cli`` extra (rich, and the emulator's stack for ``dev`` and ``demo``).
"""

from ._main import main

__all__ = ["main"]

"""The demo's emulator, in a process of its own: ``python -m pulsora_revenue._cli._demo_server DB``.

It prints its base URL on one line once it accepts connections, then serves
until its standard input ends (the demo closed it, or the demo ended) or Ctrl-C.
"""

from __future__ import annotations

import sys

from .._emulator._app import create_app, serve_in_thread


def serve(db: str) -> None:
    """Serve the emulator with its database in *db* until standard input ends."""
    try:
        with serve_in_thread(create_app(db)) as url:
            print(url, flush=True)
            sys.stdin.buffer.read()
    except KeyboardInterrupt:  # Ctrl-C reaches the demo's whole process group
        pass


if __name__ == "__main__":
    serve(sys.argv[1])

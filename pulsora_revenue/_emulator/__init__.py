"""Pulsora's ingest API, emulated: one contract, two front ends.

- ``_contract``: the ingest contract without I/O (headers and body in, answer out).
- ``_faults``: scripted faults around it (statuses, delays, dropped answers,
  outages, chaos).
- ``_fake``: ``FakePulsora``, the contract in process as an httpx transport,
  with the events in memory.
- ``_app``: the contract over HTTP on Starlette, with a page and ``/api/events``
  and ``/api/faults`` for tests; ``pulsora-revenue dev`` serves it, and so does
  ``pulsora_revenue.testing.serve_emulator`` (the ``server`` extra).
- ``_database``: the app's SQLite database of events and refused requests (not
  the outbox); ``_page``: the app's HTML page; ``_charts``: its SVG charts, drawn
  by the server; ``_format``: amounts and moments as the page writes them.

Nothing here is public: users reach it through ``pulsora_revenue.testing``.
Importing this package imports none of its modules.
"""

"""``python -m pulsora_revenue``: the same as the ``pulsora-revenue`` command."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())

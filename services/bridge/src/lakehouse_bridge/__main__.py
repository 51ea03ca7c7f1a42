"""``python -m lakehouse_bridge`` is ``lakehouse-bridge``."""

from __future__ import annotations

import sys

from lakehouse_bridge.cli import main

sys.exit(main())

"""``python -m lakehouse_monitoring``: the same as ``lakehouse-metrics``."""

from __future__ import annotations

import sys

from lakehouse_monitoring.cli import main

sys.exit(main())

"""``python -m lakehouse_ingestor`` is the ``lakehouse-ingest`` console script."""

from __future__ import annotations

import sys

from lakehouse_ingestor.cli import main

if __name__ == "__main__":
    sys.exit(main())

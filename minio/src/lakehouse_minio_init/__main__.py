"""``python -m lakehouse_minio_init`` is ``lakehouse-minio-init``."""

from __future__ import annotations

from lakehouse_minio_init.cli import main

raise SystemExit(main())

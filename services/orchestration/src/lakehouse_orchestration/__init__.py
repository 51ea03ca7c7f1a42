"""Mini-Lakehouse orchestration: what the thin DAGs in dags/ call."""

from __future__ import annotations

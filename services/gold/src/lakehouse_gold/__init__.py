"""Mini-Lakehouse gold: dbt marts built from silver, published atomically, replicated to AWS S3."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"

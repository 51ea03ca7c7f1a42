"""Mini-Lakehouse shared core: settings, lake storage, source contracts and silver's Delta tables."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"

"""Mini-Lakehouse ingestor: lands raw source payloads, byte for byte, in the bronze layer."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"

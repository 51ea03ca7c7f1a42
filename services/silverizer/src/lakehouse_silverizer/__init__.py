"""Bronze to silver: contract-driven, streaming, exactly-once conversion to Parquet."""

from __future__ import annotations

__version__ = "0.1.0"

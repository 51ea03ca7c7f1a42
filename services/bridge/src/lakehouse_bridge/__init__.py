"""Mini-Lakehouse event bridge: MinIO bucket notifications on bronze become Airflow Asset events.

A file dropped into ``bronze/<source>/...`` wakes the Asset named ``bronze/<source>`` through
Airflow 3's REST API within a second or so, and with it the source's silver DAG. See
:mod:`lakehouse_bridge.relay` for the rules and :mod:`lakehouse_bridge.server` for the endpoints.
"""

from __future__ import annotations

__version__ = "0.1.0"

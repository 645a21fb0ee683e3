"""The outcomes store: its records (base), one SQL implementation, the Store (sql), with
two drivers (sqlite, postgres), the schema and its migrations (schema), and
the choice of driver from the configured URL (auto)."""

from .auto import create_store, open_store, parse_url
from .base import CallbackRecord, CallbackStatus, CallRecord, CallStatus, StoreError
from .sql import Store

__all__ = [
    "CallRecord",
    "CallStatus",
    "CallbackRecord",
    "CallbackStatus",
    "Store",
    "StoreError",
    "create_store",
    "open_store",
    "parse_url",
]

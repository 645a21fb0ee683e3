"""Outcomes: every call's record, its wrap-up and the callbacks it needs.

``store`` keeps them (SQLite or PostgreSQL, one schema), ``recorder`` writes
them from the call event bus, ``callbacks`` decides which calls need one.
"""

from .callbacks import CallbackRequest, callbacks_for
from .recorder import OutcomeRecorder
from .store import Store, StoreError, create_store, open_store

__all__ = [
    "CallbackRequest",
    "OutcomeRecorder",
    "Store",
    "StoreError",
    "callbacks_for",
    "create_store",
    "open_store",
]

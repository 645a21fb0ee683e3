"""Pick the store implementation from the configured URL (like uvicorn's
"auto" loop): backends are imported only when chosen, so a SQLite site does
not need asyncpg installed (it is the extra ``ivr[postgres]``).

    sqlite:relative/path.db     relative to base_dir (the config file's folder)
    sqlite:///abs/path.db       absolute
    sqlite::memory:             in memory (tests)
    postgresql://user@host:port/db   (also postgres://); password via PGPASSWORD or ~/.pgpass
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import StoreError

if TYPE_CHECKING:
    from .sql import SqlStore

_FORMS = "sqlite:relative/path.db, sqlite:///absolute/path.db or postgresql://user@host:port/db"


def parse_url(url: str, base_dir: str | Path | None = None) -> tuple[str, str]:
    """-> ("sqlite", file path) or ("postgres", DSN)."""
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if sep and scheme in ("postgresql", "postgres"):
        return "postgres", url
    if not sep or scheme != "sqlite":
        raise StoreError(f"store.url {url!r}: unknown kind of store; use {_FORMS}")
    if rest == ":memory:":
        return "sqlite", ":memory:"
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise StoreError(f"store.url {url!r}: sqlite:// names no host; use {_FORMS}")
    if not rest or rest.endswith("/"):
        raise StoreError(f"store.url {url!r}: no database file; use {_FORMS}")
    path = Path(rest)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return "sqlite", str(path)


def create_store(url: str, base_dir: str | Path | None = None) -> "SqlStore":
    """The store for `url`, not opened yet."""
    kind, target = parse_url(url, base_dir)
    if kind == "postgres":
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"store.url {url!r} is PostgreSQL, but its driver is missing "
                f"({exc}): install the extra, pip install 'ivr[postgres]'"
            ) from None
        return PostgresStore(target)
    from .sqlite import SqliteStore

    return SqliteStore(target)


async def open_store(url: str, base_dir: str | Path | None = None) -> "SqlStore":
    """The store for `url`, connected and migrated to the latest schema."""
    store = create_store(url, base_dir)
    await store.open()
    return store

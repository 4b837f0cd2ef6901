"""Opening the index: WAL, a busy timeout, migrations, and write transactions."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CorruptIndexError, InvalidTextError

if TYPE_CHECKING:
    from sqlite_utils import Database

_BUSY_TIMEOUT_S = 60.0
# The number of migrations in schema.py, stored as PRAGMA user_version once
# they are applied. Checking it lets read-only commands skip importing
# sqlite-utils at all (tests/registry/test_registry_schema.py keeps the two in step).
SCHEMA_VERSION = 2


def _import_sqlite_utils() -> None:
    # sqlite-utils imports pandas and numpy when installed, only to recognise
    # their scalar types as column values (0.4 s of a 0.5 s `adapters list`).
    # The registry never stores such values, so those imports are skipped.
    blocked = [m for m in ("pandas", "numpy") if m not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]


def _db_file(conn: sqlite3.Connection) -> str:
    try:
        return str(conn.execute("PRAGMA database_list").fetchone()[2])
    except sqlite3.DatabaseError:
        return "registry.db"


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row)}


def query(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """Rows as dicts (set per cursor: sqlite-utils needs the connection's tuples)."""
    cursor = conn.cursor()
    cursor.row_factory = _dict_row
    try:
        return cursor.execute(sql, params).fetchall()
    except sqlite3.DatabaseError as exc:  # a page damaged after the header opened fine
        # Damage ("database disk image is malformed") is a plain DatabaseError; an
        # OperationalError (a lock, a missing table) is not damage and keeps its type.
        if isinstance(exc, sqlite3.OperationalError):
            raise
        raise corrupt(Path(_db_file(conn)), exc) from None


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode, migrated to the current schema; CorruptIndexError if `path` is no database."""
    conn = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
    try:
        _retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            _migrate(wrap(conn))
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _is_busy(exc):
            raise
        raise corrupt(path, exc) from None
    return conn


def _is_busy(exc: sqlite3.DatabaseError) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def corrupt(path: Path, exc: sqlite3.DatabaseError) -> CorruptIndexError:
    """The one message for an index SQLite cannot read: what, and how to get going again."""
    return CorruptIndexError(
        f"The registry index {str(path)!r} cannot be read ({exc}); nothing was changed. Restore it from a "
        "backup, or point ADAPTERS_HOME at a new folder and register the adapters there again."
    )


def wrap(conn: sqlite3.Connection) -> Database:
    """The sqlite-utils view of a connection, for writes and migrations."""
    _import_sqlite_utils()
    from sqlite_utils import Database

    return Database(conn, execute_plugins=False)


def _migrate(db: Database) -> None:
    from .schema import migrations

    with write(db):
        migrations.apply(db)
        db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _retry(fn: Callable[[], Any], attempts: int = 50) -> Any:
    for i in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or i == attempts - 1:
                raise
            time.sleep(0.05 * (i + 1))
    return None


@contextlib.contextmanager
def write(db: Database) -> Iterator[Database]:
    """A write transaction taken with BEGIN IMMEDIATE.

    A deferred BEGIN (what `db.atomic()` issues) that reads then writes can
    fail with SQLITE_BUSY when two processes race to upgrade their locks;
    taking the write lock up front makes concurrent writers queue on the busy
    timeout instead. Nested `db.atomic()` blocks become savepoints inside it.
    """
    _retry(lambda: db.conn.execute("BEGIN IMMEDIATE"))
    try:
        yield db
    except BaseException as exc:
        db.conn.execute("ROLLBACK")
        if isinstance(exc, UnicodeEncodeError) and isinstance(exc.object, str):
            # A value from a non-UTF-8 argv or file (lone surrogates) that SQLite cannot store.
            raise InvalidTextError(
                f"{exc.object[:200]!r} is not valid UTF-8 text, so it cannot be stored; "
                "nothing was changed. Pass it as UTF-8."
            ) from None
        raise
    else:
        db.conn.execute("COMMIT")

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from loradock.registry import Registry
from loradock.registry.db import SCHEMA_VERSION
from loradock.registry.schema import migrations


def test_schema_version_counts_the_migrations(registry: Registry) -> None:
    assert SCHEMA_VERSION == len(migrations._migrations)
    conn = sqlite3.connect(registry.home / "registry.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = {r[0] for r in conn.execute("select name from _sqlite_migrations")}
    assert applied == {m.name for m in migrations._migrations}


def test_reading_an_up_to_date_index_does_not_import_sqlite_utils(registry: Registry, tmp_path: Path) -> None:
    from tests.synthetic_adapters import write_adapter

    registry.register("sentiment", write_adapter(tmp_path / "a"))
    code = (
        "import sys; from registry import Registry; r = Registry(sys.argv[1]); "
        "assert r.versions()[0].ref == 'sentiment@1'; print('sqlite_utils' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(registry.home)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert out.stdout.strip() == "False"

"""Apply the plain-SQL migrations in schema/<dialect>/ with yoyo.

The schema folder ships inside the wheel as chatd/schema; in a source
checkout it is the top-level schema/ beside the package.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yoyo

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def schema_dir(dialect: str) -> Path:
    for root in (_PACKAGE_DIR / "schema", _PACKAGE_DIR.parent / "schema"):
        if (root / dialect).is_dir():
            return root / dialect
    raise FileNotFoundError(f"no schema/{dialect} folder beside {_PACKAGE_DIR}")


def yoyo_url(database_url: str) -> tuple[str, str]:
    """(yoyo's URL for this database, the schema dialect)."""
    if database_url.startswith("sqlite:///"):
        return database_url, "sqlite"
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url.removeprefix(prefix), "postgres"
    raise ValueError(f"unsupported database URL scheme: {database_url.split(':', 1)[0]}")


def apply_migrations(database_url: str) -> list[str]:
    """Apply whatever is pending (safe to re-run); returns the ids applied."""
    url, dialect = yoyo_url(database_url)
    if dialect == "sqlite":
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    backend = yoyo.get_backend(url)
    try:
        migrations = yoyo.read_migrations(str(schema_dir(dialect)))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    applied = [m.id for m in pending]
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return applied

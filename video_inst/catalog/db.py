"""Engine, sessions and schema upgrades of the catalog.

The embedded default (SQLite under ``VIDEO_INST_HOME``) upgrades itself on first use;
PostgreSQL is upgraded explicitly with ``video-inst db upgrade`` (or by the same call).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine with the settings every process needs (FKs and WAL on SQLite)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` to ``revision`` (Alembic owns the schema everywhere)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with make_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


class Catalog:
    """One database: its engine and a session factory. Cheap to share within a process."""

    def __init__(self, url: str, *, auto_upgrade: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url)
        if auto_upgrade and current_revision(url) != head_revision():
            upgrade(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


@lru_cache(maxsize=8)
def _catalog_for(url: str, auto_upgrade: bool) -> Catalog:
    return Catalog(url, auto_upgrade=auto_upgrade)


def get_catalog(settings=None) -> Catalog:  # type: ignore[no-untyped-def]
    """The catalog of the current settings; the embedded SQLite default upgrades itself."""
    from video_inst.config import get_settings

    settings = settings or get_settings()
    settings.ensure_dirs()
    return _catalog_for(settings.resolved_database_url, settings.is_embedded)

"""Engine, sessions and schema upgrades of the catalog.

The embedded default (SQLite under ``VIDEO_INST_HOME``) upgrades itself on first use;
PostgreSQL is upgraded explicitly with ``video-inst db upgrade`` (or by the same call).
Several processes may open a new data directory at once: every upgrade runs under one lock
(a file lock beside the SQLite file, an advisory lock on PostgreSQL), so one migrates and
the others wait, then find the schema at head.

A catalog that refuses writes (read-only file or database, full disk) raises
``CatalogReadOnlyError`` / ``CatalogFullError`` from any statement, never a bare driver
error; :meth:`Catalog.check_writable` asks before expensive work starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from video_inst.errors import CatalogFullError, CatalogReadOnlyError, CatalogUnwritableError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

BUSY_TIMEOUT_MS = 60_000  # a writer waits this long for another process's commit (WAL: readers never wait)
MIGRATION_LOCK_TIMEOUT_S = 600.0  # another process's migration of a big catalog can take minutes
MIN_FREE_BYTES = 32 * 1024 * 1024  # check_writable: less free space under a SQLite catalog is "full"
# pg_advisory_lock key of schema upgrades (any constant; one per database, as the lock is).
_PG_MIGRATION_KEY = 0x76695F6D696772  # "vi_migr"

# SQLite result codes / PostgreSQL SQLSTATEs that mean "this catalog takes no writes".
_READ_ONLY = {"SQLITE_READONLY", "SQLITE_READONLY_DBMOVED", "SQLITE_READONLY_DIRECTORY", "25006", "42501"}
_FULL = {"SQLITE_FULL", "53100"}
_READ_ONLY_TEXT = ("attempt to write a readonly database", "read-only transaction")
_FULL_TEXT = ("database or disk is full", "no space left on device")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # The busy timeout first: switching to WAL itself waits for other processes' locks.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_path(url: str) -> Path | None:
    path = url.split("///", 1)[-1] if url.startswith("sqlite") else ""
    return Path(path) if path and path != ":memory:" and "///" in url else None


def unwritable_error(exc: BaseException, where: str = "the catalog") -> CatalogUnwritableError | None:
    """The named error for a driver error that means 'no writes here', else None."""
    orig = getattr(exc, "orig", exc)
    codes = {str(getattr(orig, "sqlite_errorname", "")), str(getattr(orig, "sqlstate", "") or "")}
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    lowered = message.lower()
    if codes & _FULL or any(t in lowered for t in _FULL_TEXT):
        return CatalogFullError(f"{where} is full ({message}): free disk space, then run it again")
    if codes & _READ_ONLY or any(t in lowered for t in _READ_ONLY_TEXT):
        return CatalogReadOnlyError(
            f"{where} is read-only ({message}): make it writable (file and folder permissions, "
            "no immutable flag, a read-write database user), then run it again"
        )
    return None


def _named_errors(url: str):  # type: ignore[no-untyped-def]
    where = f"the catalog {_sqlite_path(url) or url.rsplit('@', 1)[-1]}"

    def handle(context: ExceptionContext) -> None:
        named = unwritable_error(context.original_exception, where)
        if named is not None:
            raise named from context.original_exception

    return handle


def make_engine(url: str) -> Engine:
    """An engine with the settings every process needs (FKs and WAL on SQLite)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "handle_error", _named_errors(url))
    return engine


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """One schema upgrade at a time per catalog, across processes (and machines on PostgreSQL)."""
    path = _sqlite_path(url)
    if path is not None:
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".migrate.lock", timeout=MIGRATION_LOCK_TIMEOUT_S):
            yield
        return
    if not url.startswith("postgresql"):
        yield
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # Session-level lock on its own connection: alembic's transactions do not release it.
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_KEY})
                conn.commit()
    finally:
        engine.dispose()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` to ``revision`` (Alembic owns the schema everywhere).

    Under :func:`migration_lock`: a second process waits, then alembic finds nothing to do.
    """
    from alembic import command

    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Step the schema back to ``revision``; no default, since ``"base"`` drops every table and row."""
    from alembic import command

    if not revision or not revision.strip():
        raise ValueError("downgrade needs an explicit revision (e.g. 0002, or base to drop everything)")

    with migration_lock(url):
        command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


class Catalog:
    """One database: its engine and a session factory. Cheap to share within a process."""

    def __init__(self, url: str, *, auto_upgrade: bool = False) -> None:
        self.url = url
        if auto_upgrade:
            # The lock also covers the first connection, which switches a new SQLite file to WAL.
            with migration_lock(url):
                if current_revision(url) != head_revision():
                    from alembic import command

                    command.upgrade(alembic_config(url), "head")
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def check_writable(self) -> None:
        """Raise CatalogReadOnlyError / CatalogFullError now rather than after minutes of analysis.

        A write that changes nothing, rolled back; on SQLite also the free space beside the file.
        """
        path = _sqlite_path(self.url)
        if path is not None and path.parent.exists():
            free = shutil.disk_usage(path.parent).free
            if free < MIN_FREE_BYTES:
                raise CatalogFullError(
                    f"the catalog {path} is full: {free // 1024} KiB free on its disk; "
                    "free disk space, then run it again"
                )
        with self.engine.connect() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
            conn.rollback()

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

"""The off-chain index: SQLAlchemy 2 on SQLite in the data folder, or PostgreSQL by URL.

Each domain declares its tables on `Base` in its own `models.py`; Alembic migrations under
`cairn/db/migrations` create them, and `Database.migrate()` applies them at node start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    """Declarative base shared by every domain's tables."""


class Database:
    """An engine and a session factory for one index URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        """Bring the schema up to the newest migration."""
        from cairn.db.migrate import upgrade_to_head

        upgrade_to_head(self.engine)

    def is_current(self) -> bool:
        """Whether every migration has been applied."""
        from cairn.db.migrate import pending_migrations

        return not pending_migrations(self.engine)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the API read while a writer commits; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL is corruption-safe; only the last commits may roll back on power loss.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

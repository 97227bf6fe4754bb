"""The Store on SQLAlchemy 2 (async): SQLite by default, PostgreSQL for several replicas."""

from adapters.sql.engine import create_engine_for, normalize_url
from adapters.sql.migrate import upgrade_database
from adapters.sql.store import SqlStore

__all__ = ["SqlStore", "create_engine_for", "normalize_url", "upgrade_database"]

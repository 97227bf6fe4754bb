"""What can be wrong with a store other than its not answering, each said in a sentence that says what to do."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from bot.config_problems import masked_url


class StoreUrlUnreadable(ValueError):
    """``store.url`` cannot be read as a database URL. The message shows it with its password masked."""


class StoreNotUsable(RuntimeError):
    """The store answered, but Handoff cannot use it as it is; the message says what to do."""


class StoreNotMigrated(StoreNotUsable):
    """The store has no schema yet, or an older one than this Handoff needs (``handoff db upgrade``)."""


class StoreTooNew(StoreNotUsable):
    """The store was migrated by a newer Handoff, whose revision this one does not know."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            f"the store was migrated by a newer Handoff (revision {revision}); run that version or restore a backup"
        )
        self.revision = revision


class SchemaMissing(StoreNotUsable):
    """The PostgreSQL schema ``?schema=`` names does not exist, and Handoff may not create it."""

    def __init__(self, schema: str) -> None:
        super().__init__(f"schema {schema} does not exist: CREATE SCHEMA {schema}")
        self.schema = schema


class NoDatabase(StoreNotUsable):
    """A SQLite file that does not exist (only ``handoff db upgrade`` and ``handoff serve`` create it)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no database at {path}; `handoff db upgrade` creates it")
        self.path = path


def read_url(url: str) -> URL:
    """``url`` parsed; :class:`StoreUrlUnreadable` saying why (never with its password) when it cannot be."""
    try:
        parsed = make_url(url)
        _ = parsed.port  # (parsed already: a port that is not a number fails above)
    except (ValueError, TypeError) as error:
        why = "its port is not a number" if "int()" in str(error) else "it is not a database URL"
        hint = " (a password holding @, : or / must be percent-encoded: %40, %3A, %2F)" if url.count("@") > 1 else ""
        raise StoreUrlUnreadable(f"store.url cannot be read: {masked_url(url)}: {why}{hint}") from None
    return parsed

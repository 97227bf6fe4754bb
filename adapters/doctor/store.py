"""The store: reachable, and migrated to the schema this version of Handoff needs."""

from __future__ import annotations

from collections.abc import Mapping

from adapters.doctor.report import Check, fail, ok
from adapters.sql import SqlStore
from adapters.sql.engine import shown_url as _shown
from adapters.sql.store import StoreUnavailable
from bot.config import Settings


async def check_store(settings: Settings) -> tuple[Check, list[Mapping[str, object]]]:
    """The store check, and the filters of the chat subscriptions it holds (when it can be read)."""
    url = settings.store.url
    try:
        store = await SqlStore.open(url, migrate=False)
    except StoreUnavailable as error:  # it names the database and what it answered
        return fail("store", f"cannot open {error}", "check store.url"), []
    except Exception as error:
        return fail("store", f"cannot open {_shown(url)} ({type(error).__name__})", "check store.url"), []
    try:
        if not await store.is_ready():
            return (
                fail(
                    "store",
                    f"{_shown(url)} is unreachable or not migrated",
                    "check store.url and the database, then run `handoff db upgrade --config …`",
                ),
                [],
            )
        subscriptions = await store.list_subscriptions()
        return ok("store", f"{_shown(url)} answers and is migrated"), [s.filters for s in subscriptions]
    except Exception as error:
        return fail("store", f"{_shown(url)}: {type(error).__name__}", "check store.url and the database"), []
    finally:
        await store.close()

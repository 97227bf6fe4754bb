"""The store: reachable, and migrated to the schema this version of Handoff needs. Creates nothing."""

from __future__ import annotations

from collections.abc import Mapping

from adapters.doctor.report import Check, fail, ok
from adapters.sql import SqlStore
from adapters.sql.engine import shown_url
from adapters.sql.problems import NoDatabase, StoreNotMigrated, StoreNotUsable, StoreUrlUnreadable
from adapters.sql.store import StoreUnavailable
from bot.config import Settings

UPGRADE = "run `handoff db upgrade --config …`"


async def check_store(settings: Settings) -> tuple[Check, list[Mapping[str, object]]]:
    """The store check, and the filters of the chat subscriptions it holds (when it can be read)."""
    url = settings.store.url
    try:
        store = await SqlStore.open(url, migrate=False, create=False)
    except StoreUrlUnreadable as error:
        return fail("store", str(error), "percent-encode the password, or correct store.url"), []
    except NoDatabase as error:
        return fail("store", str(error), "check store.url; if it is right, " + UPGRADE), []
    except StoreUnavailable as error:  # it names the database and what it answered
        return fail("store", f"cannot open {error}", "check store.url"), []
    except Exception as error:
        return fail("store", f"cannot open {shown_url(url)} ({type(error).__name__})", "check store.url"), []
    try:
        try:
            await store.check_revision()
        except StoreUnavailable as error:
            return fail("store", f"cannot read {error}", "check store.url and the database"), []
        except StoreNotMigrated as error:
            return fail("store", str(error), UPGRADE), []
        except StoreNotUsable as error:
            return fail("store", str(error), ""), []
        subscriptions = await store.list_subscriptions()
        return ok("store", f"{shown_url(url)} answers and is migrated"), [s.filters for s in subscriptions]
    except Exception as error:
        return fail("store", f"{shown_url(url)}: {type(error).__name__}", "check store.url and the database"), []
    finally:
        await store.close()

"""Quiet msrest's warnings about fields Teams always sends and the Bot Framework SDK does not model.

Teams puts ``source``, ``legacy``, ``teamsChannelId`` and ``teamsTeamId`` in an activity's channel data
and ``trigger`` in an ``adaptiveCard/action`` invoke's value; botbuilder-schema's ``TeamsChannelData``
and ``AdaptiveCardInvokeValue`` do not have them, and msrest warns "… is not a known attribute …" each
time it builds one, that is on every message and card click. Those records, and only those, are
dropped: any other field msrest does not know, and everything else it logs, still reaches the log.
"""

from __future__ import annotations

import logging

MSREST_LOGGER = "msrest.serialization"
UNKNOWN_ATTRIBUTE = "%s is not a known attribute of class %s and will be ignored"
TEAMS_FIELDS: dict[str, frozenset[str]] = {
    "TeamsChannelData": frozenset({"source", "legacy", "teamsChannelId", "teamsTeamId"}),
    "AdaptiveCardInvokeValue": frozenset({"trigger"}),
}
"""Per botbuilder-schema class, the fields Teams sends that it lacks."""


class KnownTeamsFields(logging.Filter):
    """Drops msrest's "not a known attribute" warning for the fields in :data:`TEAMS_FIELDS`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != UNKNOWN_ATTRIBUTE or not isinstance(record.args, tuple) or len(record.args) != 2:
            return True
        field, model = record.args
        module = str(getattr(model, "__module__", ""))
        known = TEAMS_FIELDS.get(str(getattr(model, "__name__", "")), frozenset())
        return not (module.startswith("botbuilder.schema") and field in known)


def quiet_known_teams_fields() -> None:
    """Install :class:`KnownTeamsFields` on msrest's logger, once however often Teams is mounted."""
    logger = logging.getLogger(MSREST_LOGGER)
    if not any(isinstance(f, KnownTeamsFields) for f in logger.filters):
        logger.addFilter(KnownTeamsFields())

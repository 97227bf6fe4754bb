"""Signing keys for Bot Framework tokens, fetched without blocking and safe with unknown key ids.

botbuilder's ``_OpenIdMetadata`` fetches the OpenID metadata with synchronous ``requests`` inside the
event loop, and raises ``IndexError`` for a key id that is not in its cache (so its "refresh when a key
is missing" branch never runs and a rotated key gives errors for up to a day). :class:`OpenIdKeySet`
replaces it, per metadata URL, in ``JwtTokenExtractor.metadataCache``, the cache botbuilder consults
first; the token checks themselves (issuer, algorithm, signature, expiry, audience, service URL,
endorsements) stay botbuilder's.

- The metadata is fetched on first use and refreshed once a day, with aiohttp.
- An unknown key id triggers at most one refresh per :attr:`OpenIdKeySet.unknown_key_refresh`
  (an hour by default) and is then refused with ``PermissionError`` (HTTP 401).
- When the keys cannot be fetched at all, :class:`MetadataUnavailable` is raised (HTTP 503: the sender
  retries); stale keys keep working while a refresh fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from jwt.algorithms import RSAAlgorithm

from bot.clock import Clock, SystemClock

log = logging.getLogger("handoff.teams.auth")


class MetadataUnavailable(Exception):
    """The OpenID metadata or its key set could not be fetched, and no keys are known."""


@dataclass(frozen=True)
class SigningKey:
    """One key of the set, in the shape botbuilder's ``JwtTokenExtractor`` reads."""

    public_key: Any
    endorsements: list[str] = field(default_factory=list)


class OpenIdKeySet:
    """The signing keys published at an OpenID metadata URL.

    Args:
        metadata_url: the OpenID configuration document (its ``jwks_uri`` names the key set).
        clock: time for refresh intervals.
        refresh_every: how old the keys may get before a refresh (seconds).
        unknown_key_refresh: the least time between two refreshes caused by unknown key ids (seconds).
        retry_failed_after: when no keys are known, the least time between two failed fetches (seconds).
        timeout: seconds for each HTTP request.
    """

    def __init__(
        self,
        metadata_url: str,
        *,
        clock: Clock | None = None,
        refresh_every: float = 24 * 3600.0,
        unknown_key_refresh: float = 3600.0,
        retry_failed_after: float = 5.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = metadata_url
        self.clock: Clock = clock or SystemClock()
        self.refresh_every = refresh_every
        self.unknown_key_refresh = unknown_key_refresh
        self.retry_failed_after = retry_failed_after
        self.timeout = timeout
        self.fetches = 0
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self, key_id: str | None) -> SigningKey:
        """The key for ``key_id``; ``PermissionError`` if the set has no such key, :class:`MetadataUnavailable`
        if no keys are known (none could be fetched yet)."""
        if self._is_stale():
            await self._refresh(self._is_stale)
        key = self._keys.get(key_id or "")
        if key is None and self._may_refresh_for_unknown_key():
            await self._refresh(lambda: key_id not in self._keys and self._may_refresh_for_unknown_key())
            key = self._keys.get(key_id or "")
        if key is None and not self._keys:  # (the last fetch failed: not the token's fault)
            raise MetadataUnavailable(f"no OpenID keys from {self.url} are known")
        if key is None:
            raise PermissionError("the token's signing key is not in the OpenID key set")
        return key

    # refreshing

    def _since(self, moment: float | None) -> float:
        return float("inf") if moment is None else self.clock.monotonic() - moment

    def _is_stale(self) -> bool:
        if not self._keys:
            return self._since(self._attempted_at) >= self.retry_failed_after
        return self._since(self._fetched_at) >= self.refresh_every

    def _may_refresh_for_unknown_key(self) -> bool:
        return self._since(self._attempted_at) >= self.unknown_key_refresh

    async def _refresh(self, still_needed: Callable[[], bool]) -> None:
        async with self._lock:
            if not still_needed():  # someone else refreshed while this request waited
                return
            self._attempted_at = self.clock.monotonic()
            self.fetches += 1
            try:
                keys = await self._fetch()
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("could not fetch the OpenID keys from %s: %s", self.url, type(exc).__name__)
                if not self._keys:
                    raise MetadataUnavailable(f"the OpenID keys at {self.url} are unavailable") from None
                return
            self._keys = keys
            self._fetched_at = self._attempted_at

    async def _fetch(self) -> dict[str, SigningKey]:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(self.url) as response:
                response.raise_for_status()
                metadata = await response.json(content_type=None)
            async with session.get(str(metadata["jwks_uri"])) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
        keys: dict[str, SigningKey] = {}
        for jwk in document["keys"]:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            try:
                public_key = RSAAlgorithm.from_jwk(json.dumps(jwk))
            except Exception:  # a key of another type or a malformed one: skip it, keep the rest
                log.warning("skipping an unusable key %r in the OpenID key set", jwk.get("kid"))
                continue
            endorsements = jwk.get("endorsements")
            keys[jwk["kid"]] = SigningKey(
                public_key, [str(e) for e in endorsements] if isinstance(endorsements, list) else []
            )
        return keys


def install_key_sets(urls: list[str], clock: Clock | None = None) -> dict[str, OpenIdKeySet]:
    """Put an :class:`OpenIdKeySet` in botbuilder's metadata cache for each URL; returns them."""
    installed = {url: OpenIdKeySet(url, clock=clock) for url in dict.fromkeys(urls)}
    JwtTokenExtractor.metadataCache.update(installed)
    return installed


def uninstall_key_sets(installed: dict[str, OpenIdKeySet]) -> None:
    """Take the key sets out of botbuilder's cache again (only those still installed)."""
    for url, key_set in installed.items():
        if JwtTokenExtractor.metadataCache.get(url) is key_set:
            del JwtTokenExtractor.metadataCache[url]

"""Checking that a service hook comes from our subscription: basic auth and/or a shared header.

Azure DevOps signs nothing (reference/azure-devops.md §1.3): the subscription can only send basic-auth
credentials or a custom header. Both are compared in constant time, on bytes. The check is total: any
header value, however malformed, is simply "not authenticated".
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from bot.config import ServiceHookAuth


def _bytes(value: str) -> bytes:
    # surrogatepass encodes every str, including lone surrogates from undecodable header bytes
    return value.encode("utf-8", "surrogatepass")


def _basic_credentials(authorization: str) -> tuple[bytes, bytes] | None:
    """The user name and password of an ``Authorization: Basic …`` value, or None if it is not one."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip().isascii():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


class ServiceHookAuthenticator:
    """Accepts a request whose basic auth or shared header matches the configuration (either is enough).

    Secrets are read once, when the route is set up, so an unset variable fails at start-up.
    """

    def __init__(self, auth: ServiceHookAuth) -> None:
        self._basic: tuple[bytes, bytes] | None = None
        self._header: tuple[str, bytes] | None = None
        if auth.basic is not None:
            self._basic = (_bytes(auth.basic.username), _bytes(auth.basic.password.reveal()))
        if auth.header is not None:
            self._header = (auth.header.name, _bytes(auth.header.value.reveal()))

    @property
    def challenge(self) -> str | None:
        """The ``WWW-Authenticate`` value to answer a 401 with, when basic auth is configured."""
        return 'Basic realm="handoff", charset="UTF-8"' if self._basic is not None else None

    def authenticate(self, headers: Mapping[str, str]) -> bool:
        """Whether ``headers`` carry a configured credential."""
        ok = False
        if self._basic is not None:
            given = _basic_credentials(headers.get("Authorization", ""))
            user, password = given if given is not None else (b"", b"")
            # compare both parts every time, so timing says nothing about which was wrong
            user_ok = hmac.compare_digest(user, self._basic[0])
            password_ok = hmac.compare_digest(password, self._basic[1])
            ok = given is not None and user_ok and password_ok
        if self._header is not None:
            name, expected = self._header
            value = headers.get(name)
            header_ok = hmac.compare_digest(_bytes(value) if value is not None else b"", expected)
            ok = ok or (value is not None and header_ok)
        return ok
